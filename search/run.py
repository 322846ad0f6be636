"""Start, resume and summarise a search: the life cycle around the Tuner.

    result = run_search(SearchOptions(data="d", space="quick", trials=8, epochs=3))
    result = resume_search("search-20261128-101500")

Both read as the same recipe: check the input, load the data once (the decode cache makes a
second search instant), start or join Ray and check the cluster can run the trials, take the
search's driver lock, then `_drive`: build the Tuner (search/tuner.py), run it, and `_finish`:
decide once how each trial ended (search/outcome.py) and write it to the record, the kept
study and the summary (the MLflow parent got the same from the tracker).

A search lives in `<storage>/<name>/` (default `$LABELTUNE_HOME/runs/<name>`): Tune's
state plus `labeltune_search.json`, the record of what it was started with (data
folder and fingerprint, split_seed, space and its fingerprint, budget, command line).
Resume and promote find a search by its name there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from search import memory
from search import space as spaces
from search.asha import rungs as asha_rungs
from search.cluster import cluster_has_gpu, init_ray, say_gpu_sharing, trial_slots
from search.options import SearchError, SearchOptions
from search.record import STUDY_FILE, SearchRecord, exists, search_dir
from search.tuner import build_tuner
from trainable import store
from trainable.config import PRIMARY_METRIC, PRIMARY_MODE
from trainable.models import pretrained_available
from trainable.trial_data import load_trial_data

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    name: str
    path: str
    best_config: dict
    best_metrics: dict
    top: list[dict] = field(default_factory=list)
    trials: int = 0
    errored: int = 0
    parent_run_id: str | None = None
    tracking_uri: str | None = None
    baselines: dict = field(default_factory=dict)
    """baseline/val/... and baseline/test/... of the search's split (trainable.baselines)"""
    baseline_rule: str = ""
    interrupted: bool = False
    """trials were left unfinished (Ctrl-C): `search --resume NAME` continues them"""
    stop_reason: str = ""
    """why the search ended before its budget (--target or --plateau), '' otherwise"""
    all_rows: list[dict] = field(default_factory=list)
    """every trial that reported, best first (top holds the first 5)"""
    stopped_early: int = 0
    """trials ASHA stopped before the last epoch"""
    ended_by_stop: int = 0
    """trials still running when --target or --plateau ended the search"""
    asha_rungs: list[int] = field(default_factory=list)
    """the epochs at which ASHA could stop a trial ([]: the budget left it none)"""
    counts: dict[str, int] = field(default_factory=dict)
    """trials per outcome (search/outcome.py), as the record, the study and the MLflow parent hold them"""
    stop_others: int = 0
    """running trials --target or --plateau ended, besides the one that reached the target"""
    already_finished: bool = False
    """a resume found the search finished: nothing ran, the summary is the recorded one"""

    def take_counts(self, counts: dict[str, int]) -> None:
        """Set `counts` and the figures the summary prints from them (search/outcome.py's tally)."""
        from search.outcome import started

        self.counts = counts
        self.trials, self.errored = started(counts), counts.get("failed", 0)
        self.stopped_early, self.ended_by_stop = counts.get("stopped_early", 0), counts.get("ended_by_stop", 0)


def git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def search_baselines(data, split_seed: int) -> tuple[str, dict]:
    """(what the micro-F1 baseline predicts, baseline figures of val and test) on the split every trial uses."""
    from trainable.baselines import BaselineError, for_splits
    from trainable.config import TrainConfig
    from trainable.data import split

    splits = dict(zip(("train", "val", "test"), split(len(data.targets), TrainConfig().split_fractions, split_seed)))
    try:
        base, figures = for_splits(data.targets, splits, data.labels)
    except BaselineError as exc:
        sizes = ", ".join(f"{name} {len(idx)}" for name, idx in splits.items())
        raise SearchError(f"{len(data.targets)} images split into {sizes}: {exc}") from exc
    return base.describe(), figures


