"""Replay labeltune's search on recorded learning curves (bench/curves.py) with a simulated clock: 100 seeds in minutes.

What runs: the product's searcher stack, Ray Tune's own objects driven through their public interfaces, no Ray
runtime. Per arm, its TunerParts (search/tuner.py; bench/search_efficiency.py's tuner_kwargs for the arms
that benchmark has) give
  the searcher   search.study.KeptOptunaSearch (Ray's OptunaSearch, labeltune's subclass; `tell_pruned` as
                 build_tuner passes it) over a define-by-run space, behind Ray's ConcurrencyLimiter(K), as
                 build_tuner wires it; the sampler is TunerParts' (None: TPESampler(**se.tpe_settings(opts)),
                 the product's settings). Driven by suggest / on_trial_result / on_trial_complete;
  the scheduler  search.asha.ReplayAwareASHA(**se.asha_settings(opts)) (TunerParts' scheduler where an arm
                 swaps it: FIFOScheduler, ASHAScheduler with other settings), after set_search_properties
                 (metric, mode) as Tune's TuneConfig does. Driven by on_trial_add / on_trial_result
                 (CONTINUE or STOP) / on_trial_complete / on_trial_error. ASHA reads only `trial.trial_id` of
                 its Trial and nothing of its TuneController (Ray 2.60 async_hyperband.py), so SimTrial and
                 SimController are minimal stand-ins.
Tune's order is kept (ray/tune/execution/tune_controller.py, _process_trial_result and stop_trial): each result
goes to the scheduler first; only a CONTINUE result goes to the searcher's on_trial_result; a stopped or
finished trial goes to the scheduler's and then the searcher's on_trial_complete with its last result (Optuna
is told COMPLETE with that last score, or PRUNED for tpe_pruned's KeptOptunaSearch); a diverged trial (the
Gym's TrialDiverged) goes to on_trial_error and on_trial_complete(error=True). Tune's one retry of an errored
trial (max_failures 1) is not replayed: it would diverge again at the same epoch.

The space the searcher is offered is the recorded grid (curves.grid_space): categorical lr_<optimizer> per
optimizer, weight decay fixed, and the threshold a continuous searched parameter (the space's range) applied to
the stored probabilities: each result's val/micro_f1 is micro-F1 at the trial's own threshold over the stored
val probabilities, as the Gym scores an epoch; the promoted trial's test micro-F1 (scikit-learn) at that
threshold on the stored test probabilities. Every suggestion is a grid point, so no snapping. GP, QMC and CMA-ES
(`shared_lr`) see one integer `lr_index` (0..steps-1, the same third of every optimizer's range) instead of
lr_<optimizer>, a parameter every trial has. CMA-ES models only lr_index and the threshold: Optuna's
CmaEsSampler leaves categorical parameters to its independent sampler (RandomSampler with the arm's seed).

The clock: K = 2 simulated workers and one driver. A trial starts when a worker is free and the driver has
asked the searcher (its suggest time counts); each result arrives at the trial's start plus its recorded
seconds (the first epoch also the Gym's set-up); the driver handles one result at a time (the scheduler's and
the searcher's decision time counts: the worker waits for its report to return). Of two results due at the
same moment, the one queued first goes first. Each trial draws one of the recorded training seeds from the
replay's rng (seed i: the same draws for every arm), so the seed noise stays in and arms are paired by seed.
`--no-decision-time` leaves the measured decision time out (then a replay is exactly reproducible).

Figures per arm and budget (44 and 128 trials, 6 epochs) over `--seeds` seeds, as search_efficiency.py defines
them (its first_reach, best_within, log2_ratio, paired_interval and compare): the median ratio (trial-epochs
until some trial first reaches the yardstick's best minus --target-se bootstrap SEs, / its whole budget; the
yardstick is a random_fifo search on an independent seed, see YARDSTICK) with a 95 % bootstrap interval over
seeds, misses, the same in trial-seconds, best val at an equal budget, the promoted trial's test micro-F1 and
winner's curse, ASHA's share of random_fifo's trial-epochs, and every arm paired against random_asha and against
tpe_asha (the default).

    python bench/replay.py                                            # every arm, 100 seeds, budgets 44 and 128
    python bench/replay.py --arms tpe_asha,random_asha,random_fifo --seeds 20 --budgets 44
    python bench/replay.py --curves /tmp/tiny --any-table --seeds 100 --budgets 12   # a test-sized table
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import heapq
import itertools
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

import curves
from common import log, table, write_results
import search_efficiency as se
from search import space as spaces
from search.options import SearchOptions
from trainable.config import PRIMARY_METRIC, PRIMARY_MODE

K = 2
"""simulated workers (trials at once), as the CPU benchmark runs them"""
BUDGETS = (44, 128)
BASELINE = "random_asha"
"""every arm is paired against it"""
DEFAULT = "tpe_asha"
"""the product's default search: an arm that would replace it must be ahead of it, paired by seed"""
LR_INDEX = "lr_index"
"""the shared learning-rate axis of the shared_lr arms"""
INF_STANDIN = 1e9
"""a miss's ratio while bootstrapping the median (numpy's percentiles of inf give nan); mapped back to inf"""


# ---- the arms ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReplayArm:
    """An arm of the replay: a search_efficiency.py arm (`base`), or an Optuna sampler it does not have."""

    what: str
    base: str | None = None
    """the search_efficiency.py arm whose TunerParts (se.tuner_kwargs) this is"""
    sampler: str | None = None
    """gp, qmc or cmaes: an Optuna sampler with the arm's seed, with ASHA"""
    shared_lr: bool = False
    """one lr_index axis instead of lr_<optimizer> (for samplers that model only shared parameters)"""
    max_seeds: int | None = None
    """at most this many seeds (the first ones): an arm too slow for 100"""
    needs: str | None = None
    """a module the arm imports (a `bench` extra): the arm is skipped, and says so, without it"""
    native: bool = False
    """Optuna's own loop instead of Ray's objects: study.ask / trial.report / should_prune / study.tell, with the
    product's TPESampler and Optuna's HyperbandPruner (BOHB's brackets; Ray's OptunaSearch takes no pruner)"""
    synetune: str | None = None
    """a syne_tune.optimizer.baselines method run by Syne Tune's own simulator (bench/replay_synetune.py)"""


