"""MLflow tracking of a search: one parent run per search, one child run per trial, written by the driver.

    tracker = MLflowTracker(store.tracking_uri(), "search-0612", parent_tags={...}, max_epochs=5,
                            dataset={"name": "course", "folder": "/data/course", "fingerprint": "3fa9...",
                                     "n_images": 20000, "labels": [...], "label_counts": {"baby": 95, ...}})
    tuner = Tuner(..., run_config=RunConfig(storage_path=..., callbacks=[tracker]))

The store's checks and queries are in runs.py, the tag and metric names in names.py.

The tracker is a Ray Tune Callback, so it runs on the driver only: trials never talk to
MLflow, and worker nodes need no access to the store. It uses an `MlflowClient` and never
MLflow's global fluent state (`mlflow.set_experiment` on the driver would redirect other
writers). Runs are found again by tags, so a resumed search (`search --resume NAME`: a new
driver with a fresh tracker, given `get_state()` of Tune's last snapshot through `set_state`)
continues the same parent and child runs instead of leaving duplicates behind:

    parent   tags labeltune.search=<name>, labeltune.role=parent; run name = search name; params = the
             search's constants (columns.constant_params); the description (columns.search_description)
    child    tags labeltune.search=<name>, labeltune.role=trial, labeltune.trial_id=<id>,
             mlflow.parentRunId=<parent run id>; run name = <model>-<optimizer>-<trial id>, the id the
             console prints; params = what the space varies (columns.trial_params), one `lr` (the chosen
             optimizer's `lr_<optimizer>`) and its `log10_lr`

The parent holds the no-learning baselines: BASELINE_METRICS as `search/baseline_...` metrics (no trial
score: they sort and chart apart), all of them with the label counts in BASELINE_TABLE. `start()` opens it
(and saves the search's runs view, runs.save_view) before Tune runs, so the driver can print the links.

What a child holds, so that the runs table and a trial's charts stay readable: EPOCH_METRICS
at step = epoch; at the trial's end `best/<PRIMARY_METRIC>` and `best_epoch` (step 0), LABEL_TABLE
(per-label figures and confusion counts of the best epoch, never metrics), curves.png and
confusion.png (best epoch); TIME_TABLE (where each trained epoch's time went,
trainable/timing.py) with two summary metrics, TIME_TRAIN_SHARE and TIME_EPOCH_MEDIAN (step 0; the
`time/` keys of the results are never logged per epoch). The tracker adds what only the driver
sees: each start's placement (first seen PENDING until Tune starts it) and the trial's finish (its
last report call until the trial ends). The per-label figures of the best epoch so far and the
timing rows are kept in the tracker (`get_state`, which Tune saves with its experiment state), so they
survive a resumed driver. When the search ends, the best trial's run is tagged
labeltune.best=true and its name starts with BEST_MARK. The data (`dataset=`) is a dataset
input of the parent and of every child: the runs table's Dataset column.

A failing store must not stop a search: every hook logs a warning and returns.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import mlflow
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
from mlflow.utils.validation import MAX_PARAMS_TAGS_PER_BATCH, MAX_TAG_VAL_LENGTH
from ray.tune import Callback
from ray.tune.experiment import Trial

from search.space import merge_lr
import search.tracking.names as names
from search.tracking.columns import (baseline_metrics, constant_params, searched_params, trial_params,
                                     write_baseline_table)
from search.tracking.names import (BEST_EPOCH, BEST_MARK, BEST_PREFIX, BEST_TAG, EPOCH_METRICS, EXPERIMENT, LABEL_TABLE,
                                   PARENT_RUN_TAG, ROLE_PARENT, ROLE_TAG, ROLE_TRIAL, SEARCH_TAG, STOP_TAG,
                                   TIME_EPOCH_MEDIAN, TIME_TABLE, TIME_TRAIN_SHARE, TRIAL_TAG)
from search.tracking.runs import (best_row, child_filter, epoch_history, is_number, open_experiment, parent_filter,
                                  save_view, search_runs)
from trainable import plots, timing
from trainable.errors import first_line
from trainable.metrics import PER_LABEL_METRICS, PRIMARY_METRIC, PRIMARY_MODE

log = logging.getLogger(__name__)

DATASET_KEYS = ("name", "folder", "fingerprint", "n_images", "labels", "label_counts")
"""the keys of MLflowTracker's `dataset` (folder and fingerprint required)"""