def _callbacks(opts: SearchOptions, record: SearchRecord, trial_data) -> tuple[list, Any, Any, Any]:
    """(Tune callbacks, the MLflow tracker or None, the SearchStopper or None, the Outcomes)."""
    from search.hooks import driver_hooks
    from search.stopping import Outcomes
    from search.progress import LiveTable
    from search.pruning import CheckpointPruner

    callbacks: list = [CheckpointPruner(PRIMARY_METRIC, PRIMARY_MODE)]
    stopper = None
    if opts.target is not None or opts.plateau is not None:
        from search.stopping import SearchStopper

        stopper = SearchStopper(opts.target, opts.plateau)
        callbacks.append(stopper)
    outcomes = Outcomes(opts.epochs, stopper)
    callbacks.append(outcomes)  # before the tracker: it writes the outcomes to the parent run
    tracker = None
    if opts.track:
        from search.tracking.callback import MLflowTracker
        from search.tracking.columns import search_description
        from search.tracking.names import GIT_COMMIT_TAG

        # What the record says goes in the parent's params (constants) and description, not in tags: MLflow's
        # runs table makes a column of every tag.
        tracker = MLflowTracker(
            store.tracking_uri(opts.tracking_uri), record.name,
            parent_tags={GIT_COMMIT_TAG: record.git_commit} if record.git_commit else {},
            description=search_description(record), space=record.space,
            constants={"data": record.data, **record.constants}, max_epochs=opts.epochs,
            parent_metrics=record.baselines, dataset=record_dataset(record, trial_data), stopper=stopper,
            outcomes=outcomes)
        callbacks.append(tracker)
    if opts.verbose:
        callbacks.append(LiveTable(max_epochs=opts.epochs, trials=opts.trials))
    return callbacks + driver_hooks(), tracker, stopper, outcomes


def warm_start_sources(names: str, storage: str | None, labels: list[str], fingerprint: str) -> list:
    """(SearchRecord, folder) of each --warm-start search, refused in one line when it cannot seed this one."""
    from search.record import load_kept_study

    sources = []
    for name in dict.fromkeys(n.strip() for n in names.split(",") if n.strip()):  # a name given twice counts once
        path = search_dir(name, storage)
        if not exists(path):
            raise SearchError(f"--warm-start {name}: no search named {name} in {path.parent}")
        record = SearchRecord.read(path)
        if not (path / STUDY_FILE).is_file():
            raise SearchError(f"--warm-start {name}: it kept no Optuna study ({path / STUDY_FILE}): it ran "
                              f"before searches kept theirs, so it cannot seed another")
        if list(record.labels) != list(labels):
            only_there, only_here = sorted(set(record.labels) - set(labels)), sorted(set(labels) - set(record.labels))
            raise SearchError(f"--warm-start {name}: its labels are not the data's "
                              f"(only there: {', '.join(only_there) or '-'}; only here: {', '.join(only_here) or '-'}"
                              f"{'; same labels in another order' if not only_there and not only_here else ''})")
        if record.data_fingerprint != fingerprint:
            log.warning("--warm-start %s: it searched other data (%s); its scores guide TPE but are not this "
                        "data's", name, record.data)
        try:  # read now, before Ray starts and before anything of the new search is written
            load_kept_study(path, name)
        except SearchError as exc:
            raise SearchError(f"--warm-start {name}: {exc}") from None
        sources.append((record, path))
    if not sources:
        raise SearchError(f"--warm-start {names!r}: name at least one earlier search")
    return sources


def describe_warm_start(source: str, counts: dict[str, int]) -> str:
    """'warm start: 4 trials of s1 in the study (2 outside this space, 1 already there from another source)'."""
    notes = [f"{counts[key]} {text}" for key, text in (("skipped", "outside this space"),
                                                        ("duplicates", "already there from another source"))
             if counts.get(key)]
    return (f"warm start: {counts['added']} trials of {source} in the study"
            + (f" ({', '.join(notes)})" if notes else ""))


def record_dataset(record: SearchRecord, trial_data) -> dict:
    """What the MLflow runs' dataset input says about the images the trials use (after --limit)."""
    counts = trial_data.targets.sum(axis=0)
    return {"name": Path(record.data).name, "folder": record.data, "fingerprint": record.data_fingerprint,
            "n_images": int(len(trial_data.targets)), "labels": list(record.labels),
            "label_counts": {label: int(c) for label, c in zip(record.labels, counts)}}


def _check_tracking(opts: SearchOptions) -> None:
    if opts.track:
        from search.tracking.runs import TrackingUnavailable, check_store

        try:
            check_store(store.tracking_uri(opts.tracking_uri))
        except TrackingUnavailable as exc:
            raise SearchError(f"{exc}, or run with --no-track")


