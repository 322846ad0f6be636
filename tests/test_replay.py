"""bench/curves.py and bench/replay.py on a tiny recorded table made here (random probabilities, no training)."""

from __future__ import annotations

import functools
import heapq
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import curves  # noqa: E402  (bench/ is not a package)
import replay  # noqa: E402
import search_efficiency as se  # noqa: E402

pytestmark = pytest.mark.timeout(120)

TINY_SPACE = {
    "model": ["cnn3bn", "cnn4"], "loss": ["bce"], "optimizer": ["adamw", "sgd"],
    "lr_adamw": {"low": 1e-5, "high": 1e-2, "log": True}, "lr_sgd": {"low": 1e-3, "high": 0.3, "log": True},
    "weight_decay": {"low": 1e-6, "high": 1e-3, "log": True}, "batch_size": [32, 64],
    "threshold": {"low": 0.2, "high": 0.6}, "color": ["rgb"], "augment": ["none"], "pos_weight": ["off"],
    "width": 0.25, "image_size": 32,
}
"""2 models x 2 optimizers x 1 lr x 2 batch sizes = 8 grid points"""
EPOCHS, N_VAL, N_TEST, LABELS = 3, 40, 30, 5


def tiny_manifest(fingerprint: str = "fake-data", space: dict = TINY_SPACE, epochs: int = EPOCHS,
                  lr_steps: int = 1) -> curves.Manifest:
    spec = {"n_images": 100, "data_seed": 0, "split_seed": 0, "image_size": 32, "fingerprint": fingerprint,
            "labels": [f"l{i}" for i in range(LABELS)]}
    return curves.make_manifest(space, spec, epochs=epochs, train_seeds=(0, 1), lr_steps=lr_steps)


def fake_part(rng: np.random.Generator, quality: float, targets: dict, epochs: int = EPOCHS) -> dict:
    """Probabilities that separate the labels better with `quality` and with each epoch; distinct epoch seconds."""
    def probs(split: str, epoch: int) -> np.ndarray:
        signal = quality * (epoch + 1) / epochs
        noise = rng.normal(0, 1, targets[split].shape)
        return (1 / (1 + np.exp(-(signal * (2.0 * targets[split] - 1) + noise - 0.5)))).astype(np.float16)

    return {"val": np.stack([probs("val", e) for e in range(epochs)]),
            "test": np.stack([probs("test", e) for e in range(epochs)]),
            "val_targets": targets["val"], "test_targets": targets["test"],
            "epoch_s": rng.uniform(1.0, 3.0, epochs), "train_s": rng.uniform(0.5, 1.0, epochs),
            "val_f1_recorded": np.zeros(epochs), "startup_s": np.float64(rng.uniform(0.1, 0.3)),
            "diverged": np.int64(0), "diverged_s": np.float64(0.0)}


@pytest.fixture
def tiny_table(tmp_path) -> Path:
    """A complete curves folder: 8 grid points x 2 seeds x 3 epochs."""
    rng = np.random.default_rng(0)
    targets = {"val": (rng.random((N_VAL, LABELS)) < 0.3).astype(np.uint8),
               "test": (rng.random((N_TEST, LABELS)) < 0.3).astype(np.uint8)}
    folder = tmp_path / "curves"
    manifest = curves.open_folder(folder, tiny_manifest())
    for k, key in enumerate(manifest.keys()):
        for seed in manifest.train_seeds:
            curves.write_part(folder, manifest, key, seed, fake_part(rng, 0.2 + 0.15 * k, targets))
    return folder


def test_the_frozen_space_makes_a_432_point_grid_with_three_log_midpoints_per_optimizer():
    manifest = tiny_manifest(space=se.make_space(gpu=False), lr_steps=curves.LR_STEPS)
    assert len(manifest.grid) == 432 and len(manifest.keys()) == 324  # msm's pos_weight twins share a part
    g = manifest.grid_space
    assert g["lr_adam"] == pytest.approx([10 ** -4.5, 10 ** -3.5, 10 ** -2.5])
    assert g["lr_sgd"][0] == pytest.approx(10 ** (-3 + np.log10(300) / 6))
    assert g["weight_decay"] == pytest.approx(10 ** -4.5) and g["threshold"] == {"low": 0.2, "high": 0.6}
    cfg = curves.train_config(manifest.point_of(manifest.keys()[-1]), 1, manifest)
    point = manifest.point_of(manifest.keys()[-1])
    assert (cfg.model, cfg.optimizer, cfg.lr, cfg.seed, cfg.threads) == (
        point["model"], point["optimizer"], point["lr_" + point["optimizer"]], 1, 1)