ARMS = {
    "tpe_asha": ReplayArm("labeltune's search: TPE (multivariate, grouped) + ASHA", base="tpe_asha"),
    "random_asha": ReplayArm("RandomSampler + ASHA", base="random_asha"),
    "random_fifo": ReplayArm("RandomSampler, no early stopping (the reference)", base="random_fifo"),
    "tpe_startup4": ReplayArm("tpe_asha with 4 random start-up trials", base="tpe_startup4"),
    "tpe_univariate": ReplayArm("tpe_asha, univariate TPE", base="tpe_univariate"),
    "tpe_no_liar": ReplayArm("tpe_asha without constant_liar", base="tpe_no_liar"),
    "tpe_pruned": ReplayArm("tpe_asha, ASHA-stopped trials told to Optuna as PRUNED", base="tpe_pruned"),
    "asha_rf2": ReplayArm("tpe_asha, ASHA reduction factor 2", base="asha_rf2"),
    "asha_grace2": ReplayArm("tpe_asha, ASHA grace period 2", base="asha_grace2"),
    "qmc_asha": ReplayArm("QMCSampler (scrambled Sobol) + ASHA, one lr_index axis", sampler="qmc", shared_lr=True),
    "cmaes_asha": ReplayArm("CmaEsSampler + ASHA, one lr_index axis, categoricals by its RandomSampler",
                            sampler="cmaes", shared_lr=True, needs="cmaes"),
    # GPSampler decides in ~0.1 s a trial at 44 trials and ~0.12 s at 128 (measured on the tiny test table,
    # 2 loaded cores): 100 seeds of both budgets would take ~35 min alone
    "gp_asha": ReplayArm("GPSampler + ASHA, one lr_index axis", sampler="gp", shared_lr=True, max_seeds=30),
    "tpe_hyperband": ReplayArm("Optuna-native TPE (the product's settings) + HyperbandPruner, as in BOHB",
                               native=True),
    "st_asha": ReplayArm("Syne Tune: random search + ASHA, its own scheduler and simulator", synetune="ASHA",
                         needs="syne_tune"),
    "st_bohb": ReplayArm("Syne Tune: BOHB (KDE searcher + asynchronous successive halving)", synetune="BOHB",
                         needs="syne_tune"),
    # its classifier is fitted for every suggestion: ~15 s a 44-trial search and ~60 s a 128-trial one (measured on
    # the recorded table, 2026-12-07, cores otherwise idle), so 10 seeds
    "st_ashabore": ReplayArm("Syne Tune: ASHA with a BORE classifier per rung", synetune="ASHABORE",
                             needs="syne_tune", max_seeds=10),
}
NOT_REPLAYED = {
    "recipes_first": "the recipes (search/space.py RECIPES) are on pretrained backbones; the frozen bench space "
                     "(cnn3bn, cnn4, cnn5) holds none, so a search of it has no first points to queue",
    "warm_start": "needs a second recorded table (data seed 1) to warm-start from; this table records data seed 0",
    "ray_hyperband": "Ray's HyperBandScheduler pauses and resumes trials; the replay's Tune loop runs trials to "
                     "their end or stop (tpe_hyperband replays Optuna's Hyperband brackets instead)",
}
"""arms issue 26 names that this replay does not run, and why (written to the JSON)"""
DEFAULT_ARMS = tuple(ARMS)


def sampler_for(arm: ReplayArm, seed: int):
    """The Optuna sampler of an arm that search_efficiency.py does not have."""
    import optuna

    if arm.sampler == "qmc":  # scrambled, or every seed would draw the same sequence
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed)
    if arm.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if arm.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise ValueError(f"unknown sampler {arm.sampler!r}")


def arm_parts(name: str, opts: SearchOptions):
    """The arm's TunerParts (search/tuner.py): what it swaps in the product's searcher and scheduler."""
    from search.tuner import TunerParts

    arm = ARMS[name]
    if arm.base is not None:
        return TunerParts(**{**se.tuner_kwargs(se.ARMS[arm.base], opts), "keep_study": False})
    return TunerParts(sampler=sampler_for(arm, opts.seed), baseline_points=False, keep_study=False)


def arm_options(name: str, trials: int, epochs: int, seed: int) -> SearchOptions:
    """The SearchOptions a real search of the arm would run with (search_efficiency.py's run_arm)."""
    return SearchOptions(data="", space="bench", trials=trials, epochs=epochs, concurrency=K, seed=seed,
                         split_seed=0, track=False, verbose=False, grace_period=se.SEARCH_DEFAULTS.grace_period)


def arm_unavailable(name: str) -> str | None:
    """Why an arm cannot run here (a missing `bench` extra), or None."""
    needs = ARMS[name].needs
    if needs is None:
        return None
    import importlib.util

    return None if importlib.util.find_spec(needs) else f"needs {needs} (pip install -e '.[bench]')"


# ---- the space the searcher sees ----------------------------------------------------------------


def shared_lr_define_by_run(trial, space: dict, constants: dict, pretrained_models: tuple = ()) -> dict:
    """The product's define-by-run without lr_<optimizer>, and one lr_index for every optimizer: the chosen
    optimizer trains at its grid value number lr_index (the same third of each optimizer's range)."""
    plain = {k: v for k, v in space.items() if spaces.lr_optimizer(k) is None}
    config = spaces.define_by_run(trial, plain, constants, pretrained_models)
    lr = spaces.lr_param(config["optimizer"])
    index = trial.suggest_int(LR_INDEX, 0, len(space[lr]) - 1)
    return {**config, lr: space[lr][index]}


def build_searcher(parts, opts: SearchOptions, gspace: dict, shared_lr: bool):
    """KeptOptunaSearch behind a ConcurrencyLimiter, as search/tuner.py's _searcher builds it (no kept study, no
    first points: the frozen space holds none of the recipes' backbones)."""
    from optuna.samplers import TPESampler
    from ray.tune.search import ConcurrencyLimiter

    from search.study import KeptOptunaSearch

    constants = {"epochs": opts.epochs, "split_seed": opts.split_seed, "seed": opts.seed}
    define = shared_lr_define_by_run if shared_lr else spaces.define_by_run
    searcher = KeptOptunaSearch(
        space=functools.partial(define, space=gspace, constants=constants, pretrained_models=()),
        metric=PRIMARY_METRIC, mode=PRIMARY_MODE, sampler=parts.sampler or TPESampler(**se.tpe_settings(opts)),
        pruned_below=opts.epochs if parts.tell_pruned else None)
    return ConcurrencyLimiter(searcher, max_concurrent=K)


