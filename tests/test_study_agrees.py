"""The kept Optuna study and `labeltune report` tell the same story of a search (issue 25 item 5): each trial's
state and value, and a mark on the trials ASHA stopped (search/study.py), on a search driven by hand through the
driver's own pieces: KeptOptunaSearch, the stopper, the Outcomes callback, `settle`, then the report (no Ray)."""

from __future__ import annotations

import json
import types

import pytest

from trainable.metrics import PRIMARY_METRIC

MAX_EPOCHS = 3
SCRIPT = {  # Tune trial id -> its epochs' scores, and how it ends
    "fin": ([0.30, 0.50, 0.45], "complete"),  # all epochs: its last score is below its best
    "asha1": ([0.25], "complete"),            # ASHA stopped it at the first rung
    "asha2": ([0.20, 0.35], "complete"),      # ... at the second epoch
    "err": ([0.10], "error"),                 # raised after its first epoch
    "cut": ([0.40, 0.60], "stop"),            # reached --target 0.55: the stop ends it and the search
    "run": ([0.15], "running"),               # still running when the search ended
    "never": ([], "stop"),                    # suggested, never reported
}


def drive(path, pruned_below: int | None):
    """Run SCRIPT through the searcher, stopper and Outcomes callback as Tune's driver calls them; settle the study."""
    import optuna

    from search import space as spaces
    from search.record import SearchRecord
    from search.stopping import Outcomes, SearchStopper
    from search.study import KeptOptunaSearch, settle, study_storage

    space = spaces.load_space("quick")
    constants = {"epochs": MAX_EPOCHS, "split_seed": 0, "seed": 0}
    record = SearchRecord(name="s", storage=str(path), space=space, constants=constants, status="finished",
                          options={"epochs": MAX_EPOCHS, "grace_period": 1, "trials": len(SCRIPT)},
                          baselines={f"baseline/{PRIMARY_METRIC}": 0.2}, baseline_rule="predict people")
    record.write()
    searcher = KeptOptunaSearch(space=spaces.make_define_by_run(space, constants, ()), metric=PRIMARY_METRIC,
                                mode="max", sampler=optuna.samplers.RandomSampler(seed=0), study_name="s",
                                storage=study_storage(record.path), pruned_below=pruned_below)
    stopper, outcomes = SearchStopper(target=0.55), None
    outcomes = Outcomes(max_epochs=MAX_EPOCHS, stopper=stopper)
    outcomes.on_step_begin(0, [])  # a new search: no trial ended before this driver
    trials = []
    for n, (trial_id, (scores, end)) in enumerate(SCRIPT.items()):
        config = searcher.suggest(trial_id)
        rows = [{PRIMARY_METRIC: s, "training_iteration": e, "trial_id": trial_id, "config": config,
                 "reported_at": 1000.0 + 10 * n + e} for e, s in enumerate(scores, start=1)]
        for row in rows:
            stopper(trial_id, row)
            searcher.on_trial_result(trial_id, row)
        (record.path / f"trial_{trial_id}").mkdir()
        (record.path / f"trial_{trial_id}" / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
        trial = types.SimpleNamespace(
            trial_id=trial_id, status={"error": "ERROR", "running": "RUNNING"}.get(end, "TERMINATED"),
            last_result={"training_iteration": len(scores)} if scores else {},
            metric_analysis={PRIMARY_METRIC: {"max": max(scores), "last": scores[-1]}} if scores else {})
        trials.append(trial)
        if end == "complete":  # ASHA stopped it or it ran every epoch: Tune tells the searcher and the callbacks
            searcher.on_trial_complete(trial_id, rows[-1])
            stopper.on_trial_complete(0, trials, trial)
            outcomes.on_trial_complete(0, trials, trial)
        elif end == "error":  # Tune 2.60 tells the searcher of an error without a result
            searcher.on_trial_complete(trial_id, None, error=True)
            outcomes.on_trial_error(0, trials, trial)
    outcomes.on_experiment_end(trials)
    settle(record.path, "s", outcomes.trials, final=True)
    return record.path, outcomes.trials


def study_view(path) -> dict:
    """Tune trial id -> (state, value, stopped-at epoch) as the kept study holds them (what optuna-dashboard shows)."""
    from search.record import TUNE_TRIAL_ATTR, load_kept_study
    from search.study import STOPPED_AT_ATTR

    return {t.user_attrs[TUNE_TRIAL_ATTR]: (t.state.name, t.value, t.user_attrs.get(STOPPED_AT_ATTR))
            for t in load_kept_study(path, "s").get_trials(deepcopy=False)}


def report_view(report, asha_state: str) -> dict:
    """The same, from the report: a completed outcome holds its last epoch's score; only stopped_early is marked."""
    state = {"finished": "COMPLETE", "stopped_early": asha_state, "ended_by_stop": "COMPLETE", "failed": "FAIL",
             "never_ran": "FAIL", "unfinished": "RUNNING"}
    return {t.trial_id: (state[t.outcome], t.last if state[t.outcome] in ("COMPLETE", "PRUNED") else None,
                         t.epochs if t.outcome == "stopped_early" else None) for t in report.trials}


@pytest.mark.parametrize("pruned_below", [None, MAX_EPOCHS], ids=["complete", "pruned"])
def test_the_kept_study_and_the_report_agree_on_each_trial(tmp_path, pruned_below):
    from search.report import analyse
    from search.study import kept_outcomes

    path, decided = drive(tmp_path, pruned_below)
    report = analyse(path)
    assert {t.trial_id: t.outcome for t in report.trials} == {
        "fin": "finished", "asha1": "stopped_early", "asha2": "stopped_early", "err": "failed",
        "cut": "ended_by_stop", "run": "unfinished", "never": "never_ran"}
    # pruned_below (the sampler's choice) changes only how ASHA's trials are told, never the rest
    assert study_view(path) == report_view(report, "PRUNED" if pruned_below else "COMPLETE")
    assert study_view(path)["asha2"][1:] == (0.35, 2) and study_view(path)["fin"][1:] == (0.45, None)
    # the best epoch's score: what the report ranks by and what the study keeps beside each outcome
    kept = kept_outcomes(path, "s")
    assert {t.trial_id: t.best for t in report.trials} == {k: v["best"] for k, v in kept.items()}
    assert set(kept) == set(decided) and report.trials[0].trial_id == "cut"


def test_a_search_without_a_known_epoch_count_marks_nothing():
    """A searcher on a plain define-by-run function (no `epochs` constant, no max_epochs) cannot tell a stopped
    trial from a finished one: it leaves the mark out rather than guess."""
    import optuna

    from search.study import STOPPED_AT_ATTR, KeptOptunaSearch

    def space(trial):
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)

    for max_epochs, mark in ((None, None), (3, 1)):
        searcher = KeptOptunaSearch(space=space, metric=PRIMARY_METRIC, mode="max", max_epochs=max_epochs,
                                    sampler=optuna.samplers.RandomSampler(seed=0))
        searcher.suggest("a")
        searcher.on_trial_result("a", {PRIMARY_METRIC: 0.3, "training_iteration": 1})
        searcher.on_trial_complete("a", {PRIMARY_METRIC: 0.3, "training_iteration": 1})
        (trial,) = searcher.optuna_study().get_trials()
        assert trial.user_attrs.get(STOPPED_AT_ATTR) == mark and trial.state.name == "COMPLETE"