def _guarded(hook: Callable) -> Callable:
    """Run a Tune hook; an error (store down, locked database, plotting) becomes a warning, never a crashed search."""

    @functools.wraps(hook)
    def wrapper(self: "MLflowTracker", *args: Any, **kwargs: Any) -> Any:
        try:
            return hook(self, *args, **kwargs)
        except Exception as e:  # noqa: BLE001 - tracking is best effort; the search goes on
            first = hook.__name__ not in self._warned
            self._warned.add(hook.__name__)
            # The traceback once per hook: a store that went away would otherwise flood the log.
            log.warning("MLflow tracking (%s) failed in %s: %s: %s; the search goes on",
                        self.tracking_uri, hook.__name__, type(e).__name__, first_line(str(e)), exc_info=first)
            return None

    return wrapper


class MLflowTracker(Callback):
    """Tune callback that is the only MLflow writer of a search (see the module docstring)."""

    def __init__(self, tracking_uri: str, search_name: str, parent_tags: dict[str, str] | None = None,
                 experiment: str = EXPERIMENT, max_epochs: int | None = None,
                 parent_metrics: dict[str, float] | None = None, dataset: dict | None = None,
                 stopper: Any = None, outcomes: Any = None, space: dict | None = None,
                 constants: dict | None = None, description: str = "") -> None:
        """`stopper`: the search's SearchStopper (listed before the tracker), so that a trial it ended is
        not counted as stopped early by ASHA. `dataset`: the search's data, logged as a dataset input of every run (DATASET_KEYS):
        {"name": str, "folder": str, "fingerprint": str, "n_images": int, "labels": [str],
        "label_counts": {label: positives}}; None logs none. `parent_metrics`: the search's baselines
        (trainable.baselines' keys). `space`: the search space, so that a trial logs only what it varies (None:
        every key of its config) and the parent what it fixes, with `constants` (data, epochs, seeds).
        `description`: the parent run's (markdown)."""
        if dataset is not None:
            unknown = set(dataset) - set(DATASET_KEYS)
            missing = {"folder", "fingerprint"} - set(dataset)
            if unknown or missing:
                raise ValueError(f"MLflowTracker dataset: unknown keys {sorted(unknown)}, missing {sorted(missing)}; "
                                 f"valid keys: {', '.join(DATASET_KEYS)}")
        self.dataset = dict(dataset) if dataset is not None else None
        self.tracking_uri = tracking_uri
        self.parent_metrics = {str(k): float(v) for k, v in (parent_metrics or {}).items()}
        """logged on the parent run when it is created (the search's baselines)"""
        self.space = space
        self.constants = dict(constants or {})
        self.description = description
        self.search_name = search_name
        self.parent_tags = {str(k): str(v) for k, v in (parent_tags or {}).items()}
        self.experiment = experiment
        self.max_epochs = max_epochs
        self.stopper = stopper
        self.outcomes = outcomes
        """the search's search.outcome.Outcomes (listed before the tracker), or None: decided here alike"""
        self.parent_run_id: str | None = None
        self._experiment_id: str | None = None
        self._children: dict[str, str] = {}
        """trial id -> child run id"""
        self._host_tags: dict[str, dict[str, str]] = {}
        """trial id -> node tags already written (tagged again only when a trial moves)"""
        self._best: dict[str, dict] = {}
        """trial id -> {"epoch", "value", "figures"}: its best epoch so far by PRIMARY_METRIC and that
        epoch's per-label figures (LABEL_TABLE is written from them when the trial ends)"""
        self._timing: dict[str, dict[int, dict]] = {}
        """trial id -> epoch -> its timing row (timing.COLUMNS of the result; TIME_TABLE is written from them)"""
        self._pending_since: dict[str, float] = {}
        """trial id -> time.monotonic() when this driver first saw it PENDING"""
        self._placement: dict[str, float] = {}
        """trial id -> seconds from PENDING to started, until the start's first timed result takes it"""
        self._warned: set[str] = set()
        self._client: mlflow.MlflowClient | None = None
        self._started = False
        """this driver opened the parent (start()); not pickled: a resumed driver opens it again"""

    # Tune pickles callbacks into its experiment state; a resumed search unpickles them on a new driver.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_client"] = None
        state["_last_step"] = None  # a resumed driver asks MLflow: the old one may have logged after this snapshot
        state["_pending_since"], state["_placement"] = {}, {}  # this driver's clock; a resumed one sees PENDING again
        state["_started"] = False
        return state

    def __setstate__(self, state: dict) -> None:
        defaults = {"dataset": None, "_best": {}, "outcomes": None, "_timing": {}, "_pending_since": {},
                    "_placement": {}, "space": None, "constants": {}, "description": "", "_started": False}
        self.__dict__.update({**defaults, **state})  # pickled before these existed

    # `search --resume` gives Tune a fresh tracker; Tune hands it what get_state returned at its last snapshot.
    def get_state(self) -> dict:
        state = {"best": dict(self._best)}
        if self._timing:  # only while a trial has rows: a state without them reads as before
            state["timing"] = {trial_id: dict(rows) for trial_id, rows in self._timing.items()}
        return state

    def set_state(self, state: dict) -> None:
        self._best.update(state.get("best", {}))
        for trial_id, rows in state.get("timing", {}).items():
            self._timing.setdefault(trial_id, {}).update(rows)

    @property
    def client(self) -> mlflow.MlflowClient:
        if self._client is None:
            self._client = mlflow.MlflowClient(self.tracking_uri)
        return self._client

    # ---- Tune hooks -------------------------------------------------------------------------------

    @_guarded
    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        """Find the search's parent run (a resumed search) and set it RUNNING again, or create it."""
        self._start()

    @_guarded
    def start(self) -> str | None:
        """Open the parent run before Tune runs (`setup` then does nothing) and save the search's runs view; returns
        the parent run id (None when the store failed: a warning)."""
        return self._start()

    def _start(self) -> str:
        if not getattr(self, "_started", False):  # once per driver
            self._open_parent()
            save_view(self.client, self._experiment_id, self.search_name,
                      searched_params(self.space) if self.space is not None else [])
            self._started = True
        return self.parent_run_id

    @_guarded
    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        """Note when this driver first sees each trial PENDING: its placement is timed from there."""
        now = time.monotonic()
        for trial in trials:
            if getattr(trial, "status", None) == Trial.PENDING:
                self._pending_since.setdefault(str(trial.trial_id), now)

    @_guarded
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Create the trial's child run with its config as params, or set a resumed trial's run RUNNING again."""
        since = self._pending_since.pop(str(trial.trial_id), None)
        if since is not None:  # resources, worker process (imports), actor set-up, or a reused actor's reset
            self._placement[str(trial.trial_id)] = time.monotonic() - since
        run_id, created = self._child_run(trial, create=True)
        if not created:
            self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))

    @_guarded
    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        """Log EPOCH_METRICS at step = training_iteration (= epoch), in one batch; keep the best epoch's figures."""
        run_id, created = self._child_run(trial, create=True)
        step = int(result.get("training_iteration") or 0)
        # Before the skip below: an epoch retrained after a driver loss may be the best one the snapshot missed.
        self._keep_best(str(trial.trial_id), step, result)
        self._keep_timing(str(trial.trial_id), step, result)
        last = getattr(self, "_last_step", None)
        if last is None:
            last = self._last_step = {}
        if run_id not in last:  # a resumed driver: the steps this run already holds
            history = [] if created else self.client.get_metric_history(run_id, PRIMARY_METRIC)
            last[run_id] = max((m.step for m in history), default=0)
        if step <= last[run_id]:
            return  # a trial retrained after a driver loss: MLflow keeps the first value of each step
        last[run_id] = step
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(result[key]), now, step) for key in EPOCH_METRICS if is_number(result.get(key))]
        tags = {}
        for key, tag in (("node_id", names.NODE_TAG), ("hostname", names.HOST_TAG)):
            if result.get(key) is not None:
                tags[tag] = str(result[key])
        if tags == self._host_tags.get(trial.trial_id):
            tags = {}
        self.client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])
        if tags:
            self._host_tags[trial.trial_id] = tags

    @_guarded
    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Log the best epoch (metrics, LABEL_TABLE, figures) and the timing (TIME_TABLE, its summary), tag an
        ASHA-stopped trial, end the child run FINISHED."""
        ended = time.time()  # before the store and the plots: the trial's finish is timed to here
        run_id, _ = self._child_run(trial, create=False)
        if run_id is None:  # a trial that never started (stopped while pending): nothing to close
            return
        last = trial.last_result or {}
        try:
            self._log_best_epoch(run_id, str(trial.trial_id), last)
            self._log_timing(run_id, str(trial.trial_id), last, ended)
        finally:
            for kept in (self._best, self._timing, self._placement):
                kept.pop(str(trial.trial_id), None)  # written; the tracker's state stays small
            if self.max_epochs is not None and last.get("training_iteration") is not None:
                self.client.set_tag(run_id, names.STOPPED_EARLY_TAG, str(self._stopped_early(trial)).lower())
            self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))

    @_guarded
    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Tag the error (its exception line), keep the whole text as error.txt, log the best epoch and the timing
        so far, end FAILED.

        The best epoch and the timing rows stay kept: `search --resume` resumes errored trials.
        """
        ended = time.time()
        run_id, _ = self._child_run(trial, create=True)
        text = _trial_error_text(trial)
        try:
            self.client.set_tag(run_id, names.ERROR_TAG, _error_summary(text) if text else "unknown error")
            if text:
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "error.txt"
                    path.write_text(text)
                    self.client.log_artifact(run_id, str(path))
            last = getattr(trial, "last_result", None) or {}
            if str(trial.trial_id) in self._best:
                self._log_best_epoch(run_id, str(trial.trial_id), last)
            self._log_timing(run_id, str(trial.trial_id), last, ended)
        finally:
            self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))

    @_guarded
    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """The trials' outcomes (search/outcome.py) and best/<PRIMARY_METRIC> on the parent; every child closed.

        A child still RUNNING is closed by its trial's outcome: an ended trial (a --target/--plateau stop
        ends running trials without telling the callbacks) FINISHED with its best epoch logged, a failed
        one FAILED, an unfinished one (Ctrl-C, driver error) KILLED, like the parent then; a resume sets
        both RUNNING again. A child no Tune trial knows (a lost driver started it after Tune's last
        snapshot) is KILLED and tagged orphaned.
        """
        from search.outcome import COMPLETED, count, outcome_of

        parent_id = self._open_parent() if self.parent_run_id is None else self.parent_run_id
        outcomes = getattr(getattr(self, "outcomes", None), "trials", None)  # a tracker given no Outcomes decides alike
        if not outcomes:
            outcomes = {str(t.trial_id): outcome_of(t, self.max_epochs or 0, self.stopper) for t in trials}
        by_id = {str(getattr(t, "trial_id", "")): t for t in trials}
        children = search_runs(self.client, [self._experiment_id], child_filter(self.search_name))
        orphaned = 0
        for run in children:
            if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
                continue
            trial_id = run.data.tags.get(TRIAL_TAG)
            outcome = outcomes[trial_id].outcome if trial_id in outcomes else None
            if outcome in COMPLETED:
                self.on_trial_complete(0, trials, by_id[trial_id])
                continue
            if outcome is None:
                orphaned += 1
                self.client.set_tag(run.info.run_id, names.ORPHANED_TAG, "true")
            status = RunStatus.FAILED if outcome == "failed" else RunStatus.KILLED
            self.client.set_terminated(run.info.run_id, RunStatus.to_string(status))

        counts = count(outcomes)
        tags = {
            names.TRIALS_TAG: str(sum(n for k, n in counts.items() if k != "never_ran")),
            names.OUTCOMES_TAG: json.dumps(counts),
            **({names.ORPHANED_COUNT_TAG: str(orphaned)} if orphaned else {}),
        }
        best_value, best_run = None, None
        sign = 1.0 if PRIMARY_MODE == "max" else -1.0
        for run in sorted(children, key=lambda r: r.data.tags.get(TRIAL_TAG, "")):  # a tie: the smaller trial id
            values = [m.value for m in self.client.get_metric_history(run.info.run_id, PRIMARY_METRIC)]
            values = [v for v in values if v == v]  # NaN never wins
            if values:
                value = max(values, key=lambda v: sign * v)
                if best_value is None or sign * value > sign * best_value:
                    best_value, best_run = value, run
        metrics = []
        if best_value is not None:
            metrics.append(Metric(f"{BEST_PREFIX}{PRIMARY_METRIC}", best_value, int(time.time() * 1000), 0))
            tags[names.BEST_TRIAL_TAG] = best_run.data.tags.get(TRIAL_TAG, "")
            tags[names.BEST_RUN_TAG] = best_run.info.run_id
        self.client.log_batch(parent_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])
        self._mark_best(children, best_run)
        self.end_parent(interrupted=counts["unfinished"] > 0, stop_reason=self.stopper.reason if self.stopper else "")

    @_guarded
    def end_parent(self, interrupted: bool, stop_reason: str = "") -> None:
        """End the parent run as the search ended: KILLED when interrupted, else FINISHED; its stop reason tag."""
        if self.parent_run_id is None:
            return
        if stop_reason:
            self.client.set_tag(self.parent_run_id, STOP_TAG, stop_reason)
        elif STOP_TAG in self.client.get_run(self.parent_run_id).data.tags:
            self.client.delete_tag(self.parent_run_id, STOP_TAG)
        status = RunStatus.KILLED if interrupted else RunStatus.FINISHED
        self.client.set_terminated(self.parent_run_id, RunStatus.to_string(status))

    # ---- helpers ----------------------------------------------------------------------------------

    def _open_parent(self) -> str:
        self._experiment_id = open_experiment(self.experiment, self.tracking_uri)
        found = search_runs(self.client, [self._experiment_id], parent_filter(self.search_name))
        if found:
            parent = min(found, key=lambda run: run.info.start_time or 0)  # the first one, should a race make two
            self.client.update_run(parent.info.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            log.info("MLflow: search %s resumes parent run %s", self.search_name, parent.info.run_id)
            self.parent_run_id = parent.info.run_id
            return self.parent_run_id
        tags = {**self.parent_tags, SEARCH_TAG: self.search_name, ROLE_TAG: ROLE_PARENT}
        if getattr(self, "description", ""):
            tags[names.DESCRIPTION_TAG] = self.description
        parent = self.client.create_run(self._experiment_id, tags=tags, run_name=self.search_name)
        self.parent_run_id = parent.info.run_id
        baselines = getattr(self, "parent_metrics", {})
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in baseline_metrics(baselines).items()]
        space = getattr(self, "space", None)
        params = constant_params(space, self.constants) if space is not None else {}
        self.client.log_batch(self.parent_run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
        if baselines:
            with tempfile.TemporaryDirectory() as tmp:
                path = write_baseline_table(baselines, Path(tmp) / names.BASELINE_TABLE)
                self.client.log_artifact(self.parent_run_id, str(path))
        self._log_dataset(self.parent_run_id)
        log.info("MLflow: search %s -> parent run %s (%s)", self.search_name, self.parent_run_id, self.tracking_uri)
        return self.parent_run_id

    def _child_run(self, trial: Any, create: bool) -> tuple[str | None, bool]:
        """(run id, created now) of the trial's child run: cached, found by tags, or (create=True) created."""
        trial_id = str(trial.trial_id)
        if trial_id in self._children:
            return self._children[trial_id], False
        if self.parent_run_id is None:
            self._open_parent()
        found = search_runs(self.client, [self._experiment_id], child_filter(self.search_name, trial_id))
        if found:
            run_id = min(found, key=lambda run: run.info.start_time or 0).info.run_id
            self._children[trial_id] = run_id
            return run_id, False
        if not create:
            return None, False
        config = merge_lr(getattr(trial, "config", None) or {})
        run = self.client.create_run(self._experiment_id, run_name=_run_name(trial_id, config), tags={
            PARENT_RUN_TAG: self.parent_run_id, SEARCH_TAG: self.search_name, ROLE_TAG: ROLE_TRIAL, TRIAL_TAG: trial_id})
        self._children[trial_id] = run.info.run_id
        # Params once, at creation: logging a param again with another value raises in MLflow.
        space = getattr(self, "space", None)
        searched = searched_params(space) if space is not None else None
        params = [Param(key, value) for key, value in trial_params(config, searched).items()]
        for start in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(run.info.run_id, params=params[start:start + MAX_PARAMS_TAGS_PER_BATCH])
        self._log_dataset(run.info.run_id)
        return run.info.run_id, True

    def _log_dataset(self, run_id: str) -> None:
        dataset = getattr(self, "dataset", None)
        if dataset is not None:
            self.client.log_inputs(run_id, datasets=[_dataset_input(dataset)])

    def _keep_best(self, trial_id: str, step: int, result: dict) -> None:
        """Keep the epoch's per-label figures if its PRIMARY_METRIC beats the best so far (a tie keeps the first)."""
        value = result.get(PRIMARY_METRIC)
        if not is_number(value) or value != value:  # NaN never wins
            return
        kept = self._best.get(trial_id)
        sign = 1.0 if PRIMARY_MODE == "max" else -1.0
        if kept is None or sign * float(value) > sign * kept["value"]:
            self._best[trial_id] = {"epoch": step, "value": float(value), "figures": _label_figures(result)}

    def _log_best_epoch(self, run_id: str, trial_id: str, last: dict) -> None:
        """best/<PRIMARY_METRIC> and best_epoch (over the epochs the run holds), LABEL_TABLE (the per-label figures:
        no metrics), curves.png and confusion.png (best epoch)."""
        history = epoch_history(self.client, run_id)
        # A tracker that kept nothing (state lost): the last epoch's figures, labelled with their epoch.
        kept = self._best.get(trial_id) or {"epoch": last.get("training_iteration"), "figures": _label_figures(last)}
        figures, labels = kept["figures"], _labels(kept["figures"])
        now = int(time.time() * 1000)
        metrics = []
        best = best_row(history)
        if best is not None:
            metrics = [Metric(f"{BEST_PREFIX}{PRIMARY_METRIC}", best[PRIMARY_METRIC], now, 0),
                        Metric(BEST_EPOCH, float(best["epoch"]), now, 0)]
            if kept["epoch"] != best["epoch"]:
                log.info("MLflow: trial %s: per-label figures are from epoch %s, its best epoch %s was not kept",
                         trial_id, kept["epoch"], best["epoch"])
        self.client.log_batch(run_id, metrics=metrics)
        with tempfile.TemporaryDirectory() as tmp:
            if history:
                self.client.log_artifact(run_id, str(plots.plot_curves(history, Path(tmp) / "curves.png")))
            if labels:
                path = plots.plot_confusion_grid(figures, labels, Path(tmp) / "confusion.png", prefix="val")
                self.client.log_artifact(run_id, str(path))
                self.client.log_artifact(run_id, str(_write_label_table(figures, labels, kept["epoch"],
                                                                        Path(tmp) / LABEL_TABLE)))

    def _keep_timing(self, trial_id: str, step: int, result: dict) -> None:
        """Keep a trained epoch's timing row (replayed epochs have none); the start's first takes its placement."""
        if not is_number(result.get(timing.TRAIN)):
            return
        row = {key: result[key] for key in timing.COLUMNS if is_number(result.get(key))}
        row.setdefault("epoch", step)
        placement = self._placement.pop(trial_id, None)
        if placement is not None:
            row[timing.PLACEMENT] = placement
        self._timing.setdefault(trial_id, {})[int(row["epoch"])] = row  # a retrained epoch: its latest run

    def _log_timing(self, run_id: str, trial_id: str, last: dict, ended: float) -> None:
        """TIME_TABLE (one row per trained epoch), TIME_TRAIN_SHARE and TIME_EPOCH_MEDIAN, from the kept rows.

        The last row gets timing.FINISH (its report call until `ended`, when the driver saw the trial end) when it
        is the trial's last result (not an epoch replayed after it).
        """
        rows = [dict(row) for _, row in sorted(self._timing.get(trial_id, {}).items())]
        if not rows:
            return
        reported = last.get("reported_at")
        if is_number(reported) and reported == rows[-1].get("reported_at"):
            rows[-1][timing.FINISH] = max(0.0, ended - float(reported))  # the driver's clock, the worker's stamp
        summary = timing.summarise(rows)
        now = int(time.time() * 1000)
        figures = {TIME_TRAIN_SHARE: summary.train_share, TIME_EPOCH_MEDIAN: summary.epoch_s}
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in figures.items() if v is not None])
        with tempfile.TemporaryDirectory() as tmp:
            self.client.log_artifact(run_id, str(_write_time_table(rows, Path(tmp) / TIME_TABLE)))

    def _mark_best(self, children: list, best_run: Any) -> None:
        """Tag the best trial's run labeltune.best=true and start its name with BEST_MARK; unmark an earlier best."""
        for run in children:
            name = run.info.run_name or ""
            is_best = best_run is not None and run.info.run_id == best_run.info.run_id
            if is_best:
                self.client.set_tag(run.info.run_id, BEST_TAG, "true")
                if not name.startswith(BEST_MARK):
                    self.client.update_run(run.info.run_id, name=BEST_MARK + name)
            elif run.data.tags.get(BEST_TAG) == "true" or name.startswith(BEST_MARK):  # a resume found a better one
                if BEST_TAG in run.data.tags:
                    self.client.delete_tag(run.info.run_id, BEST_TAG)
                self.client.update_run(run.info.run_id, name=name.removeprefix(BEST_MARK))

    def _short(self, trial: Any) -> bool:
        epochs = (getattr(trial, "last_result", None) or {}).get("training_iteration")
        return self.max_epochs is not None and epochs is not None and int(epochs) < self.max_epochs

    def _ended_by_stop(self, trial: Any) -> bool:
        return self._short(trial) and self.stopper is not None and self.stopper.ended(str(trial.trial_id))

    def _stopped_early(self, trial: Any) -> bool:
        """Stopped by ASHA: fewer epochs than the budget, and not ended by --target / --plateau."""
        return self._short(trial) and not self._ended_by_stop(trial)