class NativeSearcher:
    """Optuna's ask-and-tell loop in the replay's searcher seat: ask a trial, let the define-by-run suggest its
    config; on its end tell the study COMPLETE (last value), PRUNED (the pruner stopped it) or FAIL (diverged)."""

    def __init__(self, study, define) -> None:
        self.study, self.define, self.live, self.pruned = study, define, {}, set()

    def suggest(self, trial_id: str) -> dict:
        trial = self.live[trial_id] = self.study.ask()
        return self.define(trial)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Reported by the pruner seat already (Optuna's report comes before should_prune)."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        import optuna

        trial = self.live.pop(trial_id)
        if error:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif trial_id in self.pruned:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(trial, result[PRIMARY_METRIC])


class NativePruner:
    """Optuna's pruner in the replay's scheduler seat: each epoch is reported to the trial, should_prune decides."""

    def __init__(self, searcher: NativeSearcher) -> None:
        self.searcher = searcher

    def on_trial_add(self, controller, trial) -> None:
        pass

    def on_trial_result(self, controller, trial, result: dict) -> str:
        from ray.tune.schedulers import TrialScheduler

        live = self.searcher.live[trial.trial_id]
        live.report(result[PRIMARY_METRIC], result["training_iteration"])
        if live.should_prune():
            self.searcher.pruned.add(trial.trial_id)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, controller, trial, result: dict) -> None:
        pass

    def on_trial_error(self, controller, trial) -> None:
        pass


def build_native(opts: SearchOptions, gspace: dict) -> tuple[NativeSearcher, NativePruner]:
    """The Optuna-native arm: a study with the product's TPESampler and a HyperbandPruner over the epochs (its
    brackets from ASHA's grace period and reduction factor, so only the bracket logic differs)."""
    import optuna

    asha = se.asha_settings(opts)
    pruner = optuna.pruners.HyperbandPruner(min_resource=asha["grace_period"], max_resource=opts.epochs,
                                            reduction_factor=asha["reduction_factor"])
    study = optuna.create_study(direction=PRIMARY_MODE + "imize", pruner=pruner,
                                sampler=optuna.samplers.TPESampler(**se.tpe_settings(opts)))
    constants = {"epochs": opts.epochs, "split_seed": opts.split_seed, "seed": opts.seed}
    searcher = NativeSearcher(study, functools.partial(spaces.define_by_run, space=gspace, constants=constants,
                                                       pretrained_models=()))
    return searcher, NativePruner(searcher)


def build_scheduler(parts, opts: SearchOptions):
    """TunerParts' scheduler, or the product's ASHA; told metric and mode as Tune's TuneConfig tells it."""
    from search.asha import ReplayAwareASHA

    scheduler = parts.scheduler or ReplayAwareASHA(**se.asha_settings(opts))
    scheduler.set_search_properties(PRIMARY_METRIC, PRIMARY_MODE)
    return scheduler


# ---- the recorded table ---------------------------------------------------------------------------


@dataclasses.dataclass
class Curve:
    """One recorded (configuration, training seed): what a trial of it reports, epoch by epoch."""

    val: np.ndarray
    """float16 epochs x val images x labels"""
    test: np.ndarray
    epoch_s: np.ndarray
    startup_s: float
    diverged: int
    """the epoch whose training diverged (0: none)"""
    diverged_s: float
    val_sorted: list
    """per epoch, every val probability sorted (float32): micro-F1 at any threshold by two searchsorted"""
    pos_sorted: list
    """per epoch, the probabilities of the positive val entries, sorted"""


def grid_key(config: dict, names: list, lookup: dict, parts: list) -> str:
    """The part key of a config on the grid: its dimensions and its optimizer's lr_<optimizer> looked up."""
    lr = spaces.lr_param(config["optimizer"])
    point = {**{n: config[n] for n in names}, lr: config[lr]}
    return parts[lookup[tuple(sorted(point.items()))]]


class CurvesTable:
    """A curves folder read into memory, checked against `expect` (fingerprints: space, data, setup)."""

    def __init__(self, folder: Path, expect: dict | None = None) -> None:
        self.folder = Path(folder)
        self.manifest = m = curves.read_manifest(self.folder)
        if expect:
            curves.check_fingerprints(f"curves folder {self.folder}", m.fingerprints, expect)
        missing = curves.missing_parts(self.folder, m)
        if missing:
            raise curves.CurvesError(f"curves folder {self.folder}: {len(missing)} of "
                                     f"{len(m.keys()) * len(m.train_seeds)} parts missing (record them: "
                                     f"bench/curves.py --out {self.folder})")
        self.gspace, self.seeds, self.epochs = m.grid_space, list(m.train_seeds), m.epochs
        self.lookup = curves.grid_lookup(m.grid)
        self.names = curves.grid_names(self.gspace)
        self.curves: dict[tuple[str, int], Curve] = {}
        for key in m.keys():
            for seed in self.seeds:
                self.curves[key, seed] = self._read(key, seed)

    def _read(self, key: str, seed: int) -> Curve:
        part = curves.read_part(curves.part_path(self.folder, key, seed), self.manifest.fingerprints)
        if not hasattr(self, "val_targets"):
            self.val_targets, self.test_targets = part["val_targets"], part["test_targets"]
            self.n_true = int(self.val_targets.sum())
        elif not (np.array_equal(part["val_targets"], self.val_targets)
                  and np.array_equal(part["test_targets"], self.test_targets)):
            raise curves.CurvesError(f"curves part {curves.part_path(self.folder, key, seed)}: its val/test targets "
                                     f"differ from the other parts' (another split or dataset)")
        positive = self.val_targets.astype(bool)
        val = part["val"]
        return Curve(val=val, test=part["test"], epoch_s=part["epoch_s"], startup_s=float(part["startup_s"]),
                     diverged=int(part["diverged"]), diverged_s=float(part["diverged_s"]),
                     val_sorted=[np.sort(v.astype(np.float32).ravel()) for v in val],
                     pos_sorted=[np.sort(v.astype(np.float32)[positive]) for v in val])

    def key_of(self, config: dict) -> str:
        """The part key of a suggested config: its grid point (every suggestion is one; a KeyError is a bug)."""
        return grid_key(config, self.names, self.lookup, self.manifest.parts)

    def val_f1(self, curve: Curve, epoch: int, threshold: float) -> float:
        """micro-F1 of epoch `epoch` (1-based) at `threshold`: 2 TP / (predicted + true positives), probability >=
        threshold as trainable.metrics.predict (compared in float64)."""
        t = np.float64(threshold)
        predicted = len(curve.val_sorted[epoch - 1]) - np.searchsorted(curve.val_sorted[epoch - 1], t, "left")
        tp = len(curve.pos_sorted[epoch - 1]) - np.searchsorted(curve.pos_sorted[epoch - 1], t, "left")
        denom = predicted + self.n_true
        return float(2 * tp / denom) if denom else 0.0

    def test_f1(self, curve: Curve, epoch: int, threshold: float) -> float:
        """scikit-learn's micro-F1 of the test split at `threshold`."""
        from sklearn.metrics import f1_score

        predicted = curve.test[epoch - 1].astype(np.float32) >= np.float64(threshold)
        return float(f1_score(self.test_targets, predicted.astype(np.uint8), average="micro", zero_division=0))

    def val_se(self, curve: Curve, epoch: int, threshold: float) -> float:
        """The bootstrap SE of val micro-F1 (search_efficiency.py's micro_f1_bootstrap, its resamples and seed)."""
        return se.micro_f1_bootstrap(curve.val[epoch - 1].astype(np.float32), self.val_targets, threshold)[1]


