"""Search efficiency: does Optuna TPE + ASHA reach random search's best val micro-F1 on a fraction of its budget?

What is measured, fixed before the runs (issue 14):

Arms. Each is search.tuner.build_tuner over FROZEN_CPU_SPACE (below), first points (points_to_evaluate) off,
with at most one thing changed:
  tpe_asha       labeltune's search as it is: TPESampler(seed, n_startup_trials=max(2, min(10, trials // 4)),
                 multivariate, group) + ASHA (reduction factor 3, grace 1 epoch, max_t = epochs);
  random_asha    optuna's RandomSampler(seed) in place of TPE;
  random_fifo    RandomSampler and Tune's FIFOScheduler: every trial runs all its epochs. The reference.
Levers (`--arms` adds them; each is tpe_asha with one thing changed; the TPE and ASHA settings they start
from copy build_tuner's of 2026-12-01):
  tpe_startup4   TPESampler(n_startup_trials=4);    tpe_univariate  TPESampler(multivariate=False, group=False);
  asha_rf2       ASHA reduction_factor 2;           asha_grace2     ASHA grace_period 2;
  tpe_no_liar    TPESampler(constant_liar=False): a control (on by default in Optuna 5, it keeps two running
                 trials from being proposed the same point);
  tpe_pruned     ASHA-stopped trials reach Optuna as PRUNED with their intermediate values (Optuna's own model:
                 ranked below every finished trial), not COMPLETE with their last score as OptunaSearch tells them;
  tpe_points     points_to_evaluate on (FROZEN_CPU_SPACE holds none of their pretrained backbones, so on the
                 CPU this arm is tpe_asha again: parameters.baseline_points says how many points there were).
Warm start (issue 14, item 4):
  tpe_warm       tpe_asha whose study first gets the finished trials of the tpe_asha search on the previous seed
                 of the run (search.study.warm_start, as `labeltune search --warm-start`): new data of the same
                 kind (another synthetic dataset, another split). The first seed's prior is the last seed's, so
                 its warm arm runs after the others. Figure: trial-epochs until it first reaches the cold
                 tpe_asha's final best on the same seed, against cold tpe_asha's own (warm_start.* below).

Paired seeds: seed i uses synthetic dataset seed i (trainable/synth.py), split_seed i, sampler seed i and trial
seed i in every arm. 6,000 images split 0.8/0.1/0.1 give 600 validation and 600 test images.

Per seed and arm:
  cost            trial-epochs (each epoch a trial reports, in the order the driver receives them) and
                  trial-seconds (the sum of the trials' reported epoch times, Tune's time_this_iter_s: training,
                  validation and checkpoint; a trial's first epoch also holds its Gym set-up).
  target          random_fifo's best val/micro_f1 on that seed minus `target_se` bootstrap standard errors of
                  val micro-F1: random_fifo's best checkpoint re-scored on the validation split, SE over 2,000
                  resamples of the validation images (rng seed 0). The screen took 1 SE ("as good as random
                  search's best, within noise"); its ratios (~0.08 for every ASHA arm) showed that target is met
                  during TPE's random start-up, so the confirmation, fixed before its runs (2026-12-01), takes
                  0 SE: random search's best itself. Each JSON also holds its figures at the other rule
                  (results.other_target).
  ratio           trial-epochs the arm spends until one of its trials first reports val/micro_f1 >= target,
                  / random_fifo's whole budget (trials x max epochs); computed the same way for every arm
                  (random_fifo's own is <= 1 by construction). An arm that never gets there misses: its ratio is
                  infinite in the median, and MISS_RATIO (2: worse than any hit, which is <= 1) in the paired
                  comparison of log2 ratios. ratio_s: the same in trial-seconds.
  best_at_budget  best val/micro_f1 within the first B trial-epochs, B = the smallest total that any base arm
                  (tpe_asha, random_asha, random_fifo) spent on that seed: an equal budget.
  promoted        the trial the arm would promote: its best val/micro_f1 over all epochs (ties: the first to
                  arrive), that epoch's checkpoint as Tune kept it, loaded with trainable.ensemble.load_predictor
                  and scored on the test split of the same split_seed at the trial's own threshold.
                  promoted val - test is the winner's curse.

"A is ahead of B": the paired 95 % bootstrap interval over seeds (10,000 resamples of the seeds, rng seed 0,
percentiles 2.5 and 97.5) of the mean of (A - B) excludes 0 on A's side, over at least 3 seeds; computed for the capped log2 ratio
(lower is better), promoted test micro-F1 and best at equal budget (higher is better).

Spearman's rank correlation over random_fifo's trials of val/micro_f1 at each ASHA rung below the top (epochs 1,
3, ...) with the final one: high says ASHA's cuts are sound (work on the sampler), low says work on the scheduler.

Goal (PERF.md, issue 14): tpe_asha's median ratio <= 1/5 with at most 1 miss in 10 seeds, ahead of random_asha.

Parts (`--part`; the issue allows ~4 h of CPU in all):
  screen   seeds 0-4, 44 trials x 6 epochs per arm, 6,000 images at 32 px, 2 trials at a time: the three base
           arms in ~70 min on 2 quiet cores (one trial-epoch ~2.1 s there, 2026-12-01; the estimate printed at
           the start says it for the arms chosen). TPE gets 10 random start-up trials and 34 guided ones, ASHA
           rungs at 1 and 3 epochs below the top;
  confirm  seeds 5-9 (fresh), the same sizes, target_se 0. No setting was chosen on the screen's seeds (the base
           arms are the same code and sizes), so the final figures pool seeds 0-9: `--reuse` reads the screen's
           and the confirmation's runs back and analyses them together without running anything:
               python bench/search_efficiency.py --part confirm --seeds 0,1,2,3,4,5,6,7,8,9 \
                   --reuse bench/results/search_efficiency-screen_2026-12-01.json,<the confirm JSON>
           A lever chosen on the screen would need fresh seeds of its own.
--gpu: the `default` space, 20,000 images, 64 trials x 10 epochs (GPU share per model): hours, not one device call.

    python bench/search_efficiency.py                  # the screen: ~70 min on 2 quiet cores
    python bench/search_efficiency.py --arms tpe_asha,random_asha,random_fifo,asha_rf2,tpe_startup4
    python bench/search_efficiency.py --seeds 0 --trials 4 --epochs 2 --n-images 600 --results-dir /tmp/se  # smoke

The final JSON goes to bench/results/search_efficiency-<part>[-<options>]_<date>.json; after each seed a partial
one (the seeds done so far) goes to .bench/search_efficiency-<part>[-<options>]-partial_<date>.json. `results`:
  per_seed[]         seed, target, reference_best, reference_val_se, budget_trial_epochs, budget_trial_s,
                     equal_budget, rank_correlation.epoch<r> {rho, p, trials}, and arms.<arm>: trial_epochs,
                     trial_s, to_target(_s), miss, ratio, ratio_s (null when missed), log2_ratio, best,
                     best_at_budget, promoted_val, promoted_test, winners_curse, wall_s, errors;
  summary.<arm>      seeds, misses, median_ratio(_s) (null: infinite, half or more missed), mean best at budget,
                     promoted val and test, winner's curse, trial-epochs, trial-seconds, epoch_s, wall, errors;
  comparisons."A - B".<figure>  seeds, mean, low, high, better, ahead;
  rank_correlation   per rung: median and min rho over seeds;   verdict   the goal, figure by figure;
  runs[]             per search: events (columns: EVENT_FIELDS; se.event_rows turns them back into dicts) and
                     promoted (trial, epoch, config, val_f1, val_f1_rescored, val_se, test_f1, test_se).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads: 6-30x slower on 2 shared cores

import numpy as np  # noqa: E402

from common import (REPO, asha_expected_epochs, bench_root, log, results_variant, synth_dataset,  # noqa: E402
                    table, use_bench_decode_cache, variant_name, write_results)
from search.record import SearchRecord  # noqa: E402  (after common, which puts the repository on sys.path)
from search.options import SearchOptions  # noqa: E402
from trainable.metrics import PRIMARY_METRIC, PRIMARY_MODE  # noqa: E402
from trainable.models import pretrained_available  # noqa: E402

SEARCH_DEFAULTS = SearchOptions(data="", space="")  # labeltune search's own defaults (grace period)
BASE_ARMS = ("tpe_asha", "random_asha", "random_fifo")
REFERENCE = "random_fifo"
MISS_RATIO = 2.0
"""a miss's ratio in the paired log2 comparison: twice the reference budget, worse than any hit (<= 1)"""
SE_RESAMPLES = 2000
"""bootstrap resamples of the validation images for the SE of micro-F1 (the target's margin)"""
INTERVAL_RESAMPLES = 10_000
"""bootstrap resamples of the seeds for the paired 95 % intervals"""
MIN_SEEDS_AHEAD = 3
"""fewer paired seeds than this never make an arm "ahead" (the interval of one or two values says nothing)"""
ASHA_ASYNC = 1.5
"""trial-epochs an ASHA arm really spends / the rung arithmetic (asha_expected_epochs): asynchronous ASHA lets
early trials through empty rungs. Measured 2026-11-29: 64-116 trial-epochs (mean 95) where the arithmetic says 64;
2026-12-01 screen: 89-170 (mean 125; tpe_asha 136-170, random_asha 89-114) where it says 88."""

