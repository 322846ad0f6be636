"""Syne Tune's own methods on labeltune's recorded curves, run by Syne Tune's own simulator backend.

Issue 26 asks for at least one method a user would pick instead of labeltune's stack, run on the same table with
its own code. Syne Tune (a `bench` extra) brings ASHA, BOHB and ASHA-BORE and a simulator that replays tabulated
learning curves with N workers on a simulated clock (UserBlackboxBackend + SimulatorCallback). Its ASHA also checks
bench/replay.py's: random search + ASHA run by another team's scheduler and clock should land where
replay.py's random_asha lands.

How the table is handed over (a BlackboxTabular):
- the hyperparameters are the grid's categorical dimensions, `lr_index` (the same third of every optimizer's
  range, as replay.py's shared_lr arms see it: Syne Tune has no conditional spaces) and the threshold, discretised
  to THRESHOLD_STEP (the space's range in steps of 0.01: Syne Tune's tabular blackbox answers only points it holds);
- per row, training seed and epoch: val micro-F1 at the row's threshold (replay.CurvesTable.val_f1) and the
  elapsed seconds since the trial started (set-up plus the recorded epochs);
- a diverged curve (its training raised TrialDiverged at some epoch) scores 0 from that epoch on: a tabular
  blackbox has every epoch, where labeltune's trial would end in an error;
- trial k trains on the recorded seed replay.Replay draws for trial k (Syne Tune's backend keeps a per-trial seed;
  it is filled from the same rng), so these arms are paired by seed with replay.py's.
Its clock moves in TICK_S steps while both workers are busy.
What is not the same: Syne Tune's simulator does not add the scheduler's decision time to its clock (replay.py
does); its searcher sees 41 thresholds where Optuna sees a range.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time

import numpy as np

ELAPSED = "elapsed_s"
METRIC = "val_f1"
FIDELITY = "epoch"
THRESHOLD_STEP = 0.01
"""41 thresholds over 0.2-0.6: at 0.05 (9 thresholds) the best reachable val micro-F1 was lower than what Optuna's
continuous threshold reaches, and st_asha missed random_fifo's best on 51 of 100 seeds to random_asha's 14
(bench/results/replay-paired_2026-12-07.json, the first run)"""
TICK_S = 0.1
"""the simulated seconds its Tuner sleeps while every worker is busy (Syne Tune's default 5 s would hold each
result up to 5 s on ~2 s epochs)"""
METHODS = ("ASHA", "BOHB", "ASHABORE")
"""syne_tune.optimizer.baselines classes, each stopping-type ASHA over the epochs with labeltune's rungs"""


def thresholds(gspace: dict) -> list[float]:
    """The threshold range in THRESHOLD_STEP steps, ends included."""
    low, high = float(gspace["threshold"]["low"]), float(gspace["threshold"]["high"])
    return [round(float(t), 4) for t in np.arange(low, high + THRESHOLD_STEP / 2, THRESHOLD_STEP)]


def rows_of(tbl) -> list[dict]:
    """One row per (grid point, threshold): the grid's dimensions, lr_index and threshold."""
    from search import space as spaces

    rows = []
    for point in tbl.manifest.grid:
        lr = spaces.lr_param(point["optimizer"])
        base = {**{n: point[n] for n in tbl.names}, "lr_index": tbl.gspace[lr].index(point[lr])}
        rows += [{**base, "threshold": t, "_point": point} for t in thresholds(tbl.gspace)]
    return rows


def curve_of(tbl, row: dict, seed_index: int):
    """The recorded curve of a row's grid point and the seed_index-th training seed."""
    point = row["_point"]
    key = tbl.manifest.parts[tbl.lookup[tuple(sorted(point.items()))]]
    return tbl.curves[key, tbl.seeds[seed_index]]


def blackbox(tbl):
    """The table as Syne Tune's BlackboxTabular (rows x seeds x epochs x [val_f1, elapsed_s]), and its rows."""
    import pandas as pd
    import syne_tune.config_space as sp
    from syne_tune.blackbox_repository.blackbox_tabular import BlackboxTabular

    rows = rows_of(tbl)
    values = np.zeros((len(rows), len(tbl.seeds), tbl.epochs, 2))
    for i, row in enumerate(rows):
        for s in range(len(tbl.seeds)):
            curve = curve_of(tbl, row, s)
            recorded = len(curve.epoch_s)
            elapsed = curve.startup_s + np.cumsum(curve.epoch_s)
            for e in range(tbl.epochs):
                if e < recorded:
                    values[i, s, e] = tbl.val_f1(curve, e + 1, row["threshold"]), elapsed[e]
                else:  # diverged: scored 0 from the diverging epoch on
                    values[i, s, e] = 0.0, (elapsed[-1] if recorded else curve.startup_s) + curve.diverged_s
    columns = [*tbl.names, "lr_index", "threshold"]
    frame = pd.DataFrame([{c: r[c] for c in columns} for r in rows], columns=columns)
    space = {n: sp.choice(list(tbl.gspace[n])) for n in tbl.names}
    space["lr_index"] = sp.ordinal(sorted(set(frame["lr_index"])))
    space["threshold"] = sp.ordinal(thresholds(tbl.gspace))
    bb = BlackboxTabular(hyperparameters=frame, configuration_space=space,
                         fidelity_space={FIDELITY: sp.randint(1, tbl.epochs)}, objectives_evaluations=values,
                         fidelity_values=np.arange(1, tbl.epochs + 1), objectives_names=[METRIC, ELAPSED])
    return bb, rows


