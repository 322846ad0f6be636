"""Every MLflow tag and metric name labeltune writes, defined once (standard library only).

    parent   SEARCH_TAG=<search>, ROLE_TAG=ROLE_PARENT; the search's counts and best trial when it ends
    child    SEARCH_TAG, ROLE_TAG=ROLE_TRIAL, TRIAL_TAG=<trial id>, PARENT_RUN_TAG=<parent run id>
    promote  SEARCH_TAG, ROLE_TAG=ROLE_PROMOTION, TRIAL_TAG, CHECKPOINT_TAG, under the parent
    version  SEARCH_TAG, VERSION_TRIAL_TAG, FINGERPRINT_TAG, BEATS_BASELINE_TAG on the registered version
"""

from __future__ import annotations

SEARCH_TAG = "labeltune.search"
ROLE_TAG = "labeltune.role"
ROLE_PARENT, ROLE_TRIAL, ROLE_PROMOTION = "parent", "trial", "promotion"
"""the values of ROLE_TAG"""
TRIAL_TAG = "labeltune.trial_id"
PARENT_RUN_TAG = "mlflow.parentRunId"
"""MLflow's own: nests a run under its parent in the runs table"""
EXPERIMENT = "labeltune"
"""the experiment every search logs to; `labeltune train` logs to LOCAL_EXPERIMENT"""
LOCAL_EXPERIMENT = "local"

# The parent's
NUM_SAMPLES_TAG = "labeltune.num_samples"
STOP_TAG = "labeltune.stop_reason"
"""why --target or --plateau ended the search (absent when its budget did)"""
TRIALS_TAG = "labeltune.trials"
STOPPED_EARLY_COUNT_TAG = "labeltune.trials_stopped_early"
FAILED_COUNT_TAG = "labeltune.trials_failed"
ORPHANED_COUNT_TAG = "labeltune.trials_orphaned"
OUTCOMES_TAG = "labeltune.outcomes"
"""JSON: search.outcome.count() of the search's trials"""
BEST_TRIAL_TAG = "labeltune.best_trial_id"
BEST_RUN_TAG = "labeltune.best_run_id"

# A child's
BEST_TAG = "labeltune.best"
"""'true' on the best trial's run"""
BEST_MARK = "★ "
"""starts the run name of the search's best trial ("★ cnn5-adamw-a1b2c")"""
NODE_TAG, HOST_TAG = "labeltune.node_id", "labeltune.hostname"
STOPPED_EARLY_TAG = "labeltune.stopped_early"
ERROR_TAG = "labeltune.error"
ORPHANED_TAG = "labeltune.orphaned"

# The promotion run's and the registered version's
CHECKPOINT_TAG = "labeltune.checkpoint"
TRIAL_RUN_TAG = "labeltune.trial_run_id"
ENSEMBLE_TAG = "labeltune.ensemble"
VERSION_TRIAL_TAG = "labeltune.trial"
"""the version's trial, or its ensemble members' ids joined by commas"""
FINGERPRINT_TAG = "labeltune.data_fingerprint"
BEATS_BASELINE_TAG = "labeltune.beats_baseline"

# Metric names
BEST_PREFIX = "best/"
"""a trial's best epoch: best/<PRIMARY_METRIC>, best/val/f1/<label>"""
BEST_EPOCH = "best_epoch"
GLOBAL_THRESHOLD_PREFIX = "global_threshold/"
"""a promotion's test figures at its one global threshold"""
EPOCH_METRICS = (
    "epoch", "img_per_s", "train/loss", "val/loss", "val/micro_f1", "val/macro_f1", "val/micro_precision",
    "val/micro_recall", "val/macro_precision", "val/macro_recall", "val/map", "val/exact_match",
)
"""what a child run logs every epoch (the trial still reports every figure to Tune); per-label
figures go to LABEL_TABLE once, for the best epoch, so the runs table and a trial's charts stay short"""
CURVE_METRICS = ("train/loss", "val/loss", "val/micro_f1", "val/macro_f1")
"""what curves.png draws, read back from the store so that it spans a resumed trial's epochs"""
LABEL_TABLE = "best_epoch_labels.csv"
"""child artifact: one row per label (label, epoch, then PER_LABEL_METRICS) for the trial's best epoch"""
TIME_TABLE = "time_phases.csv"
"""child artifact: one row per trained epoch, the `time/` keys of trainable/timing.py (timing.COLUMNS), when the trial ends"""
TIME_TRAIN_SHARE = "time/train_share"
"""a child's training seconds / its wall seconds (trainable.timing.summarise), step 0, when the trial ends"""
TIME_EPOCH_MEDIAN = "time/epoch_s"
"""a child's median epoch wall seconds (trainable.timing.summarise), step 0, when the trial ends; not per epoch"""
# The no-learning baselines' metrics are `trainable.baselines.PREFIX` + <split>/<metric> (defined there: the
# trainable computes them without MLflow).

# A `labeltune train` run's (in LOCAL_EXPERIMENT)
LOCAL_FINGERPRINT_TAG, LOCAL_DATA_TAG = "data_fingerprint", "data"