# ---- one replayed search ------------------------------------------------------------------------------


@dataclasses.dataclass
class SimTrial:
    """What Ray's schedulers read of a Trial (ASHA: trial_id), and the replay's own bookkeeping."""

    trial_id: str
    config: dict
    curve: Curve
    threshold: float
    status: str = "RUNNING"
    epoch: int = 0
    last_result: dict = dataclasses.field(default_factory=dict)


class SimController:
    """The TuneController a scheduler is handed: ASHA and FIFO touch nothing of it; get_trials for the others."""

    def __init__(self) -> None:
        self.trials: list[SimTrial] = []

    def get_trials(self) -> list[SimTrial]:
        """Every trial started so far (FIFOScheduler.choose_trial_to_run reads them)."""
        return self.trials


class Clock:
    """The simulated driver: one decision at a time; `timed` runs one and adds its wall time when measured."""

    def __init__(self, measure: bool) -> None:
        self.now, self.measure, self.decision_s = 0.0, measure, 0.0

    def timed(self, fn, *args, **kwargs):
        """fn(*args, **kwargs), its wall time added to the clock when measured."""
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        if self.measure:
            spent = time.perf_counter() - start
            self.now += spent
            self.decision_s += spent
        return out


class Replay:
    """One search of an arm on the table: K workers and a driver on the simulated clock, in Tune's order."""

    def __init__(self, name: str, seed: int, trials: int, tbl: CurvesTable, measure: bool = True,
                 draw=None) -> None:
        """`draw(config)`: the recorded training seed a trial of `config` trains on, instead of the seed's rng
        (replay_tuner.py's rule, which a real trainable can follow)."""
        opts = arm_options(name, trials, tbl.epochs, seed)
        self.name, self.seed, self.trials, self.tbl = name, seed, trials, tbl
        if ARMS[name].native:
            self.searcher, self.scheduler = build_native(opts, tbl.gspace)
        else:
            parts = arm_parts(name, opts)
            self.searcher = build_searcher(parts, opts, tbl.gspace, ARMS[name].shared_lr)
            self.scheduler = build_scheduler(parts, opts)
        self.controller, self.clock = SimController(), Clock(measure)
        # trial k's training seed, the same for every arm of this seed: arms are paired by seed
        self.draws = np.random.default_rng(seed).integers(len(tbl.seeds), size=trials)
        self.draw = draw
        self.queue: list = []  # (arrival, order, trial, "result" or "error")
        self.order = itertools.count()
        self.events: list[dict] = []
        self.errors = 0
        base = se.ARMS.get(ARMS[name].base or "")
        self.grace_period = base.asha.get("grace_period", opts.grace_period) if base else opts.grace_period

    def start(self) -> None:
        """A free worker: the driver asks the searcher (its time counts), the trial starts after its set-up."""
        k = len(self.controller.trials)
        trial_id = f"{self.seed:03d}_{k:05d}"
        config = self.clock.timed(self.searcher.suggest, trial_id)
        seed = self.draw(config) if self.draw else self.tbl.seeds[self.draws[k]]
        curve = self.tbl.curves[self.tbl.key_of(config), seed]
        trial = SimTrial(trial_id, config, curve, float(config["threshold"]))
        self.controller.trials.append(trial)
        self.scheduler.on_trial_add(self.controller, trial)
        self.queue_next(trial, self.clock.now + curve.startup_s)

    def queue_next(self, trial: SimTrial, at: float) -> None:
        """The trial's next arrival: its next epoch's result, or the error of the epoch that diverged."""
        if trial.epoch < len(trial.curve.epoch_s):
            heapq.heappush(self.queue, (at + trial.curve.epoch_s[trial.epoch], next(self.order), trial, "result"))
        else:
            heapq.heappush(self.queue, (at + trial.curve.diverged_s, next(self.order), trial, "error"))

    def run(self) -> dict:
        """Replay until every trial of the budget has ended; the run as search_efficiency.py's analyse reads it."""
        started = time.perf_counter()
        for _ in range(min(K, self.trials)):
            self.start()
        while self.queue:
            arrival, _, trial, what = heapq.heappop(self.queue)
            self.clock.now = max(self.clock.now, arrival)  # the driver may still be busy with an earlier one
            if not (self.fail(trial) if what == "error" else self.result(trial, arrival)):
                self.queue_next(trial, self.clock.now)
            elif len(self.controller.trials) < self.trials:
                self.start()
        return {"arm": self.name, "seed": self.seed, "trials": self.trials, "max_epochs": self.tbl.epochs,
                "grace_period": self.grace_period, "events": self.events, "errors": self.errors,
                "promoted": promoted(self.events, self.controller.trials, self.tbl), "wall_s": self.clock.now,
                "decision_s": self.clock.decision_s, "replay_s": time.perf_counter() - started}

    def result(self, trial: SimTrial, arrival: float) -> bool:
        """One epoch's result: scheduler, then (CONTINUE only) searcher; returns whether the trial ended."""
        from ray.tune.schedulers import TrialScheduler

        trial.epoch += 1
        seconds = float(trial.curve.epoch_s[trial.epoch - 1]) + (trial.curve.startup_s if trial.epoch == 1 else 0.0)
        f1 = self.tbl.val_f1(trial.curve, trial.epoch, trial.threshold)
        result = {PRIMARY_METRIC: f1, "training_iteration": trial.epoch, "epoch": trial.epoch,
                  "time_this_iter_s": seconds, "trial_id": trial.trial_id, "done": False}
        self.events.append({"trial": trial.trial_id, "epoch": trial.epoch, "f1": f1, "s": seconds, "t": arrival})
        decision = self.clock.timed(self.scheduler.on_trial_result, self.controller, trial, result)
        if decision != TrialScheduler.STOP:
            self.clock.timed(self.searcher.on_trial_result, trial.trial_id, result)
        trial.last_result = result
        if decision != TrialScheduler.STOP and trial.epoch < self.tbl.epochs:
            return False
        trial.status = "TERMINATED"  # Tune's stop_trial: the scheduler, then the searcher, with the last result
        self.clock.timed(self.scheduler.on_trial_complete, self.controller, trial, result)
        self.clock.timed(self.searcher.on_trial_complete, trial.trial_id, result=result)
        return True

    def fail(self, trial: SimTrial) -> bool:
        """The epoch that diverged: Tune's trial failure (scheduler on_trial_error, searcher error=True)."""
        trial.status = "ERROR"
        self.errors += 1
        self.clock.timed(self.scheduler.on_trial_error, self.controller, trial)
        self.clock.timed(self.searcher.on_trial_complete, trial.trial_id, error=True)
        return True


