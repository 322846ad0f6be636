"""`labeltune train` and `eval` show every model figure next to the no-learning baselines of the same split."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from trainable.baselines import for_splits
from trainable.data import load, split

pytestmark = pytest.mark.timeout(300)


def baseline_row(output: str, name: str) -> tuple[float, float]:
    """(model, baseline) of one row of the baseline table."""
    row = re.search(rf"^\s+{name}\s+(-?[\d.]+)\s+(-?[\d.]+)\s+[+-][\d.]+", output, re.M)
    assert row, f"no {name} row in:\n{output}"
    return float(row[1]), float(row[2])


def test_train_and_eval_print_the_baselines_of_their_split(synth_dir, tmp_path):
    from search.cli import main

    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--data", str(synth_dir), "--out", str(out), "--model", "dummy",
                                       "--image-size", "32", "--epochs", "1", "--no-track", "--split-seed", "3"])
    assert result.exit_code == 0, result.output
    dataset = load(synth_dir)
    splits = dict(zip(("train", "val", "test"), split(len(dataset.targets), (0.8, 0.1, 0.1), 3)))
    _, expected = for_splits(dataset.targets, splits, dataset.labels)
    assert "against the no-learning baselines" in result.output
    for name in ("micro_f1", "macro_f1", "exact_match", "map"):
        _, base = baseline_row(result.output, name)
        assert base == pytest.approx(expected[f"baseline/val/{name}"], abs=5e-5), name

    result = CliRunner().invoke(main, ["eval", "--checkpoint", str(out / "best.pt"), "--data", str(synth_dir),
                                       "--split", "test"])
    assert result.exit_code == 0, result.output
    model, base = baseline_row(result.output, "micro_f1")
    assert base == pytest.approx(expected["baseline/test/micro_f1"], abs=5e-5)