def test_val_micro_f1_at_any_threshold_matches_scikit_learn(tiny_table):
    from sklearn.metrics import f1_score

    tbl = replay.CurvesTable(tiny_table)
    curve = tbl.curves[tbl.manifest.keys()[3], 1]
    # a probability exactly at the threshold counts as predicted (>=, as trainable.metrics.predict)
    on_a_value = float(np.sort(curve.val[1].ravel())[N_VAL * LABELS // 2])
    for epoch, t in [(1, 0.2), (2, 0.37), (3, 0.6), (3, 0.5), (2, on_a_value)]:
        predicted = (curve.val[epoch - 1].astype(np.float32) >= t).astype(np.uint8)
        assert tbl.val_f1(curve, epoch, t) == pytest.approx(f1_score(tbl.val_targets, predicted, average="micro"))


def expected_arrivals(trials: list, curves_of: list) -> list[tuple[float, str, int]]:
    """Two workers, every trial all its epochs (FIFO, no decision time): trial k starts on the first free worker."""
    free, out = [0.0, 0.0], []
    for trial, curve in zip(trials, curves_of):
        t = heapq.heappop(free) + curve.startup_s
        for epoch, seconds in enumerate(curve.epoch_s, start=1):
            t += seconds
            out.append((t, trial, epoch))
        heapq.heappush(free, t)
    return sorted(out)


def test_results_arrive_in_the_order_two_simulated_workers_produce_them(tiny_table):
    tbl = replay.CurvesTable(tiny_table)
    sim = replay.Replay("random_fifo", 3, 9, tbl, measure=False)
    run = sim.run()
    want = expected_arrivals([t.trial_id for t in sim.controller.trials], [t.curve for t in sim.controller.trials])
    assert [(e["trial"], e["epoch"]) for e in run["events"]] == [(trial, epoch) for _, trial, epoch in want]
    assert [e["t"] for e in run["events"]] == pytest.approx([t for t, _, _ in want])
    assert len(run["events"]) == 9 * EPOCHS
    # the draws of training seeds belong to the seed, not the arm
    again = replay.Replay("random_asha", 3, 9, tbl, measure=False)
    again.run()
    drawn = lambda s: [next(k for k in tbl.seeds if tbl.curves[tbl.key_of(t.config), k] is t.curve)  # noqa: E731
                       for t in s.controller.trials]
    assert drawn(sim) == drawn(again) and len(set(drawn(sim))) == 2


def test_asha_stops_trials_at_its_rungs_as_rays_asha_scheduler_would(tiny_table):
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    tbl = replay.CurvesTable(tiny_table)
    run = replay.Replay("random_asha", 5, 12, tbl, measure=False).run()
    ray_asha = ASHAScheduler(metric="val/micro_f1", mode="max", max_t=EPOCHS, grace_period=1, reduction_factor=3)
    stopped_at: dict[str, int] = {}
    for e in run["events"]:  # Ray's own ASHA on the same results in the same order
        assert e["trial"] not in stopped_at, "a result after ASHA stopped the trial"
        trial = replay.SimTrial(e["trial"], {}, None, 0.5)
        if e["epoch"] == 1:
            ray_asha.on_trial_add(None, trial)
        result = {"training_iteration": e["epoch"], "val/micro_f1": e["f1"]}
        if ray_asha.on_trial_result(None, trial, result) == TrialScheduler.STOP:
            stopped_at[e["trial"]] = e["epoch"]
            ray_asha.on_trial_complete(None, trial, result)
    epochs = {}
    for e in run["events"]:
        epochs[e["trial"]] = e["epoch"]
    assert epochs == stopped_at  # every trial ends exactly where Ray's ASHA stops it
    assert set(epochs.values()) == {1, EPOCHS}  # rungs at 1 (cut) and at max_t
    assert 12 <= len(run["events"]) < 12 * EPOCHS


@pytest.mark.parametrize("arm, state", [("tpe_asha", "COMPLETE"), ("tpe_pruned", "PRUNED")])
def test_the_searcher_is_told_each_result_as_tune_tells_it(tiny_table, arm, state):
    from optuna.trial import TrialState

    tbl = replay.CurvesTable(tiny_table)
    sim = replay.Replay(arm, 1, 10, tbl, measure=False)
    run = sim.run()
    study = sim.searcher.searcher.optuna_study()
    trials = {t.user_attrs["tune_trial_id"]: t for t in study.get_trials()}
    assert len(trials) == 10
    for trial_id, t in trials.items():
        mine = [e for e in run["events"] if e["trial"] == trial_id]
        # Tune tells the searcher every result ASHA lets through; the stopping one only at completion
        assert t.intermediate_values == {e["epoch"]: e["f1"] for e in mine[:-1]}
        if len(mine) < EPOCHS:
            assert t.state == TrialState[state]
        else:
            assert t.state == TrialState.COMPLETE and t.value == mine[-1]["f1"]
        config = next(x.config for x in sim.controller.trials if x.trial_id == trial_id)
        assert t.params["threshold"] == config["threshold"]
    assert any(len([e for e in run["events"] if e["trial"] == i]) < EPOCHS for i in trials)


def test_the_optuna_native_arm_stops_trials_where_its_hyperband_pruner_says_and_tells_the_study(tiny_table):
    from optuna.trial import TrialState

    tbl = replay.CurvesTable(tiny_table)
    sim = replay.Replay("tpe_hyperband", 4, 12, tbl, measure=False)
    run = sim.run()
    study = sim.searcher.study
    trials = study.get_trials()
    assert len(trials) == 12 and not sim.searcher.live  # every asked trial was told
    by_trial = {}
    for e in run["events"]:
        by_trial.setdefault(e["trial"], []).append(e)
    for number, (trial_id, mine) in enumerate(sorted(by_trial.items())):
        t = trials[number]
        assert t.intermediate_values == {e["epoch"]: e["f1"] for e in mine}  # every epoch reported before pruning
        if trial_id in sim.searcher.pruned:  # Optuna's brackets may also prune at the last epoch (a top rung)
            assert t.state == TrialState.PRUNED
        else:
            assert t.state == TrialState.COMPLETE and t.value == mine[-1]["f1"] and len(mine) == EPOCHS
    assert any(len(mine) < EPOCHS for mine in by_trial.values())  # Hyperband's brackets cut some trials early
    assert isinstance(study.pruner, __import__("optuna").pruners.HyperbandPruner)


@pytest.mark.parametrize("arm", ["st_asha", "st_bohb"])
def test_syne_tune_arms_run_its_own_simulator_on_the_same_curves_and_draws(tiny_table, arm):
    import replay_synetune as st

    assert not replay.arm_unavailable(arm), replay.arm_unavailable(arm)  # `make setup` installs the bench extra
    tbl = replay.CurvesTable(tiny_table)
    run = replay.replay_search(arm, 2, 9, tbl, measure=False)
    assert run["trials_started"] == 9  # exactly the budget, though Syne Tune checks its stop once a loop
    _, rows = tbl._synetune
    draws = np.random.default_rng(2).integers(len(tbl.seeds), size=9)  # replay.Replay's draws for seed 2
    epochs = {}
    for e in sorted(run["events"], key=lambda e: (e["trial"], e["epoch"])):
        assert e["epoch"] == epochs.get(e["trial"], 0) + 1  # epoch by epoch, nothing after a stop
        epochs[e["trial"]] = e["epoch"]
    assert set(epochs.values()) <= {1, EPOCHS} and 1 in epochs.values()  # stopped at ASHA's rung or run through
    p = run["promoted"]
    row = next(r for r in rows if all(r[k] == v for k, v in p["config"].items()))
    k = int(p["trial"].split("_")[1])
    curve = st.curve_of(tbl, row, int(draws[k]))
    assert p["val_f1"] == pytest.approx(tbl.val_f1(curve, p["epoch"], row["threshold"]))
    assert p["val_f1"] == max(e["f1"] for e in run["events"]) and p["train_seed"] == tbl.seeds[int(draws[k])]
    busy = sum(e["s"] for e in run["events"])
    assert busy / 2 - 1e-6 <= run["wall_s"] <= busy  # its simulated clock: two workers, busy while trials run


@pytest.mark.parametrize("arm", ["qmc_asha", "cmaes_asha"])
def test_shared_lr_arms_search_one_lr_index_and_land_on_grid_points(tiny_table, arm):
    assert not replay.arm_unavailable(arm), replay.arm_unavailable(arm)  # `make setup` installs the bench extra
    tbl = replay.CurvesTable(tiny_table)
    sim = replay.Replay(arm, 2, 8, tbl, measure=False)
    sim.run()
    for t in sim.controller.trials:
        assert replay.LR_INDEX in t.config and tbl.key_of(t.config) in tbl.manifest.parts


def test_replay_figures_pair_every_arm_with_random_asha(tiny_table):
    tbl = replay.CurvesTable(tiny_table)
    runs = replay.replay_all(tbl, ["tpe_asha", "random_asha", "random_fifo"], list(range(4)), [8], 1, False, 1.0,
                             yardstick=False)
    out = replay.analyse(runs, 1.0)
    fifo = out["summary"]["random_fifo"]
    assert fifo["seeds"] == 4 and fifo["share_of_fifo_epochs"] == pytest.approx(1.0)
    assert fifo["median_ratio"]["median"] <= 1 and fifo["misses"] == 0  # the reference reaches its own best - 1 SE
    assert out["summary"]["random_asha"]["share_of_fifo_epochs"] < 1
    assert {"tpe_asha - random_asha", "random_fifo - random_asha", "random_fifo - tpe_asha"} <= set(out["comparisons"])
    assert "random_asha - tpe_asha" not in out["comparisons"]  # the baseline pair is tpe_asha - random_asha
    row = out["per_seed"][0]
    assert row["target"] < row["reference_best"]  # 1 bootstrap SE below
    ref = next(r for r in runs if r["arm"] == "random_fifo" and r["seed"] == row["seed"])
    assert ref["promoted"]["val_f1"] == row["reference_best"]


def test_pairs_against_the_default_are_added_to_a_finished_run_from_its_rows(tiny_table, tmp_path):
    import json

    tbl = replay.CurvesTable(tiny_table)
    runs = replay.replay_all(tbl, ["tpe_asha", "random_asha", "random_fifo", "tpe_pruned"], [0, 1, 2], [8], 1,
                             False, 0.0)
    figures = json.loads(json.dumps(replay.analyse(runs, 0.0)))  # as a JSON holds it
    want = {k: v for k, v in figures["comparisons"].items() if k.endswith(f" - {replay.DEFAULT}")}
    assert set(want) == {"random_fifo - tpe_asha", "tpe_pruned - tpe_asha"}
    older = {**figures, "comparisons": {k: v for k, v in figures["comparisons"].items() if k not in want}}
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"results": {"budgets": {"8": older}}}))
    replay.add_default_comparisons(path)
    added = json.loads(path.read_text())["results"]["budgets"]["8"]["comparisons"]
    assert {k: added[k] for k in want} == want