def run_search(opts: SearchOptions, say: Callable[[str], None] = log.info) -> SearchResult:
    """Start a new search and run it to the end. `say`: where the driver's progress lines go (the CLI echoes)."""
    opts.validate()
    name = opts.name if opts.name is not None else time.strftime("search-%Y%m%d-%H%M%S")
    space = spaces.load_space(opts.space)
    path = search_dir(name, opts.storage)
    if exists(path):
        raise SearchError(f"a search named {name} already exists in {path.parent}; use --resume {name} or another --name")
    _check_tracking(opts)
    fits = functools.partial(memory.check_search, space=space, address=opts.address, concurrency=opts.concurrency,
                             cpus_per_trial=opts.cpus_per_trial, trials=opts.trials)
    dataset, data = load_trial_data(opts.data, opts.limit, opts.skip_bad_images, check=fits,
                                    form=memory.shipped_form(space))
    constants = {"epochs": opts.epochs, "split_seed": opts.split_seed, "seed": opts.seed}
    record = SearchRecord(
        name=name, storage=str(path.parent), data=str(Path(opts.data).resolve()),
        data_fingerprint=dataset.fingerprint, labels=dataset.labels, n_images=len(data.targets),
        split_seed=opts.split_seed, space_source=opts.space, space=space,
        space_fingerprint=spaces.fingerprint(space, constants), constants=constants,
        pretrained_models=list(pretrained_available()), options=dataclasses.asdict(opts),
        command=" ".join(["labeltune", *sys.argv[1:]]) if sys.argv else "", git_commit=git_commit(),
        host=socket.gethostname(), driver_pid=os.getpid(), started=time.strftime("%Y-%m-%dT%H:%M:%S"),
        tracking_uri=store.tracking_uri(opts.tracking_uri) if opts.track else None,
    )
    record.baseline_rule, record.baselines = search_baselines(data, opts.split_seed)
    sources = warm_start_sources(opts.warm_start, opts.storage, dataset.labels, dataset.fingerprint) \
        if opts.warm_start else []
    record.ray_session = init_ray(opts.address, data.images.nbytes)
    trial_slots(spaces.choices(space["model"]), opts.gpus_per_trial, opts.cpus_per_trial, cluster_has_gpu())  # or refuse
    say_gpu_sharing(say)
    with driver_lock(path, record):
        if sources:
            from search.study import warm_start

            record.warm_start = warm_start(record.path, name, sources, space)
            for source, counts in record.warm_start.items():
                say(describe_warm_start(source, counts))
        record.write()
        return _drive(opts, record, data, say=say)


def resume_search(name: str, address: str | None = None, tracking_uri: str | None = None,
                  storage: str | None = None, space: str | None = None, verbose: bool = True,
                  say: Callable[[str], None] = log.info) -> SearchResult:
    """Continue an interrupted search: unfinished and errored trials resume, finished ones are kept.

    A finished search (its budget, --target or --plateau) is not run again: its recorded summary is
    returned (`already_finished`), without Ray. A search whose driver is alive is refused.
    """
    path = search_dir(name, storage)
    record = SearchRecord.read(path)
    refuse_running(record)
    if record.status == "finished":
        from search.study import repair_stopped

        repair_stopped(path, record.name)  # a --target/--plateau stop of an older labeltune left trials RUNNING
        return recorded_summary(record)
    opts = SearchOptions(**{**record.options, "verbose": verbose})
    if tracking_uri:
        opts.tracking_uri = tracking_uri
    if address:
        opts.address = address
    # The recorded space, not the preset re-read by name: editing a preset must not strand a search.
    now_space = spaces.load_space(space) if space else record.space
    if spaces.fingerprint(now_space, record.constants) != record.space_fingerprint:
        raise SearchError(
            f"the search space of {name} changed since it started ({record.space_source}); Optuna cannot "
            f"change a study's choices: start a new search instead"
        )
    _check_tracking(opts)
    from search.record import load_kept_study

    if (path / STUDY_FILE).is_file():  # a damaged study is refused now, before Ray starts
        load_kept_study(path, record.name, "the search's trials are in Tune's state and MLflow, but it cannot resume")
    with driver_lock(path, record):
        end_leftovers_of(record, say)
        fits = functools.partial(memory.check_search, space=record.space, address=opts.address,
                                 concurrency=opts.concurrency, cpus_per_trial=opts.cpus_per_trial, trials=opts.trials)
        dataset, data = load_trial_data(record.data, opts.limit, opts.skip_bad_images, check=fits,
                                        form=memory.shipped_form(record.space))
        if dataset.fingerprint != record.data_fingerprint:
            raise SearchError(
                f"the data in {record.data} changed since {name} started (fingerprint {dataset.fingerprint[:12]} "
                f"!= {record.data_fingerprint[:12]}); its trials would not compare: start a new search"
            )
        record.ray_session = init_ray(opts.address, data.images.nbytes)
        # The cluster may have changed since the start: refuse trials no node can run, as a new search does.
        trial_slots(spaces.choices(record.space["model"]), opts.gpus_per_trial, opts.cpus_per_trial, cluster_has_gpu())
        say_gpu_sharing(say)
        record.status, record.resumed, record.driver_pid = "running", record.resumed + 1, os.getpid()
        record.host = socket.gethostname()
        record.storage = str(path.parent)  # where it was found now (a moved --storage)
        record.write()
        # Optuna trials the killed driver created after Tune's last snapshot will never finish: FAIL them first.
        from search.catalog import tune_trial_ids
        from search.study import fail_zombies, finished_trial_ids

        fail_zombies(path, record.name, tune_trial_ids(path) or set())
        return _drive(opts, record, data, restore=True, finished=frozenset(finished_trial_ids(path, record.name)),
                      say=say)


