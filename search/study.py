"""The Optuna study a search keeps: `<search folder>/optuna.db`, study name = search name.

    storage = study_storage(record.path)            # an RDBStorage on the search's own sqlite file
    optuna.load_study(study_name=record.name, storage=study_url(record.path))

OptunaSearch keeps its study in memory unless it is given a storage; with this one the
study outlives the search (optuna-dashboard, `optuna.load_study`, importance) and a
resume reopens it (Tune pickles the searcher with the storage's URL). It is its own
sqlite file, never MLflow's database: both would claim the `alembic_version` table.

Each Optuna trial carries its Tune trial id (user attribute `tune_trial_id`); a trial ASHA
stopped also carries the epoch it stopped at (STOPPED_AT_ATTR), set just before Optuna is told,
so optuna-dashboard and `optuna.load_study` can tell it from a finished one (whose value comes
from the last epoch). How the sampler is told (COMPLETE, or PRUNED with `pruned_below`) does not
change. States and values agree with the report's outcomes (search/outcome.py): completed
trials hold their last epoch's score, failed and never-run ones FAIL, unfinished ones RUNNING. A driver
killed between Optuna's write and Tune's snapshot leaves Optuna trials RUNNING that no
resumed search will ever finish; `fail_zombies` marks them FAIL before the resume, so
neither TPE nor the dashboard counts them. One that finished before the kill stays
COMPLETE (Optuna cannot change a finished trial): its result is real, only Tune lost it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ray.tune.search.optuna import OptunaSearch

from search.record import (  # noqa: F401  (re-exported)
    STUDY_FILE, TUNE_TRIAL_ATTR, WARM_FROM, WARM_ORIGIN, load_kept_study, study_url)

log = logging.getLogger(__name__)

STOPPED_AT_ATTR = "stopped_at_epoch"
"""user attribute of an Optuna trial ASHA stopped: the last epoch it trained"""


def study_storage(search_path: Path):
    """An RDBStorage on the search folder's sqlite file (created on first use)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in RDB" on the console
    Path(search_path).mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(study_url(search_path))