def test_the_yardstick_is_a_search_of_its_own_and_shares_no_arms_configurations(tiny_table):
    tbl = replay.CurvesTable(tiny_table)

    def proposed(arm: str, seed: int) -> list[str]:
        sim = replay.Replay(arm, seed, 8, tbl, measure=False)
        sim.run()
        return [f"{tbl.key_of(t.config)}@{t.config['threshold']}" for t in sim.controller.trials]

    # why the arms' own seed would not do: random_asha proposes random_fifo's configurations, in order
    assert proposed("random_asha", 3) == proposed("random_fifo", 3)
    assert not set(proposed("random_fifo", 3 + replay.YARDSTICK_OFFSET)) & set(proposed("random_asha", 3))
    runs = replay.replay_all(tbl, ["random_asha", "random_fifo"], [0, 1, 2], [8], 1, False, 0.0)
    yardsticks = {r["seed"]: r for r in runs if r["arm"] == replay.YARDSTICK}
    assert sorted(yardsticks) == [0, 1, 2]
    out = replay.analyse(runs, 0.0)
    assert set(out["summary"]) == {"random_asha", "random_fifo"}
    for row in out["per_seed"]:
        ys = yardsticks[row["seed"]]
        assert row["reference_best"] == se.best_within(ys["events"], len(ys["events"]))
        assert row["budget_trial_epochs"] == 8 * EPOCHS and row["budget_trial_s"] == se.spent_s(ys["events"])