def refuse_running(record: SearchRecord) -> None:
    """A SearchError naming the driver when the search's record says running and that driver is alive."""
    from search.catalog import _driver_alive

    if record.status == "running" and _driver_alive(record):
        raise SearchError(f"search {record.name} is running: its driver, pid {record.driver_pid} on {record.host}, "
                          f"is alive; wait for it to end, or stop it (kill -INT {record.driver_pid}) and resume then")


@contextlib.contextmanager
def driver_lock(path: Path, record: SearchRecord):
    """Hold `<search>/.driver.lock` while this driver runs the search: a second driver is refused at once.

    An flock ends with its process, so a killed driver never leaves a stale lock.
    """
    import fcntl

    Path(path).mkdir(parents=True, exist_ok=True)
    handle = open(Path(path) / ".driver.lock", "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SearchError(f"search {record.name} is running: another driver holds {Path(path) / '.driver.lock'} "
                              f"(pid {record.driver_pid} on {record.host} by its record); wait for it to end, or stop it "
                              f"and resume then") from None
        yield
    finally:
        handle.close()


def end_leftovers_of(record: SearchRecord, say: Callable[[str], None]) -> None:
    """End the processes of the local Ray a killed driver of this search started (search/leftovers.py), and say so."""
    if not record.ray_session:
        return
    from search import leftovers

    if leftovers.driver_alive(record.ray_session):
        return  # refuse_running and the lock said it is not running; its pid is another process now
    ended = leftovers.end_leftovers(leftovers.find_leftovers(record.ray_session))
    if ended:
        say(leftovers.describe(ended, ended=True))


def _drive(opts: SearchOptions, record: SearchRecord, data, restore: bool = False,
           finished: frozenset[str] = frozenset(), say: Callable[[str], None] = log.info) -> SearchResult:
    """Run the Tuner (a new one, or Tune's saved state restored) until the search ends; then `_finish`."""
    callbacks, tracker, stopper, outcomes = _callbacks(opts, record, data)
    if tracker is not None and tracker.start():  # the links before the first trial: the UI shows runs as they go
        _say_links(tracker.tracking_uri, record.name, say)
    tuner = build_tuner(opts, record, data, callbacks, restore_path=record.path if restore else None, stop=stopper,
                        finished=finished)
    started = time.time()
    return _finish(tuner.fit(), record, tracker, stopper, outcomes, started)


def _say_links(tracking_uri: str, name: str, say: Callable[[str], None]) -> None:
    """The MLflow UI's links to the search (search.tracking.runs.search_links); a store that fails is a warning."""
    try:
        from search.tracking.runs import search_links

        for line in search_links(tracking_uri, name):
            say(line)
    except Exception as exc:  # noqa: BLE001 - tracking is best effort; the search goes on
        log.warning("MLflow links of search %s: %s: %s", name, type(exc).__name__, exc)