class KeptOptunaSearch(OptunaSearch):
    """OptunaSearch that labels each Optuna trial with the Tune trial it became.

    `max_epochs`: the epochs a trial trains when nothing stops it (default: the `epochs` constant of a
    search.space.make_define_by_run space); a trial that ends without error before it carries
    STOPPED_AT_ATTR. `pruned_below=N`: a trial that ends (without error) before epoch N, stopped by ASHA, is told to
    Optuna as PRUNED, its intermediate values kept; TPE then ranks it below every finished trial,
    pruned ones by how far they got (Optuna's own model of pruning). Without it, as OptunaSearch
    does, it is COMPLETE with its last score. bench/search_efficiency.py's tpe_pruned arm measures it:
    no measurable change on 5 seeds (2026-12-01, README "Levers"), so searches keep OptunaSearch's rule.
    """

    def __init__(self, *args, pruned_below: int | None = None, max_epochs: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pruned_below = pruned_below
        self.max_epochs = max_epochs if max_epochs is not None else planned_epochs(kwargs.get("space"))
        self._finished_before: set[int] | None = None

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self._finished_before = None  # a new driver reads the study again

    # ---- Ray 2.60's OptunaSearch keeps its state in private attributes; these read them, nothing else does ----

    def optuna_trial(self, trial_id: str):
        """The Optuna trial (ask-and-tell `optuna.Trial`) of a Tune trial, or None (Ray 2.60: `_ot_trials`)."""
        return self._ot_trials.get(trial_id)

    def optuna_study(self):
        """The searcher's Optuna study (Ray 2.60: `_ot_study`)."""
        return self._ot_study

    def completed(self) -> set[str]:
        """The Tune trial ids the searcher has told Optuna about, as OptunaSearch marks them (Ray 2.60:
        `_completed_trials`; a trial in it is never told again)."""
        return self._completed_trials

    # ---- hooks ----------------------------------------------------------------------------------------------

    def _told_before(self, trial_id: str) -> bool:
        """Whether the study holds this trial as finished although Tune runs it: a driver lost between Optuna's
        tell and Tune's snapshot. Its replay (trainable/trial.py) must not be told again. Reads the study once."""
        trial = self.optuna_trial(trial_id)
        if trial is None:
            return False
        if getattr(self, "_finished_before", None) is None:
            trials = self.optuna_study().get_trials(deepcopy=False)
            self._finished_before = {t.number for t in trials if t.state.is_finished()}
        return trial.number in self._finished_before

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if not self._told_before(trial_id):
            super().on_trial_result(trial_id, result)

    def suggest(self, trial_id: str):
        new = self.optuna_trial(trial_id) is None
        config = super().suggest(trial_id)
        if new and self.optuna_trial(trial_id) is not None:
            self.optuna_trial(trial_id).set_user_attr(TUNE_TRIAL_ATTR, trial_id)
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if self._told_before(trial_id):
            self.completed().add(trial_id)
            return
        epochs = (result or {}).get("training_iteration")
        self._mark_stopped(trial_id, epochs, error)
        if (self.pruned_below is None or error or epochs is None or int(epochs) >= self.pruned_below
                or self.optuna_trial(trial_id) is None or trial_id in self.completed()):
            return super().on_trial_complete(trial_id, result, error)
        from optuna.trial import TrialState

        try:
            self.optuna_study().tell(self.optuna_trial(trial_id), state=TrialState.PRUNED)
        except Exception as exc:  # noqa: BLE001  (as OptunaSearch: a refused tell is a warning, not a dead search)
            log.warning("Optuna refused trial %s as PRUNED: %s", trial_id, exc)
        self.completed().add(trial_id)

    def _mark_stopped(self, trial_id: str, epochs, error: bool) -> None:
        """Set STOPPED_AT_ATTR on the Optuna trial of a Tune trial that ended without error before max_epochs
        (ASHA stopped it: a --target/--plateau stop ends trials without telling the searcher). Before the tell:
        Optuna refuses attributes on a finished trial."""
        max_epochs = getattr(self, "max_epochs", None)  # None in a searcher pickled before it existed
        trial = self.optuna_trial(trial_id)
        if error or epochs is None or max_epochs is None or int(epochs) >= max_epochs or trial is None \
                or trial_id in self.completed():
            return
        try:
            trial.set_user_attr(STOPPED_AT_ATTR, int(epochs))
        except Exception as exc:  # noqa: BLE001  (a mark for the dashboard, never a dead search)
            log.warning("Optuna refused the %s mark on trial %s: %s", STOPPED_AT_ATTR, trial_id, exc)


def planned_epochs(space) -> int | None:
    """The `epochs` constant a define-by-run space of search.space.make_define_by_run (a functools.partial)
    was bound with; None for any other space."""
    epochs = (getattr(space, "keywords", None) or {}).get("constants", {}).get("epochs")
    return int(epochs) if isinstance(epochs, int) else None


def storage_id(trial) -> int:
    """A FrozenTrial's id in its storage, which the storage's setters take (Optuna 5.0: the private `_trial_id`;
    FrozenTrial has no public one). tests/test_structure.py fails, naming this function, if it goes away."""
    return trial._trial_id


def fail_zombies(search_path: Path, study_name: str, known_trial_ids: set[str]) -> int:
    """Mark FAIL the RUNNING trials of the kept study that Tune's saved state does not know; return how many."""
    import optuna
    from optuna.trial import TrialState

    if not (Path(search_path) / STUDY_FILE).is_file():
        return 0  # a search started before the study was kept
    storage = study_storage(search_path)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return 0
    zombies = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
               if t.user_attrs.get(TUNE_TRIAL_ATTR) not in known_trial_ids]
    for trial in zombies:
        storage.set_trial_state_values(storage_id(trial), TrialState.FAIL)
    if zombies:
        log.info("marked %d Optuna trials FAIL that the killed driver started after Tune's last snapshot", len(zombies))
    return len(zombies)




