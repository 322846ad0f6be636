"""`labeltune pred` on inputs it cannot label (issue 22 item 12): an empty folder, nothing readable.

pred runs in process through the CLI's group (click's runner, so `Error: ...` is printed as a
user sees it): a CLI process would cost ~20 s of imports per case. The checkpoint is an untrained
tiny model's: pred only needs one that loads and predicts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

LABELS = ["cat", "dog"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from trainable.config import TrainConfig
    from trainable.gym import Gym

    cfg = TrainConfig(epochs=1, device="cpu", threads=1, model="cnn4", image_size=32, width=0.25)
    targets = np.eye(len(LABELS), dtype=np.uint8)[np.arange(10) % len(LABELS)]
    gym = Gym(cfg, np.zeros((10, 3, 128, 128), np.uint8), targets, LABELS)
    return gym.save(tmp_path_factory.mktemp("pred") / "checkpoint.pt", {}, thresholds=[0.5] * len(LABELS))


def pred(*args: str):
    from click.testing import CliRunner

    from search.cli import main

    return CliRunner().invoke(main, ["pred", *args])


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def test_pred_on_a_folder_without_images_says_so_in_one_line_and_writes_nothing(checkpoint, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "p.tsv"

    result = pred("--checkpoint", str(checkpoint), "--images", str(folder), "--out", str(out))

    assert result.exit_code == 1, result.output
    assert error_lines(result.output) == [line for line in result.output.splitlines() if line.strip()]
    (error,) = error_lines(result.output)
    assert error.startswith(f"Error: {folder}: no images") and "1 other files" in error
    assert "Traceback" not in result.output and not out.exists()


def test_pred_with_every_image_unreadable_and_skipped_says_so_and_writes_nothing(checkpoint, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "im1.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "p.tsv"

    result = pred("--checkpoint", str(checkpoint), "--images", str(folder), "--out", str(out), "--skip-bad-images")

    assert result.exit_code == 1, result.output
    (error,) = error_lines(result.output)
    assert error.startswith(f"Error: {folder}: none of its 1 images can be labelled")
    assert "Traceback" not in result.output and not out.exists()


def test_pred_refuses_a_file_name_a_tsv_cannot_hold_and_skips_it_with_skip_bad_images(checkpoint, tmp_path):
    import csv

    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("im1.jpg", "tab\tname.jpg"):
        Image.new("RGB", (16, 16), (200, 10, 10)).save(folder / name)
    out = tmp_path / "p.tsv"

    refused = pred("--checkpoint", str(checkpoint), "--images", str(folder), "--out", str(out))
    assert refused.exit_code == 1, refused.output
    (error,) = error_lines(refused.output)
    assert error.startswith(f"Error: {folder}/tab\\tname.jpg: a tab or line break in the file name"), error
    assert "--skip-bad-images" in error and "PosixPath" not in refused.output and not out.exists()

    skipped = pred("--checkpoint", str(checkpoint), "--images", str(folder), "--out", str(out), "--skip-bad-images")
    assert skipped.exit_code == 0, skipped.output
    assert "wrote 1 rows" in skipped.output and "(1 bad images skipped" in skipped.output
    rows = list(csv.reader(out.open(newline=""), delimiter="\t"))
    assert rows[0] == ["Filename", *LABELS] and [row[0] for row in rows[1:]] == ["im1.jpg"]
