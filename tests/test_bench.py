"""The benchmarks' own arithmetic (it makes the README's claims) and one tiny throughput run end to end."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import search_efficiency as se  # noqa: E402  (bench/ is not a package)
from common import variant_name  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def run(arm: str, seed: int, f1s: list, *, seconds: float = 1.0, trials: int = 3, epochs: int = 2,
        val_se: float = 0.05, test_f1: float | None = None) -> dict:
    """A synthetic run: one event per f1 in arrival order, trials taking turns, each epoch `seconds` long."""
    events = [{"trial": f"t{k % trials}", "epoch": k // trials + 1, "f1": f, "s": seconds, "t": float(k)}
              for k, f in enumerate(f1s)]
    best = max(f1s)
    return {"arm": arm, "seed": seed, "events": events, "trials": trials, "max_epochs": epochs, "grace_period": 1,
            "wall_s": float(len(f1s)), "errors": 0,
            "promoted": {"val_f1": best, "val_se": val_se, "test_f1": best - 0.06 if test_f1 is None else test_f1}}


def test_analyse_measures_each_arm_against_random_fifos_best_minus_one_se_and_its_whole_budget():
    runs = [
        # 3 trials x 2 epochs, 2 s each: best 0.6, SE 0.05 -> target 0.55, reached at its 5th trial-epoch
        run("random_fifo", 0, [0.1, 0.2, 0.3, 0.5, 0.6, 0.4], seconds=2.0, val_se=0.05),
        run("tpe_asha", 0, [0.3, 0.56, 0.2], test_f1=0.50),
        run("random_asha", 0, [0.1, 0.2, 0.54, 0.3]),  # never reaches 0.55: a miss
        run("asha_rf2", 0, [0.1, 0.2]),  # a lever arm's short run does not move the base arms' equal budget
    ]
    result = se.analyse(runs, [0])
    row = result["per_seed"][0]
    assert row["target"] == pytest.approx(0.55)
    assert row["budget_trial_epochs"] == 6 and row["budget_trial_s"] == 12.0
    assert row["equal_budget"] == 3  # the smallest total a base arm spent
    tpe, rnd, fifo = (row["arms"][a] for a in ("tpe_asha", "random_asha", "random_fifo"))
    assert (tpe["to_target"], tpe["ratio"], tpe["ratio_s"]) == (2, pytest.approx(2 / 6), pytest.approx(2 / 12))
    assert (fifo["to_target"], fifo["ratio"], fifo["ratio_s"]) == (5, pytest.approx(5 / 6), pytest.approx(10 / 12))
    assert rnd["miss"] and rnd["ratio"] == math.inf and rnd["log2_ratio"] == pytest.approx(math.log2(se.MISS_RATIO))
    assert tpe["log2_ratio"] == pytest.approx(math.log2(2 / 6))
    assert (tpe["best_at_budget"], rnd["best_at_budget"], fifo["best_at_budget"]) == (0.56, 0.54, 0.3)
    assert tpe["promoted_test"] == 0.50 and tpe["winners_curse"] == pytest.approx(0.06)
    assert result["summary"]["random_asha"]["misses"] == 1 and result["summary"]["tpe_asha"]["misses"] == 0
    assert result["summary"]["random_fifo"]["epoch_s"] == pytest.approx(2.0)
    assert "asha_rf2 - tpe_asha" in result["comparisons"]
    # the JSON holds events as columns; read back, they analyse the same
    again = json.loads(json.dumps([se.event_columns(r) for r in runs]))
    assert se.analyse([se.event_rows(r) for r in again], [0])["per_seed"] == result["per_seed"]


def test_a_miss_is_infinite_in_the_median_and_fails_the_verdict():
    def seed_runs(seed, tpe_curve):
        return [run("tpe_asha", seed, tpe_curve), run("random_asha", seed, [0.9]),
                run("random_fifo", seed, [0.1, 0.2, 0.3, 0.9], trials=2, val_se=0.0)]

    # the target is 0.9 (best 0.9, SE 0): seed 0 reaches it in 1 of random_fifo's 4 trial-epochs; 1 to 4 never
    runs = seed_runs(0, [0.9]) + [r for seed in (1, 2, 3, 4) for r in seed_runs(seed, [0.1, 0.2])]
    result = se.analyse(runs, [0, 1, 2, 3, 4])
    assert [row["arms"]["tpe_asha"]["ratio"] for row in result["per_seed"]] == [0.25] + [math.inf] * 4
    summary = result["summary"]["tpe_asha"]
    assert summary["median_ratio"] == math.inf  # not 0.25, the median of the seeds that reached it
    assert summary["misses"] == 4
    verdict = result["verdict"]
    assert not verdict["misses_ok"] and not verdict["median_ratio_ok"]
    # random_asha reached it on every seed: its capped log2 ratios are lower, so it is ahead of tpe_asha
    assert result["comparisons"]["tpe_asha - random_asha"]["log2_ratio"]["ahead"] == "random_asha"
    assert not verdict["ahead_of_random_asha_log2_ratio"]


def test_paired_interval_over_seeds_separates_a_steady_gain_from_noise():
    steady = se.paired_interval([0.010, 0.012, 0.008, 0.011, 0.009])
    assert 0 < steady["low"] < steady["mean"] < steady["high"]
    noisy = se.paired_interval([0.05, -0.04, 0.03, -0.05, 0.01])
    assert noisy["low"] < 0 < noisy["high"]
    assert se.paired_interval([None, 0.01])["seeds"] == 1

    # A beats B by 0.01 on every seed while the seeds differ by 0.2: only the pairing shows it
    rows = [{"arms": {"a": {"promoted_test": base + 0.01, "log2_ratio": -1.0, "best_at_budget": base},
                      "b": {"promoted_test": base, "log2_ratio": -1.0, "best_at_budget": base + 0.05 * (i % 2 - 0.5)}}}
            for i, base in enumerate([0.5, 0.7, 0.6, 0.8, 0.55])]
    figures = se.compare(rows, "a", "b")
    assert figures["promoted_test"]["ahead"] == "a"
    assert figures["log2_ratio"]["ahead"] is None and figures["best_at_budget"]["ahead"] is None
    assert se.compare(rows[:2], "a", "b")["promoted_test"]["ahead"] is None  # two seeds never decide


def test_micro_f1_bootstrap_matches_scikit_learn_and_its_se_shrinks_with_the_square_root_of_n():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    targets = (rng.random((600, 5)) < 0.3).astype(np.uint8)
    probs = np.clip(targets * 0.4 + rng.random((600, 5)) * 0.6, 0, 1).astype(np.float32)
    thresholds = np.array([0.5, 0.4, 0.5, 0.6, 0.5], np.float32)
    f1, err = se.micro_f1_bootstrap(probs, targets, thresholds)
    assert f1 == pytest.approx(f1_score(targets, probs >= thresholds, average="micro"))
    assert se.micro_f1_bootstrap(probs, targets, thresholds) == (f1, err)  # fixed resampling seed
    _, err4 = se.micro_f1_bootstrap(np.tile(probs, (4, 1)), np.tile(targets, (4, 1)), thresholds)
    assert 0 < err and err4 / err == pytest.approx(0.5, abs=0.1)


def test_rank_correlation_compares_each_asha_rung_with_the_final_epoch():
    assert se.rungs(6, 1) == [1, 3] and se.rungs(9, 1) == [1, 3] and se.rungs(6, 2) == [2]
    events = []
    for trial, (first, third, final) in enumerate([(0.1, 0.5, 0.2), (0.2, 0.4, 0.3), (0.3, 0.3, 0.4), (0.4, 0.2, 0.5)]):
        events += [{"trial": f"t{trial}", "epoch": e, "f1": f, "s": 1.0}
                   for e, f in ((1, first), (2, 0.0), (3, third), (4, 0.0), (5, 0.0), (6, final))]
    rho = se.rank_correlation({"events": events, "max_epochs": 6, "grace_period": 1})
    assert rho["epoch1"]["rho"] == pytest.approx(1.0) and rho["epoch1"]["trials"] == 4
    assert rho["epoch3"]["rho"] == pytest.approx(-1.0)


def test_each_lever_arm_is_tpe_asha_with_one_thing_changed():
    from optuna.samplers import RandomSampler, TPESampler
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from search.options import SearchOptions

    base = dataclasses.asdict(se.ARMS["tpe_asha"])
    for name, arm in se.ARMS.items():
        changed = [k for k, v in dataclasses.asdict(arm).items() if v != base[k] and k != "what"]
        assert len(changed) == (0 if name == "tpe_asha" else 2 if name == "random_fifo" else 1), (name, changed)
    opts = SearchOptions(data="d", space="s", trials=36, epochs=6, seed=3)
    assert se.tuner_kwargs(se.ARMS["tpe_asha"], opts) == {"baseline_points": False}  # build_tuner's own TPE + ASHA
    assert se.tuner_kwargs(se.ARMS["tpe_points"], opts) == {"baseline_points": True}
    assert se.tuner_kwargs(se.ARMS["tpe_pruned"], opts) == {"baseline_points": False, "tell_pruned": True}
    assert isinstance(se.tuner_kwargs(se.ARMS["random_asha"], opts)["sampler"], RandomSampler)
    fifo = se.tuner_kwargs(se.ARMS["random_fifo"], opts)
    assert isinstance(fifo["sampler"], RandomSampler) and isinstance(fifo["scheduler"], FIFOScheduler)
    startup = se.tuner_kwargs(se.ARMS["tpe_startup4"], opts)["sampler"]
    assert isinstance(startup, TPESampler) and startup._n_startup_trials == 4 and startup._multivariate
    assert not se.tuner_kwargs(se.ARMS["tpe_univariate"], opts)["sampler"]._multivariate
    assert not se.tuner_kwargs(se.ARMS["tpe_no_liar"], opts)["sampler"]._constant_liar
    assert se.tuner_kwargs(se.ARMS["tpe_startup4"], opts)["sampler"]._constant_liar  # Optuna 5's default
    rf2 = se.tuner_kwargs(se.ARMS["asha_rf2"], opts)["scheduler"]
    assert isinstance(rf2, ASHAScheduler) and rf2._reduction_factor == 2 and rf2._max_t == 6
    assert se.expected_trial_epochs("random_fifo", 36, 6, 1) == 216
    assert se.expected_trial_epochs("asha_rf2", 36, 6, 1) > se.expected_trial_epochs("tpe_asha", 36, 6, 1)


def test_arms_flag_and_results_file_names():
    args = se.parse_args(["--arms", "tpe_asha,asha_rf2"])
    assert args.arms == ["tpe_asha", "asha_rf2", "random_fifo"]  # the reference always runs: it sets the target
    with pytest.raises(SystemExit):
        se.parse_args(["--arms", "tpe_asha,bogus"])
    assert se.variant_of(se.parse_args([])) == "screen"
    assert se.variant_of(se.parse_args(["--part", "confirm"])) == "confirm"
    assert se.variant_of(se.parse_args(["--seeds", "0", "--trials", "4"])) == "screen-seeds0-trials4"
    confirm = se.parse_args(["--part", "confirm"])
    assert confirm.seeds == [5, 6, 7, 8, 9] and confirm.target_se == 0.0  # pooled with the screen's 0-4
    assert se.parse_args([]).target_se == 1.0
    assert se.variant_of(se.parse_args(["--part", "confirm", "--reuse", "a.json"])) == "confirm"


def test_the_confirmations_target_is_random_searchs_best_itself_and_each_json_reports_the_other_rule():
    runs = [run("random_fifo", 0, [0.1, 0.2, 0.3, 0.5, 0.6, 0.4], val_se=0.05), run("tpe_asha", 0, [0.3, 0.56, 0.2])]
    assert se.analyse(runs, [0], target_se=1.0)["per_seed"][0]["arms"]["tpe_asha"]["to_target"] == 2
    strict = se.analyse(runs, [0], target_se=0.0)["per_seed"][0]
    assert strict["target"] == pytest.approx(0.6) and strict["arms"]["tpe_asha"]["miss"]
    assert se.other_se(0.0) == 1.0 and se.other_se(1.0) == 0.0
    assert se.analyse(runs, [1])["per_seed"] == []  # runs of other seeds are left out
    shown = se.analyse(runs, [0], baselines={0: {"rule": "predict a", "val": 0.3, "test": 0.2}})
    assert shown["per_seed"][0]["baseline"]["val"] == 0.3  # every seed's scores next to its no-learning baseline
    assert shown["baseline"] == {"rule": "predict a", "mean_val": 0.3, "mean_test": 0.2}


def test_a_warm_arm_starts_from_the_previous_seeds_tpe_search_and_is_timed_to_the_cold_ones_best():
    order = se.warm_order(["tpe_asha", "tpe_warm", "random_fifo"], [5, 6, 7])
    assert order == [(5, "tpe_asha", None), (5, "random_fifo", None),
                     (6, "tpe_asha", None), (6, "tpe_warm", 5), (6, "random_fifo", None),
                     (7, "tpe_asha", None), (7, "tpe_warm", 6), (7, "random_fifo", None),
                     (5, "tpe_warm", 7)]  # the first seed's prior is the last seed's search: it runs at the end
    with pytest.raises(SystemExit, match="two seeds"):
        se.warm_order(["tpe_asha", "tpe_warm"], [5])
    cold = run("tpe_asha", 0, [0.1, 0.2, 0.3, 0.6, 0.5, 0.4])  # its best, 0.6, at its 4th trial-epoch
    warm = {**run("tpe_warm", 0, [0.3, 0.6, 0.2]), "warm_start": {"prior": "tpe_asha-seed9", "added": 44}}
    runs = [cold, warm, run("random_fifo", 0, [0.1, 0.2, 0.3, 0.5, 0.6, 0.4])]
    figures = se.analyse(runs, [0])["per_seed"][0]["warm_start"]["tpe_warm"]
    assert (figures["cold_to_best"], figures["warm_to_cold_best"], figures["added"]) == (4, 2, 44)
    assert figures["log2_warm_over_cold"] == pytest.approx(-1.0)  # half the trial-epochs
    missed = se.warm_figures(cold, {**warm, "events": warm["events"][:1]}, budget=6)
    assert missed["miss"] and missed["log2_warm_over_cold"] == pytest.approx(math.log2(se.MISS_RATIO / (4 / 6)))


def test_reuse_reads_back_runs_of_the_same_sizes_and_refuses_others(tmp_path):
    params = {"trials": 3, "epochs": 2, "n_images": 600, "concurrency": 2, "grace_period": 1,
              "space_fingerprint": "abc", "gpu": False}
    runs = [run("random_fifo", 0, [0.1, 0.5]), run("tpe_asha", 0, [0.4])]
    f = tmp_path / "screen.json"
    f.write_text(json.dumps({"parameters": params, "results": {"runs": [se.event_columns(r) for r in runs]}}))
    assert se.reused_runs([str(f)], params) == json.loads(json.dumps(runs))
    with pytest.raises(SystemExit, match="other trials, epochs"):
        se.reused_runs([str(f)], {**params, "trials": 44, "epochs": 6})
    lever = tmp_path / "lever.json"  # a lever JSON holds copies of the runs it reused: each is read once
    lever.write_text(json.dumps({"parameters": params, "results": {"runs": [se.event_columns(r) for r in
                                                                            runs + [run("tpe_startup4", 0, [0.6])]]}}))
    pooled = se.reused_runs([str(f), str(lever)], params)
    assert sorted(r["arm"] for r in pooled) == ["random_fifo", "tpe_asha", "tpe_startup4"]
    other = tmp_path / "other.json"  # the same seed and arm with other events: which one to pool is not clear
    other.write_text(json.dumps({"parameters": params, "results": {"runs": [se.event_columns(run("tpe_asha", 0, [0.2]))]}}))
    with pytest.raises(SystemExit, match="seed 0 arm tpe_asha differs"):
        se.reused_runs([str(f), str(other)], params)


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


# ---- host_overhead.py: the analysis on hand-made result rows ---------------------------------------------


def host_trial(pid: int, started_at: float, *, import_s: float, epochs: int = 3, pending: float = 1.0,
               setup: float = 0.3, report: float = 0.05) -> dict:
    """A trial as host_overhead's clock keeps it: epochs of train 1.0, val 0.5, metrics 0.1, checkpoint 0.2 and the
    previous report (0 in the first), 0.01 s of other each; the driver saw it PENDING `pending` s before its entry."""
    import host_overhead as ho

    rows, t = [], started_at + setup
    for epoch in range(1, epochs + 1):
        phases = {ho.TRAIN_S: 1.0, ho.VAL_FORWARD_S: 0.5, ho.METRICS_S: 0.1, ho.CHECKPOINT_S: 0.2,
                  ho.REPORT_S: 0.0 if epoch == 1 else report}
        epoch_s = sum(phases.values()) + 0.01
        t += epoch_s
        row = {"epoch": epoch, "pid": pid, "started_at": started_at, "reported_at": t, **phases, ho.EPOCH_S: epoch_s}
        if epoch == 1:
            row.update({ho.IMPORT_S: import_s, ho.MODEL_BUILD_S: 0.2, ho.DATA_TO_DEVICE_S: 0.05})
        rows.append(row)
    return {"rows": rows, "pending_driver": started_at - pending, "started_driver": started_at - 0.01,
            "completed_driver": t + 0.1}


def test_host_overhead_splits_steady_epochs_into_the_levers_and_times_a_reused_workers_start():
    import host_overhead as ho
    from trainable import timing

    # two cold workers (imports 2 s, placement 5 s); each first trial ends its last report at 100 + 5.83
    # (set-up 0.3 + epochs 1.81 + 2 x 1.86) and the driver sees it complete 0.1 s later; a later trial enters
    # each worker 0.4 s after that (reused: import 0; Tune never showed it PENDING: pending is ignored for it)
    first_end = 100.0 + 0.3 + 1.81 + 2 * 1.86
    later = first_end + 0.1 + 0.4
    trials = [host_trial(1, 100.0, import_s=2.0, pending=5.0), host_trial(2, 100.0, import_s=2.0, pending=5.0),
              host_trial(1, later, import_s=0.0, pending=0.01, setup=0.1),
              host_trial(2, later, import_s=0.0, pending=0.01, setup=0.1)]
    out = ho.analyse({"cnn5": trials}, summarise=timing.summarise)["models"]["cnn5"]
    assert out["steady_trial_epochs"] == 8  # epochs 2 and 3 of four trials
    assert (out["checkpoint_s"], out["metrics_s"], out["report_s"]) == pytest.approx((0.2, 0.1, 0.05))
    assert out["other_s"] == pytest.approx(0.01)
    assert out["host_s"] == pytest.approx(0.2 + 0.1 + 0.05 + 0.01)  # epoch - train - val forward
    assert out["first_epoch_host_s"] == pytest.approx(0.31)  # no report before the first epoch
    assert out["later_trials"] == 2
    assert out["later_placement_s"] == pytest.approx(0.4) and out["later_setup_s"] == pytest.approx(0.1)
    assert out["later_start_s"] == pytest.approx(0.5) and out["cold_start_s"] == pytest.approx(5.3)
    assert out["later_import_s"] == 0.0 and out["cold_import_s"] == 2.0
    assert out["finish_s"] == pytest.approx(0.1)
    assert out["worker_gap_s"] == pytest.approx(0.5)  # finish + the later trial's placement
    # train share: 3 s of training over placement + entry to the last report + finish, as the tracker would sum it
    assert out["train_shares"][0] == pytest.approx(3.0 / (5.0 + (first_end - 100.0) + 0.1))
    assert out["train_shares"][2] == pytest.approx(3.0 / (0.4 + (0.1 + 1.81 + 2 * 1.86) + 0.1))
    assert out["host_target_met"] is False and out["later_start_target_met"] is True


def test_host_overhead_charges_each_epoch_its_own_report_and_splits_weights_from_record_epochs():
    """An epoch's folder is copied by the NEXT row's report: the split charges it there. Epoch 2 of 4 wrote only its
    record (its copy 0.01 s), the others weights (0.3 s); epoch 4 is last (no next row: not in the split)."""
    import host_overhead as ho

    trial = host_trial(1, 100.0, import_s=2.0, epochs=4)
    for row, report in zip(trial["rows"], (0.0, 0.3, 0.01, 0.3)):  # row k holds epoch k-1's report
        row[ho.EPOCH_S] += report - row[ho.REPORT_S]
        row[ho.REPORT_S] = report
    trial["weights"] = {"1": True, "2": False, "3": True, "4": True}  # as the JSON keeps them
    assert ho.own_epochs(trial) == [(False, pytest.approx(0.31 + 0.01)), (True, pytest.approx(0.31 + 0.3))]
    out = ho.analyse({"m": [trial]})["models"]["m"]
    assert out["own_host_record_s"] == pytest.approx(0.32) and out["own_host_weights_s"] == pytest.approx(0.61)
    assert out["weights_share"] == 0.75
    del trial["weights"]  # a run before the records: every epoch counts as weights
    out = ho.analyse({"m": [trial]})["models"]["m"]
    assert out["own_host_record_s"] is None and out["weights_share"] == 1.0


def test_host_overhead_judges_no_target_without_data_and_compares_two_runs_per_lever(tmp_path):
    import host_overhead as ho
    from trainable import timing

    one = [host_trial(1, 100.0, import_s=2.0, epochs=1)]  # one epoch, one cold trial: nothing steady, no later start
    result = ho.analyse({"dummy": one}, summarise=timing.summarise)
    assert result["models"]["dummy"]["host_s"] is None and result["models"]["dummy"]["later_start_s"] is None
    assert result["targets"]["host_met_by_every_model"] is None

    def run(label: str, report: float) -> dict:
        trials = [host_trial(1, 100.0, import_s=2.0, report=report), host_trial(1, 110.0, import_s=0.0, report=report)]
        return {"parameters": {"label": label}, "machine": {},
                "results": ho.analyse({"cnn5": trials}, summarise=timing.summarise)}

    comparison = ho.compare(run("before", 0.5), run("after", 0.05))
    assert set(comparison) == {key for key, _ in ho.LEVERS}
    assert comparison["report_s"]["cnn5"]["change"] == pytest.approx(-0.45)
    assert comparison["checkpoint_s"]["cnn5"]["change"] == pytest.approx(0.0)
    paths = [tmp_path / "before.json", tmp_path / "after.json"]
    for path, record in zip(paths, (run("before", 0.5), run("after", 0.05))):
        path.write_text(json.dumps(record))
    ho.main(["--compare", *map(str, paths), "--results-dir", str(tmp_path)])
    (written,) = tmp_path.glob("host_overhead-compare-before-after_*.json")
    assert json.loads(written.read_text())["results"]["levers"]["report_s"]["cnn5"]["before"] == pytest.approx(0.5)