def _origin(trial, source: str) -> tuple:
    """Where a finished trial first ran: (search, number); a warm-start copy keeps its original's."""
    if WARM_ORIGIN in trial.user_attrs:
        return tuple(trial.user_attrs[WARM_ORIGIN])
    if WARM_FROM in trial.user_attrs:  # a copy made before copies carried their origin
        return (trial.user_attrs[WARM_FROM], json.dumps(trial.params, sort_keys=True), trial.value)
    return (source, trial.number)


def warm_start(search_path: Path, study_name: str, sources: list, space: dict) -> dict[str, dict[str, int]]:
    """Add the finished trials of earlier searches to this search's study before its first suggestion.

    `sources`: (SearchRecord, folder) of each earlier search, already checked (same labels, readable
    study, no name twice). A trial is added when every parameter it was given is a searchable value of
    `space`, or a value the space fixes (dropped: the study does not search it). It goes in with this
    space's distributions, so TPE reads old and new trials alike, and never twice: a trial that is
    already in the study by its origin (a copy in another source, a start that failed after seeding)
    is not added again. The seeding is atomic: the study file is replaced only once every source is in.
    Returns {source: {"added": its trials in the study, "skipped": outside the space, "duplicates": n}}.
    """
    import shutil

    import optuna
    from optuna.trial import TrialState, create_trial

    from search import space as spaces
    from trainable.metrics import PRIMARY_MODE

    study_file = Path(search_path) / STUDY_FILE
    seeding = study_file.with_name(f".{STUDY_FILE}.seeding")
    study_file.parent.mkdir(parents=True, exist_ok=True)
    if study_file.exists():
        shutil.copy2(study_file, seeding)
    summary: dict[str, dict[str, int]] = {}
    try:
        storage = optuna.storages.RDBStorage(f"sqlite:///{seeding.resolve()}")
        study = optuna.create_study(study_name=study_name, storage=storage, load_if_exists=True,
                                    direction="maximize" if PRIMARY_MODE == "max" else "minimize")
        present = {_origin(t, study_name) for t in study.get_trials(deepcopy=False) if WARM_FROM in t.user_attrs}
        for record, folder in sources:
            new, skipped, duplicates = [], 0, 0
            for t in load_kept_study(folder, record.name).get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                params = spaces.warm_params(space, t.params)
                origin = _origin(t, record.name)
                if params is None:
                    skipped += 1
                elif origin in present:
                    duplicates += 1
                else:
                    present.add(origin)
                    new.append(create_trial(
                        params=params, value=t.value, distributions={k: spaces.distribution(space[k]) for k in params},
                        user_attrs={**t.user_attrs, WARM_FROM: record.name, WARM_ORIGIN: list(origin)}))
            study.add_trials(new)
            summary[record.name] = {"added": 0, "skipped": skipped, "duplicates": duplicates}
        for t in study.get_trials(deepcopy=False):
            if t.user_attrs.get(WARM_FROM) in summary:
                summary[t.user_attrs[WARM_FROM]]["added"] += 1
        storage.engine.dispose()
        os.replace(seeding, study_file)
    finally:
        seeding.unlink(missing_ok=True)
    return summary


