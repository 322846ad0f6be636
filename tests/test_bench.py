"""The benchmarks' own arithmetic (it makes the README's claims) and one tiny throughput run end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import search_efficiency as se  # noqa: E402  (bench/ is not a package)
from common import variant_name  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def run(arm: str, seed: int, curve: list, finals: list) -> dict:
    return {"arm": arm, "seed": seed, "f1_by_epoch": curve, "final_f1": finals, "trial_epochs": len(curve),
            "wall_s": float(len(curve)), "errors": 0}


def test_analyse_counts_trial_epochs_to_the_random_searchs_percentile_and_at_equal_budget():
    finals = [0.1, 0.2, 0.3, 0.4, 0.5]  # 80th percentile: 0.42
    runs = [
        run("tpe_asha", 0, [0.1, 0.45, 0.2], [0.45]),
        run("random_asha", 0, [0.1, 0.2, 0.3, 0.5], [0.5]),
        run("random_fifo", 0, [0.1, 0.2, 0.3, 0.1, 0.2, 0.5], finals),
    ]
    result = se.analyse(runs, [0], None, 80.0)
    row = result["per_seed"][0]
    assert row["target"] == pytest.approx(0.42)
    assert (row["tpe_asha_to_target"], row["random_asha_to_target"], row["random_fifo_to_target"]) == (2, 4, 6)
    assert row["equal_budget"] == 3  # the smallest total any arm spent
    assert row["tpe_asha_best_at_budget"] == 0.45 and row["random_fifo_best_at_budget"] == 0.3
    assert row["ratio_tpe_asha_over_random_fifo"] == pytest.approx(2 / 6)
    assert result["verdict"]["seeds_meeting_target"] == "1/1"
    assert result["summary"]["random_fifo"]["mean_trial_epochs"] == 6


def test_a_seed_where_tpe_asha_misses_the_target_counts_against_it_in_the_median():
    def seed_runs(seed, tpe_curve):
        return [run("tpe_asha", seed, tpe_curve, [max(tpe_curve)]),
                run("random_asha", seed, [0.1, 0.9], [0.9]),
                run("random_fifo", seed, [0.1, 0.2, 0.3, 0.9], [0.9])]

    # seed 0 reaches 0.9 in 1 of random_fifo's 4 trial-epochs; seeds 1 and 2 never do
    runs = seed_runs(0, [0.9]) + seed_runs(1, [0.1, 0.2]) + seed_runs(2, [0.1, 0.2])
    result = se.analyse(runs, [0, 1, 2], 0.9, 80.0)
    ratios = [row["ratio_tpe_asha_over_random_fifo"] for row in result["per_seed"]]
    assert ratios == [0.25, math.inf, math.inf]
    assert result["verdict"]["median_ratio"] == math.inf  # not 0.25, the median of the seeds that reached it
    assert result["verdict"]["seeds_meeting_target"] == "1/3"
    assert result["summary"]["tpe_asha"]["reached"] == "1/3"


def test_variant_name_lists_the_options_that_differ_from_the_defaults():
    defaults = {"trials": 200, "checkpoint": False, "seeds": [0, 1, 2], "results_dir": None}
    assert variant_name(dict(defaults, results_dir="/elsewhere"), defaults) is None
    assert variant_name(dict(defaults, checkpoint=True, trials=50), defaults) == "trials50-checkpoint"
    assert variant_name(dict(defaults, seeds=[0, 1]), defaults) == "seeds0+1"


def test_throughput_writes_its_json_envelope_and_a_row_per_model(tmp_path):
    results = tmp_path / "results"
    env = {"LABELTUNE_BENCH_DATA": str(tmp_path / "data"), "LABELTUNE_CACHE": str(tmp_path / "cache"),
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "throughput.py"), "--models", "dummy", "--seconds", "1", "--n-images", "120",
         "--image-size", "32", "--results-dir", str(results)],
        capture_output=True, text=True, env=env, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = list(results.glob("throughput-*.json"))
    assert len(files) == 1, [f.name for f in results.iterdir()]
    record = json.loads(files[0].read_text())
    assert {"script", "date", "machine", "versions", "parameters", "results"} <= set(record)
    assert record["parameters"]["models"] == ["dummy"]
    (row,) = record["results"]["rows"]
    assert row["model"] == "dummy" and row["gym_img_s"] > 0 and row["baseline_img_s"] > 0
    assert row["gym_over_baseline"] == pytest.approx(row["gym_img_s"] / row["baseline_img_s"])
