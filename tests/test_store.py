"""store's atomic writers: readers see the old file or the new one, with a plain file's mode."""

import json
import stat
from pathlib import Path

import pytest

from trainable import store


def test_write_json_creates_the_folder_and_writes_paths_as_strings(tmp_path):
    path = store.write_json(tmp_path / "a" / "b" / "record.json", {"data": Path("/x/y"), "n": 3})
    assert json.loads(path.read_text()) == {"data": "/x/y", "n": 3}
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = store.write_text(tmp_path / "out.tsv", "old\n")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.write_atomic(path, half_then_fail)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.tsv"]


def test_the_file_gets_the_mode_of_a_plain_write(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = store.write_text(tmp_path / "atomic.txt", "x")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