def test_the_real_tuner_check_ships_scores_that_match_the_table(tiny_table):
    import replay_tuner

    tbl = replay.CurvesTable(tiny_table)
    scores = replay_tuner.scores_of(tbl)
    for key in tbl.manifest.keys()[:3]:
        for seed in tbl.seeds:
            for epoch, t in [(1, 0.2), (2, 0.437), (3, 0.6)]:
                assert scores.val_f1(key, seed, epoch, t) == pytest.approx(tbl.val_f1(tbl.curves[key, seed], epoch, t))
    sim = replay.Replay("random_fifo", 0, 3, tbl, measure=False)
    sim.run()
    for trial in sim.controller.trials:  # the trainable finds the same part as the replay
        assert scores.key_of(trial.config) == tbl.key_of(trial.config)
    configs = [{**sim.controller.trials[0].config, "threshold": 0.2 + k / 100} for k in range(40)]
    draws = [scores.seed_of(7, c) for c in configs]
    assert set(draws) == set(tbl.seeds) and draws == [scores.seed_of(7, dict(c)) for c in configs]
    # the replay side trains each configuration on the seed the trainable draws for it
    sim = replay.Replay("random_asha", 7, 6, tbl, measure=False, draw=functools.partial(scores.seed_of, 7))
    sim.run()
    assert all(t.curve is tbl.curves[tbl.key_of(t.config), scores.seed_of(7, t.config)] for t in sim.controller.trials)


