"""Every MLflow tag and metric name labeltune writes, defined once (standard library only).

    parent   SEARCH_TAG=<search>, ROLE_TAG=ROLE_PARENT; the search's counts and best trial when it ends;
             PROMOTION_RUN_TAG once promoted; the search's constants as params, BASELINE_METRICS, BASELINE_TABLE
    child    SEARCH_TAG, ROLE_TAG=ROLE_TRIAL, TRIAL_TAG=<trial id>, PARENT_RUN_TAG=<parent run id>
    promote  SEARCH_TAG, ROLE_TAG=ROLE_PROMOTION, TRIAL_TAG, CHECKPOINT_TAG, SEARCH_RUN_TAG, in PROMOTION_EXPERIMENT
    version  SEARCH_TAG, VERSION_TRIAL_TAG, FINGERPRINT_TAG, BEATS_BASELINE_TAG on the registered version

The runs table shows every key of every run of an experiment as a column, so the trials' experiment holds
few (tests/test_mlflow_view.py: <= 20 metrics and <= 16 params per trial, <= 40 keys over the experiment,
<= 10 tags of labeltune's own per run); promotions have an experiment of their own.
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
PROMOTION_EXPERIMENT = "labeltune-promotions"
"""the promotions' runs: apart from the trials, whose table they would fill with threshold figures"""
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
"""MLflow's own experiment tag: the UI's side navigation for model training (the landing page ignores it)"""
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
"""MLflow's own experiment tag of a saved runs view: VIEW_TAG_PREFIX + its key (runs.py says what a view holds)"""

# The parent's
STOP_TAG = "labeltune.stop_reason"
"""why --target or --plateau ended the search (absent when its budget did)"""
TRIALS_TAG = "labeltune.trials"
"""how many trials started"""
ORPHANED_COUNT_TAG = "labeltune.trials_orphaned"
OUTCOMES_TAG = "labeltune.outcomes"
"""JSON: search.outcome.count() of the search's trials (stopped early, failed, ...)"""
BEST_TRIAL_TAG = "labeltune.best_trial_id"
BEST_RUN_TAG = "labeltune.best_run_id"
PROMOTION_RUN_TAG = "labeltune.promotion_run_id"
"""the search's latest promotion run (in PROMOTION_EXPERIMENT)"""
DESCRIPTION_TAG = "mlflow.note.content"
"""MLflow's own: the run's description (markdown), shown on the run's page"""
GIT_COMMIT_TAG = "mlflow.source.git.commit"
"""MLflow's own: the runs table's Version column"""

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
SEARCH_RUN_TAG = "labeltune.search_run_id"
"""the search's parent run, in EXPERIMENT (a promotion is no child of it: mlflow.parentRunId would nest it there)"""
ENSEMBLE_TAG = "labeltune.ensemble"
VERSION_TRIAL_TAG = "labeltune.trial"
"""the version's trial, or its ensemble members' ids joined by commas"""
FINGERPRINT_TAG = "labeltune.data_fingerprint"
BEATS_BASELINE_TAG = "labeltune.beats_baseline"

# Metric names
BEST_PREFIX = "best/"
"""a trial's best epoch: best/<PRIMARY_METRIC> (the parent's: the search's best trial's)"""
BEST_EPOCH = "best_epoch"
GLOBAL_THRESHOLD_PREFIX = "global_threshold/"
"""a promotion's test figures at its one global threshold"""
EPOCH_METRICS = (
    "img_per_s", "train/loss", "val/loss", "val/micro_f1", "val/macro_f1", "val/micro_precision",
    "val/micro_recall", "val/map", "val/exact_match",
)
"""what a child run logs every epoch, at step = epoch (so no `epoch` metric); the trial still reports every figure
to Tune. Per-label figures go to LABEL_TABLE once, for the best epoch, and macro precision and recall stay in Tune's
results, so the runs table and a trial's charts stay short"""
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
SEARCH_PREFIX = "search/"
"""metrics of the parent (and a promotion) that are no trial's score: they sort and chart apart from the trials'"""
BASELINE_METRICS = ("val/micro_f1", "test/micro_f1")
"""the no-learning baseline figures the parent logs as metrics, as `baseline_metric(figure)`; the others (and the
label counts k) are in BASELINE_TABLE. In memory they are `trainable.baselines.PREFIX` + <split>/<metric>."""
BASELINE_TABLE = "baselines.csv"
"""parent artifact: one row per baseline figure (metric, val, test, k: labels predicted, '' for threshold-free)"""
PROMOTION_TABLE = "promotion_scores.csv"
"""promotion artifact: one row per figure (micro_f1, f1/<label>, tp/<label>, ...), a column per split and policy"""


def baseline_metric(figure: str) -> str:
    """The parent's metric of a no-learning baseline figure: 'val/micro_f1' -> 'search/baseline_val_micro_f1'."""
    return f"{SEARCH_PREFIX}baseline_{figure.replace('/', '_')}"


# A `labeltune train` run's (in LOCAL_EXPERIMENT)
LOCAL_FINGERPRINT_TAG, LOCAL_DATA_TAG = "data_fingerprint", "data"