PARTS = {
    "screen": {"seeds": "0,1,2,3,4", "trials": 44, "epochs": 6, "n_images": 6000, "concurrency": 2, "target_se": 1.0},
    "confirm": {"seeds": "5,6,7,8,9", "trials": 44, "epochs": 6, "n_images": 6000, "concurrency": 2,
                "target_se": 0.0},
}
"""--part's sizes on the CPU; the issue's ~4 h budget: a screen on 5 seeds, a confirmation on 5 fresh ones that
the final figures pool with the screen's (10 seeds)"""
GPU_SIZES = {"seeds": "0,1,2,3,4", "trials": 64, "epochs": 10, "n_images": 20000, "concurrency": 0, "target_se": 1.0}
SAME_SIZES = ("trials", "epochs", "n_images", "concurrency", "grace_period", "space_fingerprint", "gpu")
"""what a reused run must share with this one (--reuse)"""


# ---- the space and the arms ---------------------------------------------------------------


FROZEN_CPU_SPACE = {
    "model": ["cnn3bn", "cnn4", "cnn5"],
    "loss": ["bce", "multilabel_soft_margin"],
    "optimizer": ["adamw", "adam", "sgd"],
    "lr_adamw": {"low": 1e-5, "high": 1e-2, "log": True},
    "lr_adam": {"low": 1e-5, "high": 1e-2, "log": True},
    "lr_sgd": {"low": 1e-3, "high": 0.3, "log": True},
    "weight_decay": {"low": 1e-6, "high": 1e-3, "log": True},
    "batch_size": [32, 64],
    "threshold": {"low": 0.2, "high": 0.6},
    "color": ["rgb"],
    "augment": ["none", "flip"],
    "pos_weight": ["off", "auto"],
    "width": 0.25,
    "image_size": 32,
}
"""The CPU space this benchmark measures, frozen here: the `quick` preset of 2026-11-29 narrowed to
32 px and quarter width (2 cores). Later changes to the preset (efficientnet_lite0, asl) do not move it."""


def make_space(gpu: bool) -> dict:
    import copy

    from search import space as spaces

    if gpu:
        return spaces.load_space("default")
    space = copy.deepcopy(FROZEN_CPU_SPACE)
    spaces.validate_space(space, where="search_efficiency CPU space")
    return space


@dataclasses.dataclass(frozen=True)
class Arm:
    """An arm: build_tuner with the changes below (none: labeltune's search as it is, first points off)."""

    what: str
    """one line for the table and the JSON"""
    sampler: str = "tpe"
    """tpe (build_tuner's own unless `tpe` changes it) or random (optuna's RandomSampler(seed))"""
    tpe: dict = dataclasses.field(default_factory=dict)
    """changes to build_tuner's TPESampler settings (tpe_settings)"""
    scheduler: str = "asha"
    """asha (build_tuner's own unless `asha` changes it) or fifo (no early stopping)"""
    asha: dict = dataclasses.field(default_factory=dict)
    """changes to build_tuner's ASHAScheduler settings (asha_settings)"""
    points: bool = False
    """points_to_evaluate on (build_tuner's baseline_points)"""
    warm: bool = False
    """the study starts with the finished trials of the tpe_asha search on the run's previous seed"""
    pruned: bool = False
    """trials ASHA stopped reach Optuna as PRUNED with their intermediate values (build_tuner's tell_pruned)"""