def test_the_table_summary_finds_the_best_point_and_counts_the_configurations_near_it(tiny_table):
    tbl = replay.CurvesTable(tiny_table)
    out = replay.table_summary(tbl, step=0.05)
    assert len(out["parts"]) == len(tbl.curves) and out["configurations"] == len(tbl.manifest.keys())
    best = out["best"]
    curve = tbl.curves[best["part"], best["seed"]]
    assert best["val_f1"] == pytest.approx(tbl.val_f1(curve, best["epoch"], best["threshold"]))
    # no part, epoch or threshold of the grid scores above it
    assert all(e["val_f1"] <= best["val_f1"] for p in out["parts"] for e in p["epochs"])
    by_key = {}
    for p in out["parts"]:
        by_key.setdefault(p["part"], []).append(max(e["val_f1"] for e in p["epochs"]))
    near = sum(np.mean(v) >= best["val_f1"] - best["val_se"] for v in by_key.values())
    assert best["val_se"] > 0 and out["within_1se_of_best_seed_mean"] == near


def test_the_replay_is_judged_against_the_real_seeds_intervals():
    import json

    rows = json.loads(replay.REAL_RUNS.read_text())["results"]["per_seed"]
    real = {arm: [row["arms"][arm] for row in rows] for arm in replay.VERSUS_REAL}
    fifo = np.mean([a["trial_epochs"] for a in real["random_fifo"]])

    def summary(shift: float = 1.0, share: float = 1.0, misses: int = 0) -> dict:  # as replay.summarise writes it
        out = {}
        for arm, arms in real.items():
            median = float(np.median([np.inf if a["miss"] else a["ratio"] for a in arms])) * shift
            out[arm] = {"median_ratio": {"median": median}, "misses": misses, "seeds": 100,
                        "share_of_fifo_epochs": np.mean([a["trial_epochs"] for a in arms]) / fifo * share}
        return out

    same = replay.versus_real(summary(), replay.REAL_RUNS)
    assert all(same[a]["median_inside"] and same[a]["share_within_10pct"] for a in replay.VERSUS_REAL)
    assert same["random_asha"]["miss_rate_inside"] and same["random_asha"]["real_miss_rate"]["exact_high"] > 0.2
    off = replay.versus_real(summary(shift=3.0, share=1.2, misses=60), replay.REAL_RUNS)
    assert not any(off[a]["median_inside"] or off[a]["share_within_10pct"] or off[a]["miss_rate_inside"]
                   for a in replay.VERSUS_REAL)


