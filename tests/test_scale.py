"""bench/scale.py's reading of a search's trial rows (the figures its JSON records), on rows made here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import scale  # noqa: E402  (bench/ is not a package)


def test_setup_and_first_result_come_from_the_earliest_trial_rows(tmp_path):
    folder = scale.search_dir(tmp_path, 200000)
    rows = {"trial_a": [{"started_at": 110.0, "data_setup_s": 41.0, "reported_at": 1600.0},
                        {"started_at": 110.0, "data_setup_s": 41.0, "reported_at": 1700.0}],
            "trial_b": [{"started_at": 109.5, "data_setup_s": 43.0, "reported_at": 1590.0}]}
    for trial, lines in rows.items():
        (folder / trial).mkdir(parents=True)
        (folder / trial / "result.json").write_text("\n".join(json.dumps(r) for r in lines) + "\n{truncated")
    read = scale.result_rows(folder)
    assert len(read) == 3  # the half-written last line is skipped
    assert scale.setup_s(read, started=50.0) == pytest.approx(151.0 - 50.0)  # trial_a is ready first
    assert scale.first_result_s(read, started=50.0) == pytest.approx(1590.0 - 50.0)
    assert scale.setup_s([], 0.0) is None and scale.first_result_s([{"epoch": 1}], 0.0) is None