def replay_search(name: str, seed: int, trials: int, tbl: CurvesTable, measure: bool = True,
                  val_se: bool = False) -> dict:
    """One replayed search; `val_se`: also the bootstrap SE of its promoted trial's val micro-F1 (the reference's,
    for a target below its best)."""
    method = ARMS[name].synetune
    if method:
        import replay_synetune

        replay_synetune.quiet()
        opts = arm_options(name, trials, tbl.epochs, seed)
        run = replay_synetune.run_method(name, method, seed, trials, tbl, K, se.asha_settings(opts))
    else:
        run = Replay(name, seed, trials, tbl, measure).run()
    if val_se and run["promoted"]:
        p = run["promoted"]
        p["val_se"] = tbl.val_se(tbl.curves[p["part"], p["train_seed"]], p["epoch"], p["config"]["threshold"])
    return run


def promoted(events: list[dict], trials: list[SimTrial], tbl: CurvesTable) -> dict | None:
    """The trial the search would promote: best val/micro_f1 over all epochs (the first to arrive of equal
    scores), scored on the test split at its own threshold."""
    if not events:
        return None
    best = max(events, key=lambda e: e["f1"])  # max keeps the first of equal scores
    trial = next(t for t in trials if t.trial_id == best["trial"])
    key = tbl.key_of(trial.config)
    return {"trial": trial.trial_id, "epoch": best["epoch"], "val_f1": best["f1"],
            "test_f1": tbl.test_f1(trial.curve, best["epoch"], trial.threshold), "val_se": None,
            "config": {k: v for k, v in spaces.merge_lr(trial.config).items() if k in (*tbl.names, "lr", "threshold")},
            "part": key, "train_seed": next(s for s in tbl.seeds if tbl.curves[key, s] is trial.curve)}


# ---- the figures -----------------------------------------------------------------------------------


def median_interval(values: list[float], resamples: int = se.INTERVAL_RESAMPLES, seed: int = 0) -> dict:
    """The median of per-seed ratios (a miss is inf) and its 95 % percentile bootstrap interval over the seeds."""
    x = np.asarray([INF_STANDIN if v == math.inf else v for v in values], dtype=np.float64)
    if len(x) == 0:
        return {"median": None, "low": None, "high": None}
    medians = np.median(x[np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))], axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    # a median (or percentile) between a hit (<= 1) and a miss interpolates towards INF_STANDIN: it is a miss
    back = lambda v: math.inf if v >= INF_STANDIN / 4 else float(v)  # noqa: E731
    return {"median": back(np.median(x)), "low": back(low), "high": back(high)}


def seed_row(seed: int, by_arm: dict, target_se: float) -> dict | None:
    """One seed's figures per arm, as search_efficiency.py's analyse computes them (its helpers); the target and
    the budget are the YARDSTICK's where it ran, else random_fifo's on the arms' own seed."""
    ref = by_arm.pop(YARDSTICK, None) or by_arm.get(se.REFERENCE)
    if ref is None:
        return None
    ref_best = se.best_within(ref["events"], len(ref["events"]))
    target = ref_best - target_se * ref["promoted"]["val_se"] if target_se else ref_best
    budget, budget_s = ref["trials"] * ref["max_epochs"], se.spent_s(ref["events"])
    equal = min(len(r["events"]) for arm, r in by_arm.items() if arm in se.BASE_ARMS)
    row = {"seed": seed, "target": target, "reference_best": ref_best, "budget_trial_epochs": budget,
           "budget_trial_s": budget_s, "equal_budget": equal, "arms": {}}
    for arm, r in by_arm.items():
        hit = se.first_reach(r["events"], target)
        ratio = hit[0] / budget if hit else math.inf
        ratio_s = hit[1] / budget_s if hit else math.inf
        p = r["promoted"] or {}
        row["arms"][arm] = {
            "trial_epochs": len(r["events"]), "trial_s": se.spent_s(r["events"]), "to_target": hit and hit[0],
            "miss": hit is None, "ratio": ratio, "ratio_s": ratio_s, "log2_ratio": se.log2_ratio(ratio),
            "log2_ratio_s": se.log2_ratio(ratio_s), "best": se.best_within(r["events"], len(r["events"])),
            "best_at_budget": se.best_within(r["events"], equal), "promoted_val": p.get("val_f1"),
            "promoted_test": p.get("test_f1"),
            "winners_curse": p["val_f1"] - p["test_f1"] if p.get("test_f1") is not None else None,
            "errors": r["errors"], "wall_s": r["wall_s"], "decision_s": r["decision_s"], "replay_s": r["replay_s"]}
    return row


def summarise(arm: str, rows: list[dict]) -> dict:
    """Over the seeds where the arm ran: medians with intervals, misses, means."""
    mine = [row["arms"][arm] for row in rows if arm in row["arms"]]

    def mean(key: str) -> float | None:
        xs = [a[key] for a in mine if a[key] is not None]
        return float(np.mean(xs)) if xs else None

    fifo_epochs = [row["budget_trial_epochs"] for row in rows if arm in row["arms"]]
    return {"seeds": len(mine), "misses": sum(a["miss"] for a in mine),
            "median_ratio": median_interval([a["ratio"] for a in mine]),
            "median_ratio_s": median_interval([a["ratio_s"] for a in mine]),
            "mean_best_at_budget": mean("best_at_budget"), "mean_promoted_val": mean("promoted_val"),
            "mean_promoted_test": mean("promoted_test"), "mean_winners_curse": mean("winners_curse"),
            "mean_trial_epochs": mean("trial_epochs"), "mean_trial_s": mean("trial_s"),
            "share_of_fifo_epochs": (float(np.mean([a["trial_epochs"] for a in mine]) / np.mean(fifo_epochs))
                                     if mine else None),
            "errors": sum(a["errors"] for a in mine), "mean_decision_s": mean("decision_s"),
            "replay_s": float(sum(a["replay_s"] for a in mine))}


def paired(rows: list[dict], a: str, b: str) -> dict:
    """se.compare's paired intervals of a - b, and the same for the log2 ratio in trial-seconds."""
    out = se.compare(rows, a, b)
    diffs = [row["arms"][a]["log2_ratio_s"] - row["arms"][b]["log2_ratio_s"] for row in rows
             if a in row["arms"] and b in row["arms"]]
    interval = se.paired_interval(diffs)
    ahead = None
    if interval["seeds"] >= se.MIN_SEEDS_AHEAD and (interval["low"] > 0 or interval["high"] < 0):
        ahead = a if interval["mean"] < 0 else b  # lower is better
    out["log2_ratio_s"] = {**interval, "better": "lower", "ahead": ahead}
    return out


