"""The Optuna study a search keeps: `<search folder>/optuna.db`, study name = search name.

    storage = study_storage(record.path)            # an RDBStorage on the search's own sqlite file
    optuna.load_study(study_name=record.name, storage=study_url(record.path))

OptunaSearch keeps its study in memory unless it is given a storage; with this one the
study outlives the search (optuna-dashboard, `optuna.load_study`, importance) and a
resume reopens it (Tune pickles the searcher with the storage's URL). It is its own
sqlite file, never MLflow's database: both would claim the `alembic_version` table.

Each Optuna trial carries its Tune trial id (user attribute `tune_trial_id`). A driver
killed between Optuna's write and Tune's snapshot leaves Optuna trials RUNNING that no
resumed search will ever finish; `fail_zombies` marks them FAIL before the resume, so
neither TPE nor the dashboard counts them. One that finished before the kill stays
COMPLETE (Optuna cannot change a finished trial): its result is real, only Tune lost it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ray.tune.search.optuna import OptunaSearch

from search.record import STUDY_FILE, TUNE_TRIAL_ATTR, study_url  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

def study_storage(search_path: Path):
    """An RDBStorage on the search folder's sqlite file (created on first use)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in RDB" on the console
    Path(search_path).mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(study_url(search_path))


class KeptOptunaSearch(OptunaSearch):
    """OptunaSearch that labels each Optuna trial with the Tune trial it became.

    `pruned_below=N`: a trial that ends (without error) before epoch N, stopped by ASHA, is told to
    Optuna as PRUNED, its intermediate values kept; TPE then ranks it below every finished trial,
    pruned ones by how far they got (Optuna's own model of pruning). Without it, as OptunaSearch
    does, it is COMPLETE with its last score. bench/search_efficiency.py's tpe_pruned arm measures it:
    no measurable change on 5 seeds (2026-12-01, README "Levers"), so searches keep OptunaSearch's rule.
    """

    def __init__(self, *args, pruned_below: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pruned_below = pruned_below

    def suggest(self, trial_id: str):
        new = trial_id not in self._ot_trials
        config = super().suggest(trial_id)
        if new and trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr(TUNE_TRIAL_ATTR, trial_id)
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        epochs = (result or {}).get("training_iteration")
        if (self.pruned_below is None or error or epochs is None or int(epochs) >= self.pruned_below
                or trial_id not in self._ot_trials or trial_id in self._completed_trials):
            return super().on_trial_complete(trial_id, result, error)
        from optuna.trial import TrialState

        try:
            self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
        except Exception as exc:  # noqa: BLE001  (as OptunaSearch: a refused tell is a warning, not a dead search)
            log.warning("Optuna refused trial %s as PRUNED: %s", trial_id, exc)
        self._completed_trials.add(trial_id)


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
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    if zombies:
        log.info("marked %d Optuna trials FAIL that the killed driver started after Tune's last snapshot", len(zombies))
    return len(zombies)


def warm_start(search_path: Path, study_name: str, sources: list, space: dict) -> dict[str, dict[str, int]]:
    """Add the finished trials of earlier searches to this search's study before its first suggestion.

    `sources`: (SearchRecord, folder) of each earlier search, already checked (same labels).
    A trial is added only when every parameter it was given is a searchable value of `space`
    (a changed space keeps the trials that fit it), with the distributions of this space, so
    TPE reads old and new trials alike. Returns {source: {"added": n, "skipped": m}}.
    """
    import optuna
    from optuna.trial import TrialState, create_trial

    from search import space as spaces

    from trainable.metrics import PRIMARY_MODE

    direction = "maximize" if PRIMARY_MODE == "max" else "minimize"
    study = optuna.create_study(study_name=study_name, storage=study_storage(search_path), direction=direction,
                                load_if_exists=True)
    summary = {}
    for record, folder in sources:
        old = optuna.load_study(study_name=record.name, storage=study_url(folder))
        finished = old.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        kept = [t for t in finished if spaces.fits(space, t.params)]
        study.add_trials([create_trial(params=t.params, value=t.value, user_attrs={**t.user_attrs,
                                                                                    "warm_start_from": record.name},
                                       distributions={k: spaces.distribution(space[k]) for k in t.params})
                          for t in kept])
        summary[record.name] = {"added": len(kept), "skipped": len(finished) - len(kept)}
    return summary