ARMS = {
    "tpe_asha": Arm("labeltune's search: TPE + ASHA"),
    "random_asha": Arm("RandomSampler + ASHA", sampler="random"),
    "random_fifo": Arm("RandomSampler, no early stopping (the reference)", sampler="random", scheduler="fifo"),
    "tpe_startup4": Arm("tpe_asha, TPE with 4 random start-up trials", tpe={"n_startup_trials": 4}),
    "tpe_univariate": Arm("tpe_asha, univariate TPE", tpe={"multivariate": False, "group": False}),
    "tpe_no_liar": Arm("tpe_asha, TPE without constant_liar (a control: Optuna 5 has it on)",
                       tpe={"constant_liar": False}),
    "asha_rf2": Arm("tpe_asha, ASHA reduction factor 2", asha={"reduction_factor": 2}),
    "asha_grace2": Arm("tpe_asha, ASHA grace period 2", asha={"grace_period": 2}),
    "tpe_points": Arm("tpe_asha with points_to_evaluate", points=True),
    "tpe_warm": Arm("tpe_asha warm-started from the previous seed's tpe_asha search", warm=True),
    "tpe_pruned": Arm("tpe_asha, ASHA-stopped trials told to Optuna as PRUNED", pruned=True),
}
PRIOR_ARM = "tpe_asha"
"""the arm whose kept study a warm arm starts from (on another seed), and whose final best it must reach"""