def _label_figures(result: dict) -> dict[str, float | int]:
    """The per-label figures of a result (`val/<PER_LABEL_METRICS>/<label>`) as plain numbers."""
    figures = {}
    for key, value in result.items():
        split, _, rest = key.partition("/")
        name, _, label = rest.partition("/")
        if split == "val" and name in PER_LABEL_METRICS and label and is_number(value):
            figures[key] = value.item() if hasattr(value, "item") else value  # numpy scalars: plain, for the state
    return figures


def _labels(figures: dict) -> list[str]:
    """The labels of `_label_figures` in the order the trial reported them."""
    return list(dict.fromkeys(key.split("/")[2] for key in figures))


def _write_label_table(figures: dict, labels: list[str], epoch: Any, path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "epoch", *PER_LABEL_METRICS])
        for label in labels:
            writer.writerow([label, epoch, *(figures.get(f"val/{m}/{label}", "") for m in PER_LABEL_METRICS)])
    return path


def _write_time_table(rows: list[dict], path: Path) -> Path:
    table = timing.table(rows)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    return path


def _run_name(trial_id: str, config: dict) -> str:
    """'<model>-<optimizer>-<trial id>' ('efficientnet_lite0-adamw-0ecb96b5'): the whole id, as the console prints it
    (search/progress.py, the summary's top trials); parts the config lacks are left out."""
    return "-".join(str(part) for part in (config.get("model"), config.get("optimizer"), trial_id) if part)