def _finish(results, record: SearchRecord, tracker, stopper, outcomes, started: float) -> SearchResult:
    """Decide how the search ended, once, and write it to the record, the kept study and the summary.

    The MLflow parent run got the same outcomes from the tracker, which read them at the experiment's end.
    """
    summary = summarize(results)
    options = record.options
    summary.asha_rungs = asha_rungs(options.get("epochs", 0), options.get("grace_period", 1))
    counts = outcomes.counts()
    summary.take_counts(counts)
    summary.stop_reason = stopper.reason if stopper is not None else ""
    summary.stop_others = sum(1 for o in outcomes.trials.values()
                              if o.outcome == "ended_by_stop" and o.trial_id != getattr(stopper, "trigger", ""))
    # Tune returns normally after Ctrl-C (it saves its state first). Interrupted: a trial neither ended nor failed,
    # or fewer trials than asked for while no stopper fired and the time budget (if any) was not used up.
    budget_s = (options.get("time_budget_min") or 0) * 60
    short = len(outcomes.trials) < options.get("trials", 0) and (not budget_s or time.time() - started < budget_s)
    summary.interrupted = not summary.stop_reason and (counts["unfinished"] > 0 or short)
    record.status = "interrupted" if summary.interrupted else "finished"
    record.finished, record.trials_done, record.counts = time.strftime("%Y-%m-%dT%H:%M:%S"), summary.trials, counts
    record.best = summary.best_metrics.get(PRIMARY_METRIC)
    record.best_trial = summary.top[0]["trial_id"] if summary.top else ""
    record.stop_reason = summary.stop_reason
    record.wall_s += time.time() - started
    record.write()
    try:
        from search.study import settle

        settle(record.path, record.name, outcomes.trials, final=not summary.interrupted)
    except Exception as exc:  # noqa: BLE001  (the study is a record of the search, never a failed search)
        log.warning("the kept study %s could not be brought up to date: %s: %s", record.path / STUDY_FILE,
                    type(exc).__name__, exc)
    summary.name, summary.path = record.name, str(record.path)
    summary.baselines, summary.baseline_rule = record.baselines, record.baseline_rule
    if tracker is not None:
        _finish_tracking(tracker, record, summary)
    return summary


def _finish_tracking(tracker, record: SearchRecord, summary: SearchResult) -> None:
    summary.parent_run_id, summary.tracking_uri = tracker.parent_run_id, tracker.tracking_uri
    if not tracker.parent_run_id:
        return
    tracker.end_parent(summary.interrupted, summary.stop_reason)  # the record's verdict, should the two differ
    try:  # importance, history, budget: an extra on the parent run, never a failed search
        from search.tracking.report import log_to_run

        log_to_run(tracker.client, tracker.parent_run_id, record.path)
    except Exception as exc:  # noqa: BLE001
        log.warning("the search report for parent run %s failed: %s: %s (labeltune report %s retries it)",
                    tracker.parent_run_id, type(exc).__name__, exc, record.name)


def recorded_summary(record: SearchRecord) -> SearchResult:
    """The summary of a finished search from its files (Tune's results, the record), without Ray."""
    from ray.tune import ExperimentAnalysis, ResultGrid

    grid = ResultGrid(ExperimentAnalysis(str(record.path), default_metric=PRIMARY_METRIC, default_mode=PRIMARY_MODE))
    summary = summarize(grid)
    counts = record.counts or {}
    summary.name, summary.path, summary.already_finished = record.name, str(record.path), True
    summary.baselines, summary.baseline_rule = record.baselines, record.baseline_rule
    summary.asha_rungs = asha_rungs(record.options.get("epochs", 0), record.options.get("grace_period", 1))
    summary.stop_reason = record.stop_reason
    if counts:  # a record from before outcomes were kept has none: summarize()'s figures stay
        summary.take_counts(counts)
    summary.tracking_uri = record.tracking_uri
    return summary


def summarize(results) -> SearchResult:
    """Best trial over all its epochs (not the last epoch of ASHA-stopped trials) and the top 5.

    Ranked as every store ranks (search.outcome.rank_key: on a tie, the smaller trial id).
    """
    from search.outcome import rank_key

    rows = []
    errored = 0
    for result in results:
        if result.error is not None:
            errored += 1
        if result.metrics_dataframe is None or PRIMARY_METRIC not in result.metrics_dataframe:
            continue
        frame = result.metrics_dataframe
        best_row = frame.loc[frame[PRIMARY_METRIC].idxmax()]
        rows.append({
            "trial_id": result.metrics.get("trial_id", Path(result.path).name),
            PRIMARY_METRIC: float(best_row[PRIMARY_METRIC]), "best_epoch": int(best_row["training_iteration"]),
            "epochs": int(frame["training_iteration"].max()), "config": result.config, "path": result.path,
        })
    rows.sort(key=lambda r: rank_key(r[PRIMARY_METRIC], r["trial_id"]))
    if not rows:
        return SearchResult("", "", {}, {}, [], len(results), errored)
    best = next(result for result in results if result.path == rows[0]["path"])
    frame = best.metrics_dataframe
    best_metrics = frame.loc[frame[PRIMARY_METRIC].idxmax()].to_dict()
    return SearchResult("", "", best.config, best_metrics, rows[:5], len(results), errored, all_rows=rows)
