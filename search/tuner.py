"""Build the Tuner of a search from its parts: Ray Tune + Optuna TPE + ASHA over the Gym trainable.

    tuner = build_tuner(opts, record, data, callbacks)                    # what `labeltune search` runs
    tuner = build_tuner(opts, record, data, callbacks, parts=TunerParts(sampler=RandomSampler(seed=0)))
    tuner = build_tuner(opts, record, data, callbacks, restore_path=record.path)   # a resume

The trials get the decoded images through `tune.with_parameters` (Ray's object store) and
reuse their worker processes (`reuse_actors=True`), so the process start-up, the CUDA
context and the device copy of the data (gym._DEVICE_DATA) are paid once per worker, not
once per trial. Starting, resuming and summarising a search is search/run.py's job; the
cluster's resources are search/cluster.py's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search import space as spaces
from search.asha import REDUCTION as ASHA_REDUCTION
from search.asha import rungs as asha_rungs
from search.cluster import cluster_has_gpu, trial_resources, trial_slots
from search.options import SearchOptions
from search.record import SearchRecord
from trainable.config import PRIMARY_METRIC, PRIMARY_MODE


@dataclass(frozen=True)
class TunerParts:
    """What a benchmark swaps in the product's Tuner (bench/search_efficiency.py's arms); searches use the defaults.

    None means labeltune's own: TPE (multivariate, grouped, start-up trials scaled to the budget) and ASHA.
    """

    sampler: Any = None
    """an Optuna sampler instead of TPE"""
    scheduler: Any = None
    """a Tune scheduler instead of ASHA"""
    baseline_points: bool = True
    """the space's known-good recipes first (search/space.py RECIPES)"""
    keep_study: bool = True
    """the Optuna study lives in the search folder (search/study.py), not in memory"""
    tell_pruned: bool = False
    """trials ASHA stopped reach Optuna as PRUNED, not COMPLETE (KeptOptunaSearch)"""
    trainable: Any = None
    """a Tune trainable instead of the Gym's (bench/replay_tuner.py: recorded curves looked up, no training);
    it gets the trial resources as the Gym's does"""


def trial_dirname(trial) -> str:
    """Short trial folders (Tune's default name carries the whole config)."""
    return f"trial_{trial.trial_id}"


def build_tuner(opts: SearchOptions, record: SearchRecord, trial_data, callbacks: list, restore_path: Path | None = None,
                *, parts: TunerParts = TunerParts(), stop=None, finished: frozenset[str] = frozenset()):
    """The Tuner: OptunaSearch (TPE) + ASHA + per-model resources + checkpoints scored by PRIMARY_METRIC.

    `stop`: a Tune Stopper (search.stopping.SearchStopper). `finished`: trials a resume must not
    train again (trainable/trial.py run_trial). `restore_path`: Tune's saved state to continue.
    """
    from ray import tune

    from trainable.trial import make_trainable

    use_gpu = cluster_has_gpu()
    resources = functools.partial(trial_resources, gpus=opts.gpus_per_trial, cpus=opts.cpus_per_trial, use_gpu=use_gpu)
    # ASHA's rung epochs write weights whatever their score (trainable/checkpoint.py needs_weights): the epoch a
    # stopped trial ends at keeps its model, and a resume trains again at most the epochs between two rungs.
    rungs = tuple(asha_rungs(opts.epochs, min(opts.grace_period, opts.epochs)))
    trainable = parts.trainable or make_trainable(trial_data, spaces.to_train_config, finished, rungs=rungs)
    trainable = tune.with_resources(trainable, resources)
    if restore_path is not None:
        tuner = tune.Tuner.restore(str(restore_path), trainable=trainable, resume_unfinished=True, resume_errored=True)
        # Tune restores the callbacks pickled at the start; give this driver fresh ones (its tracking URI).
        run_config = restored_run_config(tuner)
        run_config.callbacks, run_config.stop = callbacks, stop
        return tuner
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=PRIMARY_METRIC, mode=PRIMARY_MODE, search_alg=_searcher(opts, record, parts, use_gpu),
            scheduler=parts.scheduler or _asha(opts), num_samples=opts.trials, reuse_actors=True,
            trial_dirname_creator=trial_dirname,
            time_budget_s=opts.time_budget_min * 60 if opts.time_budget_min else None,
        ),
        run_config=tune.RunConfig(
            name=record.name, storage_path=record.storage, callbacks=callbacks, verbose=0, stop=stop,
            # Every checkpoint is kept while a trial runs (most epochs' hold only their record: trainable/trial.py);
            # search.pruning keeps each finished trial's best and latest (Tune's num_to_keep=2 can delete what a
            # resume needs, see pruning.py).
            checkpoint_config=tune.CheckpointConfig(
                checkpoint_score_attribute=PRIMARY_METRIC, checkpoint_score_order=PRIMARY_MODE),
            failure_config=tune.FailureConfig(max_failures=opts.max_failures),
        ),
    )


def _searcher(opts: SearchOptions, record: SearchRecord, parts: TunerParts, use_gpu: bool):
    """OptunaSearch on the recorded space (the study kept in the search folder), behind a ConcurrencyLimiter."""
    from optuna.samplers import TPESampler
    from ray.tune.search import ConcurrencyLimiter

    from search.study import KeptOptunaSearch, study_holds, study_storage

    space = record.space
    points = spaces.points_to_evaluate(space, tuple(record.pretrained_models)) if parts.baseline_points else []
    if record.warm_start and parts.keep_study:  # a recipe the warm start already brought is not run again
        points = [point for point in points if not study_holds(record.path, record.name, point)]
    sampler = parts.sampler
    if sampler is None:
        # Optuna's default of 10 random start-up trials would make a 16-trial search mostly random.
        startup = max(2, min(10, opts.trials // 4))
        sampler = TPESampler(seed=opts.seed, n_startup_trials=startup, multivariate=True, group=True)
    searcher = KeptOptunaSearch(
        space=spaces.make_define_by_run(space, record.constants, tuple(record.pretrained_models)),
        metric=PRIMARY_METRIC, mode=PRIMARY_MODE,  # a define-by-run space leaves Tune's param_space empty
        points_to_evaluate=points or None, sampler=sampler,
        study_name=record.name if parts.keep_study else None,
        storage=study_storage(record.path) if parts.keep_study else None,
        pruned_below=opts.epochs if parts.tell_pruned else None,
    )
    # Tune keeps only one trial pending for a custom searcher: without a limiter, trials would start
    # one at a time. The limiter also makes TPE wait for results instead of proposing blindly.
    slots = trial_slots(spaces.choices(space["model"]), opts.gpus_per_trial, opts.cpus_per_trial, use_gpu)
    concurrency = opts.concurrency or min(opts.trials, slots)
    return ConcurrencyLimiter(searcher, max_concurrent=max(1, concurrency))


def _asha(opts: SearchOptions):
    from search.asha import ReplayAwareASHA

    return ReplayAwareASHA(time_attr="training_iteration", max_t=opts.epochs,
                           grace_period=min(opts.grace_period, opts.epochs), reduction_factor=ASHA_REDUCTION)


def restored_run_config(tuner):
    """The RunConfig a restored Tuner will run with, to hand it this driver's callbacks and stopper.

    Ray 2.60's Tuner keeps it in `_local_tuner.get_run_config()` (private; Tuner.restore takes no
    callbacks). tests/test_structure.py fails, naming this function, if that attribute goes away.
    """
    return tuner._local_tuner.get_run_config()