def settle(search_path: Path, study_name: str, outcomes: dict, final: bool) -> None:
    """Make the kept study say what search/outcome.py decided, for every trial of this search.

    The outcomes and best-epoch scores go into the study's user attribute OUTCOMES_ATTR (Optuna
    refuses attributes on a finished trial), keyed by Tune trial id and merged over resumes. A trial
    still RUNNING in Optuna that Tune ended (a --target/--plateau stop ends running trials without
    telling the searcher) is told COMPLETE with its last epoch's score, as OptunaSearch tells a
    finished one; a failed or never-run one FAIL. Unfinished trials stay RUNNING: a resume continues
    them. `final` (the search is over): a WAITING trial (a queued recipe that never ran) is marked FAIL.
    """
    import optuna
    from optuna.trial import TrialState

    from search.outcome import COMPLETED, OUTCOMES_ATTR

    if not (Path(search_path) / STUDY_FILE).is_file():
        return  # a search started before the study was kept
    storage = study_storage(search_path)
    study = optuna.load_study(study_name=study_name, storage=storage)
    study.set_user_attr(OUTCOMES_ATTR, {**study.user_attrs.get(OUTCOMES_ATTR, {}),
                                        **{trial_id: {"outcome": item.outcome, "best": item.best}
                                           for trial_id, item in outcomes.items()}})
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        item = outcomes.get(trial.user_attrs.get(TUNE_TRIAL_ATTR))
        if item is None:
            if final and trial.state == TrialState.WAITING:
                storage.set_trial_state_values(storage_id(trial), TrialState.FAIL)
        elif item.outcome in COMPLETED and item.last is not None:
            storage.set_trial_state_values(storage_id(trial), TrialState.COMPLETE, [item.last])
        elif item.outcome != "unfinished":
            storage.set_trial_state_values(storage_id(trial), TrialState.FAIL)


def kept_outcomes(search_path: Path, study_name: str) -> dict[str, dict]:
    """Tune trial id -> {"outcome", "best"} as `settle` kept them in the study ({} for a study without them)."""
    from search.outcome import OUTCOMES_ATTR

    if not (Path(search_path) / STUDY_FILE).is_file():
        return {}
    return dict(load_kept_study(search_path, study_name).user_attrs.get(OUTCOMES_ATTR, {}))


def finished_trial_ids(search_path: Path, study_name: str) -> set[str]:
    """Tune trial ids of this search's trials the kept study holds as COMPLETE (or PRUNED): they must not train
    again. A FAIL trial is not among them: a resume retries errored trials, as Tune's resume_errored does."""
    from optuna.trial import TrialState

    if not (Path(search_path) / STUDY_FILE).is_file():
        return set()
    trials = load_kept_study(search_path, study_name).get_trials(deepcopy=False)
    return {t.user_attrs[TUNE_TRIAL_ATTR] for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            and TUNE_TRIAL_ATTR in t.user_attrs and WARM_FROM not in t.user_attrs}


def study_holds(search_path: Path, study_name: str, point: dict) -> bool:
    """Whether the kept study already holds a finished trial with the values of `point` (a recipe)."""
    from optuna.trial import TrialState

    if not (Path(search_path) / STUDY_FILE).is_file():
        return False
    trials = load_kept_study(search_path, study_name).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return any(all(t.params.get(k) == v for k, v in point.items()) for t in trials)


def repair_stopped(search_path: Path, study_name: str) -> int:
    """Settle the RUNNING trials an older labeltune's --target/--plateau stop left in a finished search's study.

    From the trials' own results (Tune's result.json): a trial that reported is COMPLETE with its last
    score, one that did not is FAIL. Returns how many were repaired.
    """
    from optuna.trial import TrialState

    from search.catalog import trial_results
    from trainable.metrics import PRIMARY_METRIC

    if not (Path(search_path) / STUDY_FILE).is_file():
        return 0
    running = load_kept_study(search_path, study_name).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return 0
    results = trial_results(Path(search_path))
    storage = study_storage(search_path)
    for trial in running:
        rows = [r for r in results.get(f"trial_{trial.user_attrs.get(TUNE_TRIAL_ATTR)}", []) if PRIMARY_METRIC in r]
        if rows:
            storage.set_trial_state_values(storage_id(trial), TrialState.COMPLETE, [rows[-1][PRIMARY_METRIC]])
        else:
            storage.set_trial_state_values(storage_id(trial), TrialState.FAIL)
    log.info("settled %d Optuna trials an earlier stop of %s left RUNNING", len(running), study_name)
    return len(running)