def scheduler(method: str, bb, seed: int, epochs: int, asha: dict):
    """A syne_tune baseline, maximising val micro-F1, with ASHA's rungs as labeltune sets them."""
    from syne_tune.optimizer import baselines

    return getattr(baselines, method)(config_space=bb.configuration_space, metric=METRIC, do_minimize=False,
                                      time_attr=FIDELITY, max_t=epochs, grace_period=asha["grace_period"],
                                      reduction_factor=asha["reduction_factor"], random_seed=seed)


def budgeted(sched, trials: int):
    """The scheduler, suggesting nothing after `trials` suggestions: Syne Tune's Tuner then waits for the running
    trials and ends (its max_num_trials_started is checked once a loop, so it can start one trial too many)."""
    inner, asked = sched.suggest, iter(range(trials))
    sched.suggest = lambda *args, **kwargs: inner(*args, **kwargs) if next(asked, None) is not None else None
    return sched


def run_method(name: str, method: str, seed: int, trials: int, tbl, workers: int, asha: dict) -> dict:
    """One Syne Tune search on the table; the run as replay.py's analyse reads it."""
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.blackbox_repository import UserBlackboxBackend
    from syne_tune.constants import ST_TUNER_TIME
    from syne_tune.tuner_callback import TunerCallback

    if not hasattr(tbl, "_synetune"):
        tbl._synetune = blackbox(tbl)
    bb, rows = tbl._synetune
    lookup = {tuple(r[c] for c in (*tbl.names, "lr_index", "threshold")): r for r in rows}
    backend = UserBlackboxBackend(blackbox=bb, elapsed_time_attr=ELAPSED, tuner_sleep_time=TICK_S)
    draws = np.random.default_rng(seed).integers(len(tbl.seeds), size=trials)
    backend._seed_for_trial.update({k: int(d) for k, d in enumerate(draws)})  # replay.Replay's draws, per trial
    events, configs, last = [], {}, {}

    class Recorder(TunerCallback):
        def on_start_trial(self, trial) -> None:
            configs[trial.trial_id] = trial.config

        def on_trial_result(self, trial, status, result, decision) -> None:
            k = trial.trial_id
            seconds = float(result[ELAPSED]) - last.get(k, 0.0)
            last[k] = float(result[ELAPSED])
            events.append({"trial": f"{seed:03d}_{k:05d}", "epoch": int(result[FIDELITY]),
                           "f1": float(result[METRIC]), "s": seconds, "t": float(result[ST_TUNER_TIME])})

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(io.StringIO()):  # its banner and table
        os.environ["SYNETUNE_FOLDER"] = folder
        tuner = Tuner(trial_backend=backend, scheduler=budgeted(scheduler(method, bb, seed, tbl.epochs, asha), trials),
                      stop_criterion=StoppingCriterion(max_num_trials_started=trials), n_workers=workers,
                      sleep_time=0, callbacks=[SimulatorCallback(), Recorder()], save_tuner=False,
                      wait_trial_completion_when_stopping=True, results_update_interval=1e9,
                      print_update_interval=1e9, tuner_name=f"replay-{name}-{seed}")
        tuner.run()
    events.sort(key=lambda e: e["t"])  # its loop hands a batch of results over per step; they arrived in this order
    return {"arm": name, "seed": seed, "trials": trials, "max_epochs": tbl.epochs,
            "grace_period": asha["grace_period"], "events": events, "errors": 0,
            "promoted": promoted(events, configs, lookup, draws, tbl, seed), "wall_s": max(e["t"] for e in events),
            "decision_s": 0.0, "replay_s": time.perf_counter() - started, "trials_started": len(configs)}


def promoted(events, configs, lookup, draws, tbl, seed) -> dict | None:
    """The best val micro-F1 of the search (the first of equal), scored on the test split at its threshold."""
    if not events:
        return None
    best = max(events, key=lambda e: e["f1"])
    k = int(best["trial"].split("_")[1])
    config = configs[k]
    row = lookup[tuple(config[c] for c in (*tbl.names, "lr_index", "threshold"))]
    curve = curve_of(tbl, row, int(draws[k]))
    key = tbl.manifest.parts[tbl.lookup[tuple(sorted(row["_point"].items()))]]
    return {"trial": best["trial"], "epoch": best["epoch"], "val_f1": best["f1"],
            "test_f1": tbl.test_f1(curve, best["epoch"], row["threshold"]), "val_se": None,
            "config": {k: v for k, v in row.items() if k != "_point"}, "part": key,
            "train_seed": tbl.seeds[int(draws[k])]}


def quiet() -> None:
    """Syne Tune logs every trial at INFO; pandas and statsmodels warn from inside its searchers."""
    import warnings

    logging.getLogger("syne_tune").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="pandas")
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="statsmodels")