def _dataset_input(dataset: dict) -> DatasetInput:
    """The search's data as an MLflow dataset: name (digest) in the Dataset column, the counts in its profile.

    Digest `<fingerprint[:12]>-<n_images>`: a search with `--limit` uses fewer images of the same data version.
    """
    fingerprint = str(dataset["fingerprint"])
    digest = fingerprint[:12] + (f"-{dataset['n_images']}" if dataset.get("n_images") is not None else "")
    source = LocalArtifactDatasetSource(str(dataset["folder"]))
    profile = {key: dataset[key] for key in ("fingerprint", "n_images", "labels", "label_counts") if key in dataset}
    entity = Dataset(name=str(dataset.get("name") or Path(str(dataset["folder"])).name), digest=digest,
                     source_type=source._get_source_type(), source=source.to_json(),
                     profile=json.dumps(profile, default=int))
    return DatasetInput(entity, tags=[InputTag(MLFLOW_DATASET_CONTEXT, "train")])


def _trial_error_text(trial: Any) -> str:
    """The trial's error as Tune wrote it (error.txt in the trial folder), or '' when there is none."""
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        return Path(path).read_text(errors="replace")
    get_error = getattr(trial, "get_error", None)
    return str(get_error() or "") if get_error else ""


def _error_summary(text: str) -> str:
    """The exception line(s) of a traceback ('ValueError: boom'), else the first line; within the tag limit.

    Tune's error file holds 'Failure # N (occurred at ...)' headers and Ray's traceback, whose
    last unindented line after a 'File ...' frame is the exception; the latest failure wins.
    """
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Failure # ")]
    if not lines:
        return "unknown error"
    last_frame = max((i for i, line in enumerate(lines) if line.lstrip().startswith("File ")), default=None)
    if last_frame is not None:
        tail = [line for line in lines[last_frame + 1:] if not line.startswith((" ", "\t"))]
        if tail:
            return "\n".join(tail)[:MAX_TAG_VAL_LENGTH]
    return lines[0][:MAX_TAG_VAL_LENGTH]