def test_a_folder_of_another_space_or_dataset_is_refused_in_one_line(tiny_table, tmp_path, monkeypatch, capsys):
    other = tiny_manifest(space={**TINY_SPACE, "batch_size": [16, 32]})
    with pytest.raises(curves.CurvesError, match="space fingerprint") as info:
        replay.CurvesTable(tiny_table, other.fingerprints)
    assert "\n" not in str(info.value) and other.fingerprints["space"] in str(info.value)
    with pytest.raises(curves.CurvesError, match="data fingerprint .*another dataset"):
        curves.open_folder(tiny_table, tiny_manifest("other-data"))  # a resume on other data
    # a part recorded on another dataset, dropped into the folder
    manifest = curves.read_manifest(tiny_table)
    key = manifest.keys()[0]
    part = curves.read_part(curves.part_path(tiny_table, key, 0))
    curves.write_part(tiny_table, tiny_manifest("other-data"), key, 0, {k: v for k, v in part.items() if k != "meta"})
    with pytest.raises(curves.CurvesError, match="curves part .* data fingerprint"):
        replay.CurvesTable(tiny_table)
    # the command line expects the frozen bench space: the tiny table is refused, one line on stderr
    monkeypatch.setenv("LABELTUNE_BENCH_DATA", str(tmp_path / "no-data-here"))
    with pytest.raises(SystemExit) as exit_info:
        replay.main(["--curves", str(tiny_table), "--seeds", "1", "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and "space fingerprint" in err[0]


def test_a_resumed_recording_skips_complete_parts(tmp_path):
    space = {**TINY_SPACE, "model": ["cnn3bn"], "batch_size": [32]}  # 2 grid points (adamw, sgd)
    manifest = tiny_manifest(space=space, epochs=1)
    folder = tmp_path / "rec"
    curves.open_folder(folder, manifest)
    rng = np.random.default_rng(1)
    targets = {"val": np.ones((N_VAL, LABELS), np.uint8), "test": np.ones((N_TEST, LABELS), np.uint8)}
    calls = []

    def killed_on_second(key: str, seed: int) -> dict:
        calls.append((key, seed))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the run is killed while training its second part
        return fake_part(rng, 1.0, targets, epochs=1)

    todo = curves.missing_parts(folder, manifest, seeds=[0])
    assert len(todo) == 2
    with pytest.raises(KeyboardInterrupt):
        curves.record(folder, manifest, todo, workers=1, train=killed_on_second)
    assert curves.missing_parts(folder, manifest, seeds=[0]) == todo[1:]
    assert not list(folder.glob(".*tmp"))  # nothing half-written
    again = []

    def counted(key: str, seed: int) -> dict:
        again.append((key, seed))
        return fake_part(rng, 1.0, targets, epochs=1)

    resumed = curves.open_folder(folder, manifest)  # the same manifest: accepted
    written = curves.record(folder, resumed, curves.missing_parts(folder, resumed, seeds=[0]), workers=1, train=counted)
    assert again == todo[1:] and written == 1
    assert curves.missing_parts(folder, manifest, seeds=[0]) == []
    part = curves.read_part(curves.part_path(folder, *todo[0]), manifest.fingerprints)
    assert part["val"].shape == (1, N_VAL, LABELS) and part["meta"]["point"] == manifest.point_of(todo[0][0])