def analyse(runs: list[dict], target_se: float) -> dict:
    """One budget's per-seed rows, summary per arm, and each arm paired against BASELINE, against DEFAULT (the
    decision: an arm replaces the default only if ahead of it) and, for the two base arms, against FIFO."""
    seeds = sorted({r["seed"] for r in runs})
    rows = [row for seed in seeds
            if (row := seed_row(seed, {r["arm"]: r for r in runs if r["seed"] == seed}, target_se))]
    arms = list(dict.fromkeys(r["arm"] for r in runs if r["arm"] != YARDSTICK))
    pairs = [(a, BASELINE) for a in arms if a != BASELINE and BASELINE in arms]
    pairs += default_pairs(arms)
    pairs += [(a, se.REFERENCE) for a in ("tpe_asha", BASELINE) if a in arms and se.REFERENCE in arms]
    rhos = [se.rank_correlation(r) for r in runs if r["arm"] == se.REFERENCE]
    correlation = {rung: float(np.median([c[rung]["rho"] for c in rhos if c[rung]["rho"] is not None]))
                   for rung in (rhos[0] if rhos else {}) if any(c[rung]["rho"] is not None for c in rhos)}
    return {"summary": {arm: summarise(arm, rows) for arm in arms},
            "comparisons": {f"{a} - {b}": paired(rows, a, b) for a, b in pairs},
            "rank_correlation_median_rho": correlation, "per_seed": rows}


def default_pairs(arms: list[str]) -> list[tuple[str, str]]:
    """Every arm but the baseline (its pair is the other way round) against DEFAULT."""
    return [(a, DEFAULT) for a in arms if a not in (DEFAULT, BASELINE) and DEFAULT in arms]


def add_default_comparisons(path: Path) -> dict:
    """--compare-default: a finished run's JSON gets its `arm - tpe_asha` pairs from its stored per-seed rows
    (nothing is replayed again; runs written before DEFAULT was paired lack them)."""
    import json

    doc = json.loads(Path(path).read_text())
    for figures in doc["results"]["budgets"].values():
        for a, b in default_pairs(list(figures["summary"])):
            figures["comparisons"][f"{a} - {b}"] = paired(figures["per_seed"], a, b)
    Path(path).write_text(json.dumps(doc, indent=1))
    return doc


REAL_RUNS = Path(__file__).resolve().parent / "results" / (
    "search_efficiency-confirm-seeds0+1+2+3+4+5+6+7+8+9_2026-12-01.json")
"""the 10 real seeds of search_efficiency.py (44 trials, other datasets per seed) the replay is checked against"""
VERSUS_REAL = ("random_fifo", "random_asha", "tpe_asha")
YARDSTICK = "yardstick"
YARDSTICK_OFFSET = 1_000_000
"""The yardstick (the target every arm must reach, and the budget its ratio divides by) is a random_fifo search of
its own, on seed + YARDSTICK_OFFSET. On the arms' own seed it would not be independent of them: RandomSampler(seed)
proposes random_fifo's 44 configurations, in order, to random_asha, and TPE's start-up trials are the first 11 of
them, so random_asha's trials always hold the target's configuration and only ASHA can make it miss. `--reference
paired` replays that (search_efficiency.py's real seeds are paired so: versus_real needs it)."""


def miss_rate_interval(misses: list[bool]) -> dict:
    """The miss rate with its 95 % bootstrap interval over seeds, and the exact (Clopper-Pearson) binomial one: the
    bootstrap of 0 misses in 10 is [0, 0], which no other rate lies in, so the check reads the exact interval."""
    from scipy.stats import binomtest

    x = np.asarray(misses, dtype=np.float64)
    rates = x[np.random.default_rng(0).integers(0, len(x), size=(se.INTERVAL_RESAMPLES, len(x)))].mean(axis=1)
    exact = binomtest(int(x.sum()), len(x)).proportion_ci(0.95)
    return {"rate": float(x.mean()), "bootstrap_low": float(np.percentile(rates, 2.5)),
            "bootstrap_high": float(np.percentile(rates, 97.5)), "exact_low": float(exact.low),
            "exact_high": float(exact.high)}


def versus_real(summary: dict, real_path: Path) -> dict:
    """Issue 26 item 3: per arm, the replay's median ratio and miss rate inside the real seeds' 95 % intervals, and
    its share of random_fifo's trial-epochs within 10 % of the real share. Distributions, not seeds: the real seeds
    each use another dataset."""
    import json

    rows = json.loads(Path(real_path).read_text())["results"]["per_seed"]
    fifo_epochs = float(np.mean([row["arms"][se.REFERENCE]["trial_epochs"] for row in rows]))
    out: dict = {"real": str(real_path), "real_seeds": len(rows)}
    for arm in (a for a in VERSUS_REAL if a in summary):
        real = [row["arms"][arm] for row in rows]
        ratio = median_interval([math.inf if a["miss"] else a["ratio"] for a in real])
        misses = miss_rate_interval([a["miss"] for a in real])
        mine = summary[arm]
        median, rate = mine["median_ratio"]["median"], mine["misses"] / mine["seeds"]
        share = float(np.mean([a["trial_epochs"] for a in real])) / fifo_epochs
        out[arm] = {"real_median_ratio": ratio, "replay_median_ratio": median,
                    "median_inside": ratio["low"] <= median <= ratio["high"],
                    "real_miss_rate": misses, "replay_miss_rate": rate,
                    "miss_rate_inside": misses["exact_low"] <= rate <= misses["exact_high"],
                    "real_share_of_fifo_epochs": share, "replay_share_of_fifo_epochs": mine["share_of_fifo_epochs"],
                    "share_within_10pct": abs(mine["share_of_fifo_epochs"] / share - 1) <= 0.10}
    return out


