"""Check the replay against the product: build_tuner's own Tuner on the recorded curves, at most 10 seeds.

bench/replay.py drives Ray's searcher and scheduler objects on a simulated clock. Here the real thing runs: Ray
Tune's Tuner from search/tuner.py build_tuner (its OptunaSearch behind the ConcurrencyLimiter, its ASHA, 2 trials
at a time on a local Ray), with TunerParts.trainable swapped for a trainable that trains nothing: it looks its
config's recorded curve up and sleeps the recorded seconds divided by FACTOR before each report. Whatever Ray adds
(trial start-up, the driver's loop, result order under real timing) is in these runs and not in the replay. The
figures are replay.py's (its analyse), so the two can be compared seed by seed and in their bootstrap intervals.

What differs from the replay, on purpose:
- val micro-F1 is looked up on a threshold grid of F1_STEP (the trainable ships 12 MB of scores, not 400 MB of
  probabilities); the promoted trial is scored exactly;
- a trial's training seed is drawn from (search seed, its configuration) on both sides (Scores.seed_of; the replay
  gets the same rule through Replay's `draw`), not from replay.py's per-search rng: Tune's trial ids are random, and
  the trainable does not know its trial's index. So the same configuration trains on the same recorded seed in
  every arm of a seed and on both sides, as replay.py's draws pair them (the first run drew from the trial id,
  which trained random_asha's copy of random_fifo's best on another seed than random_fifo's:
  results/replay_tuner-unpaired_2026-12-07.json);
- a recorded divergence raises in the trainable, and Tune does not retry it (max_failures 0), as the replay.

    python bench/replay_tuner.py --seeds 5                   # tpe_asha, random_asha, random_fifo at 44 trials
    python bench/replay_tuner.py --seeds 2 --trials 12 --curves /tmp/tiny --any-table
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

import curves
import replay
import search_efficiency as se
from common import bench_root, log, write_results
from trainable.config import PRIMARY_METRIC

FACTOR = 10.0
"""recorded seconds / FACTOR are slept: 44 trials of ~6 x 2 s take ~30 s instead of ~5 min"""
F1_STEP = 0.001
ARMS = ("tpe_asha", "random_asha", "random_fifo")
MAX_SEEDS = 10


@dataclasses.dataclass
class Scores:
    """What a curve trainable needs of the table: the grid lookup and, per curve, val micro-F1 on a threshold grid."""

    names: list
    lookup: dict
    parts: list
    seeds: list
    low: float
    f1: dict
    """(part key, seed) -> epochs x thresholds"""
    seconds: dict
    """(part key, seed) -> (set-up seconds, [epoch seconds], seconds until the divergence or None)"""

    def key_of(self, config: dict) -> str:
        return replay.grid_key(config, self.names, self.lookup, self.parts)

    def seed_of(self, search_seed: int, config: dict) -> int:
        """The recorded training seed a trial of `config` in search `search_seed` draws (the driver draws it again,
        and so does the replay side)."""
        key = f"{search_seed}/{self.key_of(config)}/{float(config['threshold'])!r}"
        return self.seeds[zlib.crc32(key.encode()) % len(self.seeds)]

    def val_f1(self, key: str, seed: int, epoch: int, threshold: float) -> float:
        return float(self.f1[key, seed][epoch - 1, int(round((threshold - self.low) / F1_STEP))])


def scores_of(tbl: replay.CurvesTable) -> Scores:
    low, high = float(tbl.gspace["threshold"]["low"]), float(tbl.gspace["threshold"]["high"])
    grid = np.arange(low, high + F1_STEP / 2, F1_STEP)
    f1, seconds = {}, {}
    for (key, seed), c in tbl.curves.items():
        f1[key, seed] = np.array([[tbl.val_f1(c, e, t) for t in grid] for e in range(1, len(c.epoch_s) + 1)])
        seconds[key, seed] = (c.startup_s, list(map(float, c.epoch_s)), c.diverged_s if c.diverged else None)
    return Scores(tbl.names, tbl.lookup, list(tbl.manifest.parts), list(tbl.seeds), low, f1, seconds)


def curve_trial(config: dict, scores: Scores) -> None:
    """A Tune function trainable: report the recorded curve of the config, sleeping its seconds / FACTOR."""
    from ray import tune

    key = scores.key_of(config)
    seed = scores.seed_of(config["seed"], config)
    startup, epoch_s, diverged_s = scores.seconds[key, seed]
    time.sleep(startup / FACTOR)
    for epoch, seconds in enumerate(epoch_s, start=1):
        time.sleep(seconds / FACTOR)
        tune.report({PRIMARY_METRIC: scores.val_f1(key, seed, epoch, float(config["threshold"])), "epoch": epoch})
    if diverged_s is not None:
        time.sleep(diverged_s / FACTOR)
        raise RuntimeError(f"recorded divergence of {key} seed {seed}")


def run_real(arm: str, seed: int, trials: int, tbl: replay.CurvesTable, scores: Scores, storage: Path) -> dict:
    """One search of `arm` through build_tuner; the run as replay.analyse reads it (recorded seconds per event)."""
    from ray import tune

    from search.record import SearchRecord
    from search.tuner import TunerParts, build_tuner

    opts = dataclasses.replace(replay.arm_options(arm, trials, tbl.epochs, seed), storage=str(storage),
                               max_failures=0)
    record = SearchRecord(name=f"{arm}-seed{seed}", storage=str(storage), space=tbl.gspace,
                          constants={"epochs": opts.epochs, "split_seed": opts.split_seed, "seed": opts.seed})
    parts = TunerParts(**{**se.tuner_kwargs(se.ARMS[arm], opts), "keep_study": False,
                          "trainable": tune.with_parameters(curve_trial, scores=scores)})
    clock = se.trial_clock()
    started = time.time()
    grid = build_tuner(opts, record, None, [clock], parts=parts).fit()
    wall = time.time() - started
    trials_run = {}
    for result in grid:
        trial_id = result.metrics.get("trial_id") if result.metrics else None
        if trial_id:
            key = scores.key_of(result.config)
            seed_drawn = scores.seed_of(seed, result.config)
            trials_run[trial_id] = replay.SimTrial(trial_id, result.config, tbl.curves[key, seed_drawn],
                                                   float(result.config["threshold"]))
    events = sorted(clock.events, key=lambda e: e["t"])
    for e in events:  # the recorded seconds, as the replay counts them (the slept ones are / FACTOR)
        c = trials_run[e["trial"]].curve
        e["s"] = float(c.epoch_s[e["epoch"] - 1]) + (c.startup_s if e["epoch"] == 1 else 0.0)
        e["t"] -= started
    shutil.rmtree(storage / record.name, ignore_errors=True)
    return {"arm": arm, "seed": seed, "trials": trials, "max_epochs": tbl.epochs,
            "grace_period": opts.grace_period, "events": events, "errors": sum(r.error is not None for r in grid),
            "promoted": replay.promoted(events, list(trials_run.values()), tbl), "wall_s": wall, "decision_s": None,
            "replay_s": wall, "trials_started": len(grid)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--curves", type=Path, default=curves.DEFAULT_OUT)
    p.add_argument("--seeds", type=int, default=6, help=f"seeds 0..N-1 (at most {MAX_SEEDS})")
    p.add_argument("--trials", type=int, default=replay.BUDGETS[0])
    p.add_argument("--any-table", action="store_true", help="accept whatever space the folder holds (a test table)")
    p.add_argument("--results-dir", default=None)
    args = p.parse_args(argv)
    if not 1 <= args.seeds <= MAX_SEEDS:
        p.error(f"--seeds {args.seeds}: between 1 and {MAX_SEEDS} (the issue's check is at most 10 real seeds)")
    return args


def main(argv=None) -> dict:
    """Real Tuner runs of ARMS on the table, then the replay of the same seeds, both through replay.analyse."""
    args = parse_args(argv)
    import optuna
    import ray

    from search.console import quiet_ray

    quiet_ray()
    replay.warnings_off(optuna)
    started = time.time()
    try:
        tbl = replay.CurvesTable(args.curves, None if args.any_table else replay.expected_fingerprints())
    except curves.CurvesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2)
    scores = scores_of(tbl)
    seeds = list(range(args.seeds))
    storage = Path(tempfile.mkdtemp(prefix="replay-tuner-", dir=bench_root()))
    ray.init(num_cpus=replay.K, include_dashboard=False, log_to_driver=False, configure_logging=False)
    real = []
    try:
        for seed in seeds:
            for arm in ARMS:
                real.append(run_real(arm, seed, args.trials, tbl, scores, storage))
                log(f"seed {seed}: {arm}: {len(real[-1]['events'])} trial-epochs in {real[-1]['wall_s']:.0f} s")
    finally:
        ray.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
    simulated = [replay.Replay(arm, seed, args.trials, tbl, draw=functools.partial(scores.seed_of, seed)).run()
                 for seed in seeds for arm in ARMS]  # the yardstick on the arms' own seed, as the real runs have it
    results = {"real_tuner": replay.analyse(real, 0.0), "replay": replay.analyse(simulated, 0.0)}
    results["check"] = check(results["real_tuner"]["summary"], results["replay"]["summary"])
    for arm, c in results["check"].items():
        log(f"{arm}: real median ratio {c['real_median']:.3f} [{c['real_low']:.3f}, {c['real_high']:.3f}], replay "
            f"{c['replay_median']:.3f} [{c['replay_low']:.3f}, {c['replay_high']:.3f}]: "
            f"{'inside each other' if c['agree'] else 'DISAGREE'}")
    params = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "factor": FACTOR,
              "f1_step": F1_STEP, "arms": list(ARMS), "workers": replay.K}
    path = write_results("replay_tuner", params, {**results, "runs": [se.event_columns(r) for r in real]},
                         args.results_dir, started, variant="anytable" if args.any_table else None)
    print(f"wrote {path}")
    return results


def check(real: dict, simulated: dict) -> dict:
    """Per arm: each median ratio inside the other's 95 % bootstrap interval."""
    out = {}
    for arm in real:
        r, s = real[arm]["median_ratio"], simulated[arm]["median_ratio"]
        out[arm] = {"real_median": r["median"], "real_low": r["low"], "real_high": r["high"],
                    "replay_median": s["median"], "replay_low": s["low"], "replay_high": s["high"],
                    "real_misses": real[arm]["misses"], "replay_misses": simulated[arm]["misses"],
                    "agree": r["low"] <= s["median"] <= r["high"] and s["low"] <= r["median"] <= s["high"]}
    return out


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