def tpe_settings(opts: SearchOptions) -> dict:
    """build_tuner's TPESampler arguments (search/tuner.py, 2026-12-01): the lever arms' starting point."""
    return {"seed": opts.seed, "n_startup_trials": max(2, min(10, opts.trials // 4)), "multivariate": True,
            "group": True}


def asha_settings(opts: SearchOptions) -> dict:
    """build_tuner's ASHAScheduler arguments (search/tuner.py, 2026-12-01)."""
    return {"time_attr": "training_iteration", "max_t": opts.epochs,
            "grace_period": min(opts.grace_period, opts.epochs), "reduction_factor": 3}


def tuner_kwargs(arm: Arm, opts: SearchOptions) -> dict:
    """TunerParts' fields for `arm` (search/tuner.py): only what the arm changes is given."""
    kwargs: dict = {"baseline_points": arm.points, **({"tell_pruned": True} if arm.pruned else {})}
    if arm.sampler == "random":
        from optuna.samplers import RandomSampler

        kwargs["sampler"] = RandomSampler(seed=opts.seed)
    elif arm.tpe:
        from optuna.samplers import TPESampler

        kwargs["sampler"] = TPESampler(**{**tpe_settings(opts), **arm.tpe})
    if arm.scheduler == "fifo":
        from ray.tune.schedulers import FIFOScheduler

        kwargs["scheduler"] = FIFOScheduler()
    elif arm.asha:
        from ray.tune.schedulers import ASHAScheduler

        kwargs["scheduler"] = ASHAScheduler(**{**asha_settings(opts), **arm.asha})
    return kwargs


def rungs(epochs: int, grace: int, rf: int = 3) -> list[int]:
    """ASHA's rungs below the top: grace * rf^k < epochs."""
    out, r = [], max(1, grace)
    while r < epochs:
        out.append(r)
        r *= rf
    return out


# ---- one search -------------------------------------------------------------------------


def trial_clock():
    """A Tune Callback that records, on the driver, every reported epoch: trial, epoch, val/micro_f1 and the
    trial's own seconds for it (time_this_iter_s), in arrival order."""
    from ray.tune import Callback

    class TrialClock(Callback):
        def __init__(self) -> None:
            self.events: list[dict] = []

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.events.append({"t": time.time(), "trial": trial.trial_id,
                                "epoch": int(result.get("training_iteration", 0)),
                                "f1": result.get(PRIMARY_METRIC), "s": result.get("time_this_iter_s")})

    return TrialClock()


def micro_f1_bootstrap(probs: np.ndarray, targets: np.ndarray, thresholds, resamples: int = SE_RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """(micro-F1, its bootstrap standard error over `resamples` resamples of the images)."""
    predicted = probs >= np.broadcast_to(np.asarray(thresholds, dtype=np.float32), probs.shape)
    truth = np.asarray(targets).astype(bool)
    tp = (predicted & truth).sum(1)
    wrong = (predicted ^ truth).sum(1)  # fp + fn: micro-F1 = 2 tp / (2 tp + fp + fn)

    def f1(tp_sum, wrong_sum):
        denom = 2 * tp_sum + wrong_sum
        return np.where(denom > 0, 2 * tp_sum / np.maximum(denom, 1), 0.0)

    idx = np.random.default_rng(seed).integers(0, len(tp), size=(resamples, len(tp)))
    return float(f1(tp.sum(), wrong.sum())), float(f1(tp[idx].sum(1), wrong[idx].sum(1)).std(ddof=1))


def promote(grid, events: list[dict], data) -> dict | None:
    """The trial the arm would promote (best val/micro_f1, first to arrive), its kept checkpoint scored on val and test."""
    from trainable import checkpoint as ckpt_io
    from trainable.ensemble import evaluate_split, load_predictor

    scored = [e for e in events if e["f1"] is not None]
    if not scored:
        return None
    best = max(scored, key=lambda e: e["f1"])  # max keeps the first of equal scores: the first to arrive
    kept = []
    for result in grid:
        if result.metrics.get("trial_id") != best["trial"]:
            continue
        for checkpoint, metrics in result.best_checkpoints or []:
            path = Path(checkpoint.path) / ckpt_io.CHECKPOINT_FILE
            if metrics.get(PRIMARY_METRIC) == best["f1"] and path.exists():  # the pruner keeps the best and the last
                kept.append((int(metrics.get("training_iteration", 0)) != best["epoch"], path))
    if not kept:
        log(f"no checkpoint of trial {best['trial']} epoch {best['epoch']} left to score")
        return {"trial": best["trial"], "epoch": best["epoch"], "val_f1": best["f1"]}
    ckpt = ckpt_io.load(min(kept)[1])
    predictor = load_predictor(ckpt, device="cpu")
    out = {"trial": best["trial"], "epoch": int(ckpt["epoch"]), "val_f1": best["f1"],
           "config": {k: ckpt["config"].get(k) for k in ("model", "optimizer", "lr", "batch_size", "loss",
                                                         "augment", "pos_weight", "threshold", "split_seed")}}
    for split in ("val", "test"):
        collector = evaluate_split(predictor, data.images, data.targets, split)
        out[f"{split}_f1_rescored" if split == "val" else "test_f1"], out[f"{split}_se"] = micro_f1_bootstrap(
            collector.probs, collector.targets, predictor.thresholds)
    return out


def run_arm(arm: str, seed: int, args, space: dict, data, dataset, storage: Path, pretrained: tuple,
            prior: Path | None = None) -> dict:
    """One search. `prior`: the folder of a kept PRIOR_ARM study a warm arm starts from. A PRIOR_ARM search
    leaves its study in storage/priors/<name>/ for the warm arm of the next seed."""
    from search.pruning import CheckpointPruner
    from search.record import STUDY_FILE
    from search.study import warm_start
    from search.tuner import TunerParts, build_tuner

    name = f"{arm}-seed{seed}"
    opts = SearchOptions(data=str(dataset.root), space="bench", trials=args.trials, epochs=args.epochs,
                         concurrency=args.concurrency, seed=seed, split_seed=seed, track=False, verbose=False,
                         storage=str(storage), grace_period=args.grace_period)
    constants = {"epochs": opts.epochs, "split_seed": opts.split_seed, "seed": opts.seed}
    record = SearchRecord(name=name, storage=str(storage), space=space, constants=constants,
                          pretrained_models=list(pretrained))
    warm = None
    if ARMS[arm].warm:
        warm = warm_start(record.path, name, [(SearchRecord(name=prior.name, storage=str(prior.parent)), prior)],
                          space)
        log(f"seed {seed}: {arm}: {warm}")
    clock = trial_clock()
    tuner = build_tuner(opts, record, data, [CheckpointPruner(PRIMARY_METRIC, PRIMARY_MODE), clock],
                        parts=TunerParts(**tuner_kwargs(ARMS[arm], opts)))
    t = time.time()
    grid = tuner.fit()
    wall = time.time() - t
    errors = sum(1 for r in grid if r.error is not None)
    events = sorted(clock.events, key=lambda e: e["t"])
    promoted = promote(grid, events, data)  # before the storage with the checkpoints goes
    del tuner, grid
    gc.collect()
    if arm == PRIOR_ARM and (storage / name / STUDY_FILE).exists():
        (storage / "priors" / name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(storage / name / STUDY_FILE, storage / "priors" / name / STUDY_FILE)
    if not args.keep:
        shutil.rmtree(storage / name, ignore_errors=True)
    return {"arm": arm, "seed": seed, "wall_s": wall, "errors": errors, "trials": args.trials,
            "max_epochs": args.epochs, "grace_period": ARMS[arm].asha.get("grace_period", args.grace_period),
            "events": [{"trial": e["trial"], "epoch": e["epoch"], "f1": e["f1"],
                        "s": None if e["s"] is None else round(e["s"], 3), "t": round(e["t"] - t, 2)} for e in events],
            "promoted": promoted, **({"warm_start": {"prior": prior.name, **warm[prior.name]}} if warm else {})}


EVENT_FIELDS = ("trial", "epoch", "f1", "s", "t")
"""one reported epoch: trial id, epoch, val/micro_f1, the trial's seconds for it, seconds since the search began"""


def event_columns(run: dict) -> dict:
    """The run as the JSON holds it: events as one list per field (a tenth of the lines of one dict per event)."""
    return {**run, "events": {k: [e[k] for e in run["events"]] for k in EVENT_FIELDS}}


def event_rows(run: dict) -> dict:
    """A run read back from the JSON, with its events one dict each again (what analyse reads)."""
    columns = run["events"]
    return {**run, "events": [dict(zip(EVENT_FIELDS, values)) for values in zip(*(columns[k] for k in EVENT_FIELDS))]}


# ---- reading the runs ---------------------------------------------------------------------


def spent_s(events: list[dict]) -> float:
    return float(sum(e["s"] or 0.0 for e in events))


def first_reach(events: list[dict], target: float) -> tuple[int, float] | None:
    """(trial-epochs, trial-seconds) spent when some trial first reports val/micro_f1 >= target; None: never."""
    seconds = 0.0
    for k, e in enumerate(events, start=1):
        seconds += e["s"] or 0.0
        if e["f1"] is not None and e["f1"] >= target:
            return k, seconds
    return None


def best_within(events: list[dict], budget: int) -> float | None:
    values = [e["f1"] for e in events[:budget] if e["f1"] is not None]
    return max(values) if values else None


def rank_correlation(run: dict) -> dict:
    """Spearman's rho over the run's trials: val/micro_f1 at each ASHA rung below the top against the final epoch."""
    from scipy.stats import spearmanr

    by_trial: dict[str, dict[int, float]] = {}
    for e in run["events"]:
        if e["f1"] is not None:
            by_trial.setdefault(e["trial"], {})[e["epoch"]] = e["f1"]
    final = run["max_epochs"]
    out = {}
    for rung in rungs(final, run.get("grace_period", 1)):
        pairs = [(f[rung], f[final]) for f in by_trial.values() if rung in f and final in f]
        if len(pairs) >= 3 and len({a for a, _ in pairs}) > 1 and len({b for _, b in pairs}) > 1:
            rho, p = spearmanr(*zip(*pairs))
            out[f"epoch{rung}"] = {"rho": float(rho), "p": float(p), "trials": len(pairs)}
        else:
            out[f"epoch{rung}"] = {"rho": None, "p": None, "trials": len(pairs)}
    return out


def paired_interval(diffs: list[float], resamples: int = INTERVAL_RESAMPLES, seed: int = 0) -> dict:
    """Mean of paired differences over seeds and its 95 % percentile bootstrap interval (resampling the seeds)."""
    d = np.asarray([x for x in diffs if x is not None and math.isfinite(x)], dtype=np.float64)
    if len(d) == 0:
        return {"seeds": 0, "mean": None, "low": None, "high": None}
    means = d[np.random.default_rng(seed).integers(0, len(d), size=(resamples, len(d)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"seeds": len(d), "mean": float(d.mean()), "low": float(low), "high": float(high)}


def log2_ratio(ratio: float | None) -> float | None:
    """A ratio on the paired comparison's scale: log2, a miss (inf) counted as MISS_RATIO."""
    return None if ratio is None else math.log2(min(ratio, MISS_RATIO))


COMPARED_FIGURES = {"log2_ratio": "lower", "promoted_test": "higher", "best_at_budget": "higher"}
"""figures the paired intervals compare, and which way is better"""


def compare(per_seed: list[dict], a: str, b: str) -> dict:
    """For each figure, the paired interval of (a - b) over the seeds where both ran, and who is ahead."""
    out = {}
    for figure, better in COMPARED_FIGURES.items():
        diffs = []
        for row in per_seed:
            if a in row["arms"] and b in row["arms"]:
                x, y = row["arms"][a].get(figure), row["arms"][b].get(figure)
                diffs.append(x - y if x is not None and y is not None else None)
        interval = paired_interval(diffs)
        ahead = None
        if interval["seeds"] >= MIN_SEEDS_AHEAD and (interval["low"] > 0 or interval["high"] < 0):  # excludes 0
            ahead = a if (interval["mean"] > 0) == (better == "higher") else b
        out[figure] = {**interval, "better": better, "ahead": ahead}
    return out


def pairs(arms: list[str]) -> list[tuple[str, str]]:
    """The base comparisons, then each lever against tpe_asha."""
    base = [(a, b) for a, b in (("tpe_asha", "random_asha"), ("tpe_asha", "random_fifo"),
                                ("random_asha", "random_fifo")) if a in arms and b in arms]
    return base + [(lever, "tpe_asha") for lever in arms if lever not in BASE_ARMS and "tpe_asha" in arms]


def warm_figures(cold: dict, warm: dict, budget: int) -> dict:
    """Does the warm arm reach the cold PRIOR_ARM search's final best sooner? Trial-epochs of each until it first
    gets there (the cold one's own: when it found its best), also as ratios of the reference budget."""
    cold_best = best_within(cold["events"], len(cold["events"]))
    cold_hit = first_reach(cold["events"], cold_best) if cold_best is not None else None
    warm_hit = first_reach(warm["events"], cold_best) if cold_best is not None else None
    cold_ratio = cold_hit[0] / budget if cold_hit else None
    warm_ratio = warm_hit[0] / budget if warm_hit else (math.inf if cold_best is not None else None)
    return {"prior": (warm.get("warm_start") or {}).get("prior"),
            "added": (warm.get("warm_start") or {}).get("added"), "cold_best": cold_best,
            "cold_to_best": cold_hit[0] if cold_hit else None, "warm_to_cold_best": warm_hit[0] if warm_hit else None,
            "miss": warm_hit is None, "log2_warm_over_cold": (log2_ratio(warm_ratio) - log2_ratio(cold_ratio)
                                                             if cold_ratio and warm_ratio is not None else None)}


def seed_baselines(n_images: int, seeds: list[int]) -> dict[int, dict]:
    """Per seed, the no-learning baseline (trainable.baselines: the most frequent labels, fitted on the train
    split) on that seed's val and test split: what every score in the table must beat. Reads annotations only;
    synth_dataset writes a seed's images first where $LABELTUNE_BENCH_DATA does not hold them yet."""
    from search.run import search_baselines
    from trainable import data as data_mod

    out = {}
    for seed in seeds:
        dataset = data_mod.load(str(synth_dataset(n_images, seed)))
        rule, figures = search_baselines(dataset, seed)
        out[seed] = {"rule": rule, "val": figures.get(f"baseline/{PRIMARY_METRIC}"),
                     "test": figures.get(f"baseline/{PRIMARY_METRIC.replace('val/', 'test/')}")}
    return out


def analyse(runs: list[dict], seeds: list[int], fixed_target: float | None = None, target_se: float = 1.0,
            baselines: dict[int, dict] | None = None) -> dict:
    """The per-seed figures, the summary over seeds, the paired comparisons and the verdict; target: the
    reference's best val/micro_f1 minus `target_se` of its bootstrap SEs (or `fixed_target`). `baselines`:
    seed_baselines, shown next to each seed's scores."""
    runs = [r for r in runs if r["seed"] in seeds]
    arms = list(dict.fromkeys(r["arm"] for r in runs))
    per_seed = []
    for seed in seeds:
        by_arm = {r["arm"]: r for r in runs if r["seed"] == seed}
        if REFERENCE not in by_arm:
            continue
        ref = by_arm[REFERENCE]
        ref_best = best_within(ref["events"], len(ref["events"]))
        ref_se = (ref.get("promoted") or {}).get("val_se")
        if fixed_target is not None:
            target = fixed_target
        else:
            target = ref_best - target_se * ref_se if ref_best is not None and ref_se is not None else None
        budget = ref["trials"] * ref["max_epochs"]
        budget_s = spent_s(ref["events"])
        equal = min(len(r["events"]) for arm, r in by_arm.items() if arm in BASE_ARMS)
        row = {"seed": seed, "target": target, "reference_best": ref_best, "reference_val_se": ref_se,
               "budget_trial_epochs": budget, "budget_trial_s": budget_s, "equal_budget": equal, "arms": {},
               "rank_correlation": rank_correlation(ref), "baseline": (baselines or {}).get(seed)}
        for arm, r in by_arm.items():
            hit = first_reach(r["events"], target) if target is not None else None
            miss = target is not None and hit is None
            promoted = r.get("promoted") or {}
            ratio = hit[0] / budget if hit else (math.inf if miss else None)
            row["arms"][arm] = {
                "trial_epochs": len(r["events"]), "trial_s": spent_s(r["events"]), "wall_s": r["wall_s"],
                "errors": r["errors"], "to_target": hit[0] if hit else None, "to_target_s": hit[1] if hit else None,
                "miss": miss, "ratio": ratio,
                "ratio_s": hit[1] / budget_s if hit and budget_s else (math.inf if miss else None),
                "log2_ratio": log2_ratio(ratio),
                "best": best_within(r["events"], len(r["events"])), "best_at_budget": best_within(r["events"], equal),
                "promoted_val": promoted.get("val_f1"), "promoted_test": promoted.get("test_f1"),
                "winners_curse": (promoted["val_f1"] - promoted["test_f1"]
                                  if promoted.get("test_f1") is not None else None)}
        warm_arms = [arm for arm in by_arm if ARMS[arm].warm]
        if warm_arms and PRIOR_ARM in by_arm:
            row["warm_start"] = {arm: warm_figures(by_arm[PRIOR_ARM], by_arm[arm], budget) for arm in warm_arms}
        per_seed.append(row)

    def values(arm: str, key: str) -> list:
        return [row["arms"][arm][key] for row in per_seed if arm in row["arms"] and row["arms"][arm][key] is not None]

    def mean(xs: list) -> float | None:
        return float(np.mean(xs)) if xs else None

    summary = {}
    for arm in arms:
        ratios, ratios_s = values(arm, "ratio"), values(arm, "ratio_s")
        epochs, seconds = values(arm, "trial_epochs"), values(arm, "trial_s")
        summary[arm] = {
            "seeds": len(values(arm, "trial_epochs")), "misses": sum(values(arm, "miss")),
            "median_ratio": float(np.median(ratios)) if ratios else None,  # inf when half or more missed
            "median_ratio_s": float(np.median(ratios_s)) if ratios_s else None,
            "mean_best_at_budget": mean(values(arm, "best_at_budget")),
            "mean_promoted_val": mean(values(arm, "promoted_val")),
            "mean_promoted_test": mean(values(arm, "promoted_test")),
            "mean_winners_curse": mean(values(arm, "winners_curse")),
            "mean_trial_epochs": mean(epochs), "mean_trial_s": mean(seconds),
            "epoch_s": sum(seconds) / sum(epochs) if epochs and sum(epochs) else None,
            "mean_wall_s": mean(values(arm, "wall_s")), "errors": sum(values(arm, "errors"))}
    comparisons = {f"{a} - {b}": compare(per_seed, a, b) for a, b in pairs(arms)}
    rhos = {}
    for row in per_seed:
        for rung, figures in row["rank_correlation"].items():
            if figures["rho"] is not None:
                rhos.setdefault(rung, []).append(figures["rho"])
    correlation = {rung: {"median_rho": float(np.median(r)), "min_rho": float(min(r)), "seeds": len(r)}
                   for rung, r in rhos.items()}
    verdict = None
    if "tpe_asha" in summary:
        t = summary["tpe_asha"]
        ahead = comparisons.get("tpe_asha - random_asha", {})
        allowed = t["seeds"] // 10  # at most 1 miss in 10 seeds
        verdict = {"goal": "tpe_asha median ratio <= 1/5, at most 1 miss in 10 seeds, ahead of random_asha",
                   "median_ratio": t["median_ratio"], "median_ratio_ok": t["median_ratio"] is not None
                   and t["median_ratio"] <= 0.2, "misses": t["misses"], "misses_allowed": allowed,
                   "misses_ok": t["misses"] <= allowed,
                   "ahead_of_random_asha_log2_ratio": ahead.get("log2_ratio", {}).get("ahead") == "tpe_asha",
                   "ahead_of_random_asha_promoted_test": ahead.get("promoted_test", {}).get("ahead") == "tpe_asha"}
    warm = {}
    for arm in [a for a in arms if ARMS[a].warm]:
        rows = [row["warm_start"][arm] for row in per_seed if arm in row.get("warm_start", {})]
        warm[arm] = {"seeds": len(rows), "misses": sum(r["miss"] for r in rows),
                     "median_cold_to_best": float(np.median([r["cold_to_best"] for r in rows])) if rows else None,
                     "median_warm_to_cold_best": (float(np.median([r["warm_to_cold_best"] if not r["miss"] else math.inf
                                                                   for r in rows])) if rows else None),
                     "log2_warm_over_cold": {**paired_interval([r["log2_warm_over_cold"] for r in rows]),
                                             "better": "lower"}}
    based = [row["baseline"] for row in per_seed if row["baseline"]]
    baseline = {"rule": based[0]["rule"], "mean_val": mean([b["val"] for b in based]),
                "mean_test": mean([b["test"] for b in based])} if based else None
    return {"per_seed": per_seed, "summary": summary, "comparisons": comparisons,
            "rank_correlation": correlation, "verdict": verdict, "warm_start": warm, "baseline": baseline}


# ---- time estimate ------------------------------------------------------------------------


def calibrate_epoch_s(space: dict, dataset, images: np.ndarray, cpus_per_trial: int) -> float:
    """Seconds of one trial epoch (train + validation), mean over the space's models and batch sizes, one trial's threads."""
    from search import space as spaces
    from trainable.config import TrainConfig
    from trainable.gym import Gym

    width = spaces.choices(space.get("width", 1.0))[0]
    times = []
    for model in spaces.choices(space["model"]):
        for batch in spaces.choices(space["batch_size"]):
            cfg = TrainConfig(model=model, image_size=space["image_size"], width=width, batch_size=batch,
                              threads=cpus_per_trial, device="cpu", epochs=1)
            gym = Gym(cfg, images, dataset.targets, dataset.labels)
            t = time.perf_counter()
            gym.train_one_epoch(1)
            gym.evaluate("val")
            times.append(time.perf_counter() - t)
    return float(np.mean(times))


def expected_trial_epochs(arm: str, trials: int, epochs: int, grace: int) -> float:
    spec = ARMS[arm]
    if spec.scheduler == "fifo":
        return float(trials * epochs)
    grace = min(spec.asha.get("grace_period", grace), epochs)
    return ASHA_ASYNC * asha_expected_epochs(trials, epochs, grace, spec.asha.get("reduction_factor", 3))


def estimate_s(args, epoch_s: float, arms: list[str], report_s: float = 0.3, start_s: float = 1.0,
               init_s: float = 15.0, search_s: float = 15.0, score_s: float = 3.0) -> float:
    """ray.init + per search to run (`arms`, one entry per seed and arm): its fixed cost (new worker processes
    import torch: ~15 s on 2 cores) + (trial-epochs x (epoch + report) + trials x start-up) / concurrency +
    scoring the promoted checkpoint."""
    return init_s + sum(search_s + score_s + (expected_trial_epochs(arm, args.trials, args.epochs, args.grace_period)
                                              * (epoch_s + report_s) + args.trials * start_s)
                        / max(1, args.concurrency or 1) for arm in arms)


# ---- the run ----------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=sorted(PARTS), default="screen", help="sizes and seeds (CPU): " + "; ".join(
        f"{k}: seeds {v['seeds']}, {v['trials']} trials x {v['epochs']} epochs, {v['n_images']} images"
        for k, v in PARTS.items()))
    p.add_argument("--gpu", action="store_true", help="default space, 20k images, 64 trials x 10 epochs")
    p.add_argument("--arms", default=",".join(BASE_ARMS),
                   help=f"comma list of {', '.join(ARMS)} ({REFERENCE} is always run: it sets the target)")
    p.add_argument("--seeds", default=None, help="comma list; seed i: dataset seed i, split_seed i, sampler seed i")
    p.add_argument("--trials", type=int, default=None, help="trials per arm and seed")
    p.add_argument("--epochs", type=int, default=None, help="max epochs per trial")
    p.add_argument("--n-images", type=int, default=None, help="synthetic images per dataset (split 0.8/0.1/0.1)")
    p.add_argument("--concurrency", type=int, default=None, help="trials at once (0 = as resources allow)")
    p.add_argument("--cpus", type=int, default=None, help="CPUs given to Ray (default: all cores)")
    p.add_argument("--grace-period", type=int, default=SEARCH_DEFAULTS.grace_period,
                   help="ASHA's first rung, epochs (default: labeltune search's); asha_grace2 sets its own")
    p.add_argument("--target", type=float, default=None,
                   help="fixed target val/micro_f1 (default: random_fifo's best minus --target-se SEs, per seed)")
    p.add_argument("--target-se", type=float, default=None,
                   help="bootstrap SEs below random_fifo's best that count as reaching it (screen 1, confirm 0)")
    p.add_argument("--reuse", default=None,
                   help="comma list of results JSONs of the same sizes: their runs of these arms and seeds are "
                        "read back instead of run")
    p.add_argument("--keep", action="store_true", help="keep the searches' Tune folders")
    p.add_argument("--no-estimate", action="store_true", help="skip the timing calibration")
    p.add_argument("--results-dir", default=None)
    args = p.parse_args(argv)
    sizes = GPU_SIZES if args.gpu else PARTS[args.part]
    for name, value in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    args.reuse = [f.strip() for f in str(args.reuse or "").split(",") if f.strip()]
    arms = [a.strip() for a in str(args.arms).split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        p.error(f"unknown arm(s) {', '.join(unknown)}; arms are {', '.join(ARMS)}")
    args.arms = list(dict.fromkeys(arms + [REFERENCE] * (REFERENCE not in arms)))
    return args


def variant_of(args) -> str:
    """The results file's variant: the part (or gpu), then the options that differ from that part's defaults."""
    if args.gpu:
        return results_variant(args, parse_args, ignore=("no_estimate", "part", "reuse"))
    rest = variant_name(vars(args), vars(parse_args(["--part", args.part])), ignore=("no_estimate", "part", "reuse"))
    return args.part + ("-" + rest if rest else "")


def ratio_text(ratio: float | None) -> str:
    return "-" if ratio is None else "inf" if ratio == math.inf else f"{ratio:.3f}"


def print_tables(analysis: dict) -> None:
    rows = [{"seed": row["seed"], "arm": arm, "target": row["target"], "base": (row.get("baseline") or {}).get("val"), **a,
             **({"ratio": "miss", "ratio_s": "miss"} if a["miss"] else {})}
            for row in analysis["per_seed"] for arm, a in row["arms"].items()]
    print(table(rows, [("seed", "seed", ""), ("arm", "arm", ""), ("base", "base val", ".4f"), ("target", "target", ".4f"),
                       ("trial_epochs", "trial-ep", ""), ("trial_s", "trial-s", ".0f"), ("to_target", "to target", ""),
                       ("ratio", "ratio", ".3f"), ("ratio_s", "ratio s", ".3f"), ("best", "best val", ".4f"),
                       ("best_at_budget", "best@B", ".4f"), ("promoted_val", "prom val", ".4f"),
                       ("promoted_test", "prom test", ".4f")],
                title="per seed (ratio: trial-epochs to the target / random_fifo's whole budget)"))
    def shown(summary: dict) -> dict:  # a median of misses is infinite: say so, not "-"
        return {**summary, **{k: "inf" for k in ("median_ratio", "median_ratio_s") if summary[k] == math.inf}}

    print(table([{"arm": arm, **shown(s)} for arm, s in analysis["summary"].items()],
                [("arm", "arm", ""), ("seeds", "seeds", ""), ("misses", "misses", ""),
                 ("median_ratio", "median ratio", ".3f"), ("median_ratio_s", "median ratio s", ".3f"),
                 ("mean_best_at_budget", "mean best@B", ".4f"), ("mean_promoted_test", "mean prom test", ".4f"),
                 ("mean_winners_curse", "val-test", ".4f"), ("epoch_s", "s/trial-epoch", ".2f"),
                 ("mean_wall_s", "mean wall s", ".0f"), ("errors", "errors", "")], title="over seeds"))
    rows = [{"pair": pair, "figure": figure, **c} for pair, figures in analysis["comparisons"].items()
            for figure, c in figures.items()]
    print(table(rows, [("pair", "A - B", ""), ("figure", "figure", ""), ("seeds", "seeds", ""),
                       ("mean", "mean", "+.4f"), ("low", "95% low", "+.4f"), ("high", "95% high", "+.4f"),
                       ("better", "better", ""), ("ahead", "ahead", "")],
                title="paired 95 % bootstrap intervals over seeds"))
    for rung, c in analysis["rank_correlation"].items():
        print(f"random_fifo: Spearman rho of val/micro_f1 at {rung} with the final epoch: median "
              f"{c['median_rho']:.2f} (min {c['min_rho']:.2f}, {c['seeds']} seeds)")
    if analysis.get("baseline"):
        b = analysis["baseline"]
        print(f"no-learning baseline ({b['rule']}): mean val micro-F1 {b['mean_val']:.4f}, test {b['mean_test']:.4f}")
    for arm, w in analysis.get("warm_start", {}).items():
        i = w["log2_warm_over_cold"]
        print(f"{arm}: trial-epochs to the cold {PRIOR_ARM}'s final best: median {w['median_warm_to_cold_best']} "
              f"(cold: {w['median_cold_to_best']}), {w['misses']} misses in {w['seeds']} seeds; log2 warm/cold "
              + (f"{i['mean']:+.2f} [{i['low']:+.2f}, {i['high']:+.2f}]" if i["mean"] is not None else "-"))
    if analysis["verdict"]:
        print("verdict:", {k: v for k, v in analysis["verdict"].items() if k != "goal"})
    other = analysis.get("other_target")
    if other:
        print("at the other target rule (results.other_target): median ratio "
              + ", ".join(f"{arm} {ratio_text(s['median_ratio'])} ({s['misses']} misses)"
                        for arm, s in other["summary"].items()))
        log2 = other["comparisons"].get("tpe_asha - random_asha", {}).get("log2_ratio")
        if log2 and log2["mean"] is not None:
            print(f"  tpe_asha - random_asha log2 ratio {log2['mean']:+.3f} [{log2['low']:+.3f}, {log2['high']:+.3f}]")
        if other["verdict"]:
            print("  verdict:", {k: v for k, v in other["verdict"].items() if k != "goal"})


def reused_runs(files: list[str], params: dict) -> list[dict]:
    """The runs of earlier results JSONs, refused unless they measured the same sizes and space."""
    import json

    runs: dict[tuple, dict] = {}
    for f in files:
        record = json.loads(Path(f).read_text())
        theirs = record["parameters"]
        differ = [k for k in SAME_SIZES if theirs.get(k) != params.get(k)]
        if differ:
            raise SystemExit(f"--reuse {f}: it measured other {', '.join(differ)} "
                             f"({', '.join(f'{k}={theirs.get(k)!r}' for k in differ)})")
        for r in map(event_rows, record["results"]["runs"]):
            key = (r["seed"], r["arm"])
            if key in runs and runs[key]["events"] != r["events"]:  # a lever JSON holds copies of what it reused
                raise SystemExit(f"--reuse {f}: seed {key[0]} arm {key[1]} differs from the same run in an earlier file")
            runs.setdefault(key, r)
    return list(runs.values())


def warm_order(arms: list[str], seeds: list[int]) -> list[tuple[int, str, int | None]]:
    """(seed, arm, prior seed) in run order: per seed its arms, a warm arm on the PRIOR_ARM search of the previous
    seed; the first seed's warm arm takes the last seed's, so it runs at the end."""
    order, deferred = [], []
    for k, seed in enumerate(seeds):
        for arm in arms:
            if not ARMS[arm].warm:
                order.append((seed, arm, None))
            elif len(seeds) < 2:
                raise SystemExit(f"{arm} needs at least two seeds: its prior is another seed's {PRIOR_ARM} search")
            elif k == 0:
                deferred.append((seed, arm, seeds[-1]))
            else:
                order.append((seed, arm, seeds[k - 1]))
    return order + deferred


def main(argv=None) -> dict:
    args = parse_args(argv)
    import ray

    from search import space as spaces
    from search.console import quiet_ray
    from trainable.trial_data import load_trial_data

    quiet_ray()
    started = time.time()
    use_bench_decode_cache()
    space = make_space(args.gpu)
    pretrained = pretrained_available()  # efficientnet_lite0 only with its weights package
    n_points = len(spaces.points_to_evaluate(space, tuple(pretrained)))
    variant = variant_of(args)
    params = {**vars(args), "space": space, "space_fingerprint": spaces.fingerprint(space, {}),
              "pretrained_models": list(pretrained), "baseline_points": n_points, "estimated_s": None,
              "arms_built": {a: dataclasses.asdict(ARMS[a]) for a in args.arms},
              "target_rule": (f"fixed {args.target}" if args.target is not None else
                              f"random_fifo's best val/micro_f1 minus {args.target_se:g} x the bootstrap SE "
                              f"({SE_RESAMPLES} resamples of the val images) of its best checkpoint, per seed"),
              "other_target_se": other_se(args.target_se),
              "miss_ratio_in_log2_comparison": MISS_RATIO,
              "interval_rule": f"paired percentile bootstrap over seeds, {INTERVAL_RESAMPLES} resamples, 95 %"}

    runs: list[dict] = [r for r in reused_runs(args.reuse, params) if r["seed"] in args.seeds and r["arm"] in args.arms]
    have = {(r["seed"], r["arm"]) for r in runs}
    todo = [(seed, arm, prior) for seed, arm, prior in warm_order(args.arms, args.seeds) if (seed, arm) not in have]
    if args.reuse:
        log(f"reused {len(runs)} runs from {', '.join(args.reuse)}; {len(todo)} to run")
    est = None
    if todo:  # a pure re-analysis of reused runs trains and decodes nothing (seed_baselines reads annotations)
        roots = {seed: synth_dataset(args.n_images, seed) for seed in sorted({seed for seed, _, _ in todo})}
        loaded = todo[0][0]
        dataset, data = load_trial_data(str(roots[loaded]), 0, False)  # labeltune's own driver-side load + decode
        arms_to_run = [arm for _, arm, _ in todo]
        if not args.gpu and not args.no_estimate:
            epoch_s = calibrate_epoch_s(space, dataset, data.images, cpus_per_trial=1)
            params["estimated_s"] = est = estimate_s(args, epoch_s, arms_to_run)
            log(f"calibration: one trial epoch ~{epoch_s:.2f} s -> expected wall of this run ~{est / 60:.1f} min "
                f"({len(todo)} searches of {args.trials} trials x <= {args.epochs} epochs, {args.concurrency} at a "
                f"time; ASHA arms counted at {ASHA_ASYNC}x their rung arithmetic)")
        else:
            total = sum(expected_trial_epochs(a, args.trials, args.epochs, args.grace_period) for a in arms_to_run)
            log(f"expected ~{total:.0f} trial-epochs in all; at 2-6 s each (20k images), 4 at a time: "
                f"~{total * 2 / 4 / 60:.0f}-{total * 6 / 4 / 60:.0f} min")

    baselines = seed_baselines(args.n_images, args.seeds)

    def results() -> dict:
        done = sorted({r["seed"] for r in runs})
        return {**analyse(runs, done, args.target, args.target_se, baselines),
                "other_target": {k: v for k, v in analyse(runs, done, args.target, other_se(args.target_se)).items()
                                 if k in ("summary", "comparisons", "verdict")},
                "runs": [event_columns(r) for r in runs]}

    storage = Path(tempfile.mkdtemp(prefix="search-efficiency-", dir=bench_root()))
    if todo:
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")  # as init_ray
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 object_store_memory=max(300 * 2**20, 4 * data.images.nbytes))
    try:
        for k, (seed, arm, prior) in enumerate(todo):
            if seed != loaded:
                del data
                gc.collect()
                dataset, data = load_trial_data(str(roots[seed]), 0, False)
                loaded = seed
            log(f"seed {seed}: {arm} ({args.trials} trials x <= {args.epochs} epochs)")
            prior_path = storage / "priors" / f"{PRIOR_ARM}-seed{prior}" if prior is not None else None
            run = run_arm(arm, seed, args, space, data, dataset, storage, pretrained, prior_path)
            runs.append(run)
            p = run["promoted"] or {}
            log(f"seed {seed}: {arm}: {len(run['events'])} trial-epochs, {spent_s(run['events']):.0f} trial-s, "
                f"promoted val {p.get('val_f1') or 0:.4f} (SE {p.get('val_se') or 0:.4f}) "
                f"test {p.get('test_f1') or 0:.4f}, {run['wall_s']:.0f} s, {run['errors']} errors")
            if k + 1 == len(todo) or todo[k + 1][0] != seed:
                path = write_results("search_efficiency", {**params, "seeds_done": sorted({r["seed"] for r in runs})},
                                     results(), REPO / ".bench", started, variant=variant + "-partial")
                log(f"seed {seed} done ({time.time() - started:.0f} s): partial results in {path}")
    finally:
        if todo:
            ray.shutdown()
        if not args.keep:
            shutil.rmtree(storage, ignore_errors=True)

    final = results()
    print_tables(final)
    wall = time.time() - started
    print(f"wall {wall / 60:.1f} min" + (f" (estimated {est / 60:.1f} min)" if est else ""))
    path = write_results("search_efficiency", params, final, args.results_dir, started, variant=variant)
    print(f"wrote {path}")
    return final


def other_se(target_se: float) -> float:
    """The target rule each JSON also reports: 1 SE when the run's own is 0, else 0 (random search's best itself)."""
    return 1.0 if target_se == 0 else 0.0


if __name__ == "__main__":
    main()