def table_summary(tbl: CurvesTable, step: float = 0.01) -> dict:
    """The recorded table in figures small enough to commit (the parts are ~106 MB): per part its seconds and, per
    epoch, the best val micro-F1 over thresholds `step` apart with that threshold's test micro-F1; and the
    landscape: the best point with its bootstrap SE and how many configurations lie within one SE of it (seed-mean
    of each configuration's best epoch and threshold)."""
    low, high = float(tbl.gspace["threshold"]["low"]), float(tbl.gspace["threshold"]["high"])
    grid = np.round(np.arange(low, high + step / 2, step), 4)
    parts, best_of = [], {}  # (key, seed) -> (its best epoch's figures, that epoch)
    for (key, seed), c in tbl.curves.items():
        epochs = []
        for e in range(1, len(c.epoch_s) + 1):
            f1s = [tbl.val_f1(c, e, t) for t in grid]
            t = float(grid[int(np.argmax(f1s))])
            epochs.append({"val_f1": max(f1s), "threshold": t, "test_f1": tbl.test_f1(c, e, t)})
        parts.append({"part": key, "seed": seed, "point": tbl.manifest.point_of(key), "startup_s": c.startup_s,
                      "epoch_s": [float(x) for x in c.epoch_s], "diverged": c.diverged, "epochs": epochs})
        if epochs:
            k = int(np.argmax([x["val_f1"] for x in epochs]))
            best_of[key, seed] = (epochs[k], k + 1)
    top_key, top_seed = max(best_of, key=lambda k: best_of[k][0]["val_f1"])
    top, top_epoch = best_of[top_key, top_seed]
    se_top = tbl.val_se(tbl.curves[top_key, top_seed], top_epoch, top["threshold"])
    means = {key: float(np.mean([best_of[key, s][0]["val_f1"] if (key, s) in best_of else 0.0 for s in tbl.seeds]))
             for key in tbl.manifest.keys()}
    return {"parts": parts, "best": {"part": top_key, "seed": top_seed, "epoch": top_epoch, **top, "val_se": se_top},
            "configurations": len(means), "within_1se_of_best_seed_mean": sum(m >= top["val_f1"] - se_top
                                                                                 for m in means.values()),
            "seed_mean_quantiles": {q: float(np.quantile(list(means.values()), q)) for q in (0.5, 0.9, 0.99, 1.0)},
            "recorded_epoch_s_mean": float(np.mean([x for p in parts for x in p["epoch_s"]])),
            "diverged_parts": sum(1 for p in parts if p["diverged"]), "threshold_step": step}


# ---- running many ----------------------------------------------------------------------------------

_TABLE: dict = {}
"""the table a forked replay process reads (loaded once, before the fork)"""


def _replay_task(task: tuple) -> dict:
    return replay_search(*task[:2], task[2], _TABLE["table"], *task[3:])


def replay_all(tbl: CurvesTable, arms: list[str], seeds: list[int], budgets: list[int], jobs: int,
               measure: bool, target_se: float, capped: bool = True, yardstick: bool = True) -> list[dict]:
    """Every (arm, seed, budget) replay (`capped`: an arm's max_seeds caps its seeds), and with `yardstick` one
    more random_fifo search per seed and budget on seed + YARDSTICK_OFFSET, named YARDSTICK; jobs > 1: forked
    processes."""
    tasks = [(a, s, b, measure, bool(target_se) and a == se.REFERENCE and not yardstick) for b in budgets
             for a in arms for s in seeds[: (ARMS[a].max_seeds if capped else None) or len(seeds)]]
    if yardstick:
        tasks += [(se.REFERENCE, s + YARDSTICK_OFFSET, b, measure, bool(target_se)) for b in budgets for s in seeds]
    if jobs <= 1:
        runs = [replay_search(a, s, b, tbl, m, v) for a, s, b, m, v in tasks]
    else:
        import multiprocessing

        _TABLE["table"] = tbl
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            runs = list(pool.imap_unordered(_replay_task, tasks, chunksize=2))
    for run in runs:
        if run["seed"] >= YARDSTICK_OFFSET:
            run["arm"], run["seed"] = YARDSTICK, run["seed"] - YARDSTICK_OFFSET
    return runs


def parse_args(argv=None) -> argparse.Namespace:
    """The command line; random_fifo (the reference) and random_asha (the baseline) are always replayed."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--curves", type=Path, default=curves.DEFAULT_OUT, help="the curves folder (bench/curves.py)")
    p.add_argument("--arms", default=",".join(DEFAULT_ARMS), help=f"comma list of {', '.join(ARMS)}")
    p.add_argument("--seeds", type=int, default=100, help="seeds 0..N-1 (an arm's max_seeds caps its own)")
    p.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="trials per search, comma list")
    p.add_argument("--target-se", type=float, default=0.0,
                   help="bootstrap SEs below random_fifo's best that count as reaching it (0: the confirmation's)")
    p.add_argument("--jobs", type=int, default=1, help="replay processes")
    p.add_argument("--all-seeds", action="store_true", help="every arm on every seed (ignore an arm's max_seeds)")
    p.add_argument("--no-decision-time", action="store_true", help="leave the searcher's measured time off the clock")
    p.add_argument("--any-table", action="store_true",
                   help="replay whatever space and setup the folder holds (a test table); default: the frozen bench's")
    p.add_argument("--reference", choices=("independent", "paired"), default="independent",
                   help="the yardstick: random_fifo on an independent seed (default) or on the arms' own seed, as "
                        "search_efficiency.py pairs it (the check against the real seeds needs this)")
    p.add_argument("--real", type=Path, default=REAL_RUNS,
                   help="search_efficiency.py's real runs to check the 44-trial replay against (item 3)")
    p.add_argument("--table-summary", action="store_true",
                   help="write the recorded table's summary (bench/results/curves_summary_<date>.json) and exit")
    p.add_argument("--compare-default", type=Path, default=None,
                   help=f"add every arm - {DEFAULT} pair to a finished run's JSON from its per-seed rows, then exit")
    p.add_argument("--results-dir", default=None)
    args = p.parse_args(argv)
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in args.arms if a not in ARMS]
    if unknown:
        p.error(f"unknown arm(s) {', '.join(unknown)}; arms are {', '.join(ARMS)}")
    args.arms = list(dict.fromkeys(args.arms + [a for a in (se.REFERENCE, BASELINE) if a not in args.arms]))
    args.budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    return args


def expected_fingerprints() -> dict:
    """The frozen bench's space and setup fingerprints (curves.make_manifest on FROZEN_CPU_SPACE), and its data
    fingerprint when the synthetic dataset is on this machine (else the parts are checked against the manifest)."""
    from common import bench_root

    space = se.make_space(gpu=False)
    root = bench_root() / f"synth-n{curves.DATASET['n_images']}-seed{curves.DATASET['data_seed']}"
    have = (root / ".complete").exists()
    spec = curves.dataset_spec(root, space["image_size"]) if have else {
        **curves.DATASET, "image_size": space["image_size"], "fingerprint": None, "labels": []}
    found = curves.make_manifest(space, spec).fingerprints
    return found if have else {k: v for k, v in found.items() if k != "data"}


def print_tables(results: dict) -> None:
    """Per budget: the summary per arm, then the paired intervals."""
    shown = lambda v: "inf" if v == math.inf else v  # noqa: E731  (table() prints a non-finite number as "-")
    for budget, figures in results["budgets"].items():
        rows = [{"arm": arm, **s, **{f"{k}_{p}": shown(s[k][p]) for k in ("median_ratio", "median_ratio_s")
                                     for p in ("median", "low", "high")}} for arm, s in figures["summary"].items()]
        print(table(rows, [("arm", "arm", ""), ("seeds", "seeds", ""), ("misses", "misses", ""),
                           ("median_ratio_median", "median ratio", ".3f"), ("median_ratio_low", "95% low", ".3f"),
                           ("median_ratio_high", "95% high", ".3f"), ("median_ratio_s_median", "ratio s", ".3f"),
                           ("mean_best_at_budget", "best@B", ".4f"), ("mean_promoted_test", "prom test", ".4f"),
                           ("mean_winners_curse", "val-test", ".4f"), ("share_of_fifo_epochs", "epochs/fifo", ".3f"),
                           ("mean_decision_s", "decide s", ".2f"), ("replay_s", "replay s", ".1f")],
                    title=f"\n{budget} trials (ratio: trial-epochs to random_fifo's best / its whole budget)"))
        rows = [{"pair": pair, "figure": f, **c} for pair, fs in figures["comparisons"].items() for f, c in fs.items()]
        print(table(rows, [("pair", "A - B", ""), ("figure", "figure", ""), ("seeds", "seeds", ""),
                           ("mean", "mean", "+.4f"), ("low", "95% low", "+.4f"), ("high", "95% high", "+.4f"),
                           ("ahead", "ahead", "")], title="paired 95 % bootstrap intervals over seeds"))
    real = results.get("versus_real")
    if isinstance(real, str):
        print(f"\nversus the real seeds: {real}")
    elif real:
        rows = [{"arm": arm, "real": shown(c["real_median_ratio"]["median"]),
                 "low": shown(c["real_median_ratio"]["low"]), "high": shown(c["real_median_ratio"]["high"]),
                 "replay": shown(c["replay_median_ratio"]), "inside": c["median_inside"],
                 "miss_real": c["real_miss_rate"]["rate"], "miss_replay": c["replay_miss_rate"],
                 "miss_inside": c["miss_rate_inside"], "share_real": c["real_share_of_fifo_epochs"],
                 "share_replay": c["replay_share_of_fifo_epochs"], "share_ok": c["share_within_10pct"]}
                for arm, c in real.items() if isinstance(c, dict)]
        print(table(rows, [("arm", "arm", ""), ("real", "real median", ".3f"), ("low", "95% low", ".3f"),
                           ("high", "95% high", ".3f"), ("replay", "replay", ".3f"), ("inside", "inside", ""),
                           ("miss_real", "real misses", ".2f"), ("miss_replay", "replay misses", ".2f"),
                           ("miss_inside", "inside (exact)", ""), ("share_real", "real epochs/fifo", ".3f"),
                           ("share_replay", "replay", ".3f"), ("share_ok", "within 10 %", "")],
                    title=f"\n44 trials: the replay against {real['real_seeds']} real seeds ({Path(real['real']).name})"))


def main(argv=None) -> dict:
    """Read and check the table, replay every arm, print and write the figures (bench/common.py write_results)."""
    args = parse_args(argv)
    import optuna

    warnings_off(optuna)
    started = time.time()
    if args.compare_default:
        doc = add_default_comparisons(args.compare_default)
        print_tables(doc["results"])
        return doc["results"]
    try:
        tbl = CurvesTable(args.curves, None if args.any_table else expected_fingerprints())
    except curves.CurvesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2)
    if args.table_summary:
        summary = table_summary(tbl)
        path = write_results("curves_summary", {"curves": str(args.curves), "manifest": {
            k: v for k, v in dataclasses.asdict(tbl.manifest).items() if k not in ("grid", "parts")}}, summary,
            args.results_dir, started)
        log(f"best {summary['best']['val_f1']:.4f} (SE {summary['best']['val_se']:.4f}); "
            f"{summary['within_1se_of_best_seed_mean']} of {summary['configurations']} configurations within 1 SE; "
            f"wrote {path}")
        return summary
    skipped = {a: why for a in args.arms if (why := arm_unavailable(a))}
    arms = [a for a in args.arms if a not in skipped]
    log(f"{len(tbl.curves)} curves, {len(tbl.manifest.grid)} grid points; {len(arms)} arms x {args.seeds} seeds x "
        f"budgets {args.budgets}" + (f"; skipped {skipped}" if skipped else ""))
    runs = replay_all(tbl, arms, list(range(args.seeds)), args.budgets, args.jobs, not args.no_decision_time,
                      args.target_se, capped=not args.all_seeds, yardstick=args.reference == "independent")
    results = {"budgets": {str(b): analyse([r for r in runs if r["trials"] == b], args.target_se)
                           for b in args.budgets},
               "arms_skipped": skipped, "arms_not_replayed": NOT_REPLAYED, "arms_built": {a: dataclasses.asdict(ARMS[a]) for a in arms},
               "replay_wall_s": time.time() - started}
    if "44" in results["budgets"] and args.real.exists() and not args.any_table and args.reference == "paired":
        results["versus_real"] = versus_real(results["budgets"]["44"]["summary"], args.real)
    elif args.reference != "paired":
        results["versus_real"] = ("not checked: the real seeds' yardstick is random_fifo on the arms' own seed; "
                                  "--reference paired replays that")
    print_tables(results)
    params = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "workers": K,
              "manifest": {k: v for k, v in dataclasses.asdict(tbl.manifest).items() if k not in ("grid", "parts")},
              "grid_points": len(tbl.manifest.grid), "configurations": len(tbl.manifest.keys())}
    variant = "-".join(v for v in (
        "anytable" if args.any_table else "", "paired" if args.reference == "paired" else "",
        "" if set(args.arms) == set(DEFAULT_ARMS) else "arms" + "+".join(
            a for a in args.arms if a not in (se.REFERENCE, BASELINE))) if v)
    path = write_results("replay", params, results, args.results_dir, started, variant=variant or None)
    print(f"replayed {len(runs)} searches in {time.time() - started:.0f} s; wrote {path}")
    return results


def warnings_off(optuna) -> None:
    """Optuna's experimental-feature and per-trial notices, and Ray's searcher warnings, would fill the log."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # GPSampler's suggestions take ~1 s: Ray warns about a slow define-by-run function at every one
    warnings.filterwarnings("ignore", message="Define-by-run function passed", category=UserWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # GPSampler without the optional greenlet package: one warning per study, the same fallback each time
    for handler in logging.getLogger("optuna").handlers:  # its child loggers' records reach only its handler
        handler.addFilter(lambda record: "'greenlet' package is unavailable" not in record.getMessage())
    logging.getLogger("ray.tune.search.optuna.optuna_search").setLevel(logging.ERROR)


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
