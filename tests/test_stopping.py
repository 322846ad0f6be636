"""--target and --plateau: the search's own stopping rules (issue 14, item 5), on scripted results."""

from __future__ import annotations

import pytest

import types

from search.stopping import SearchStopper
from trainable.metrics import PRIMARY_METRIC


def finish(stopper: SearchStopper, trial_id: str, scores: list[float]) -> None:
    for score in scores:
        stopper(trial_id, {PRIMARY_METRIC: score})
    stopper.on_trial_complete(0, [], types.SimpleNamespace(trial_id=trial_id))


def test_target_ends_the_search_at_the_first_result_that_reaches_it():
    stopper = SearchStopper(target=0.7)
    finish(stopper, "a", [0.3, 0.69])
    assert not stopper.stop_all() and stopper.reason == ""
    assert stopper("b", {PRIMARY_METRIC: 0.71}) is False  # the trial itself is ASHA's business
    assert stopper.stop_all() and stopper.reason.startswith("target reached: trial b") and "0.7100 >= 0.7" in stopper.reason


def test_plateau_counts_completed_trials_without_a_new_best():
    stopper = SearchStopper(plateau=2)
    finish(stopper, "a", [0.2, 0.5])      # first best
    finish(stopper, "b", [0.4])           # 1 without a new best
    finish(stopper, "c", [0.6])           # new best: the count restarts
    finish(stopper, "d", [0.1, float("nan")])
    assert not stopper.stop_all()
    finish(stopper, "e", [0.59])          # 2 in a row
    assert stopper.stop_all() and stopper.reason.startswith("plateau: 2 completed trials") and "best 0.6000" in stopper.reason


def test_the_trials_running_when_the_stopper_fires_are_not_asha_s():
    stopper = SearchStopper(target=0.7)
    finish(stopper, "a", [0.3])           # completed before: ASHA stopped or finished it
    stopper("b", {PRIMARY_METRIC: 0.2})   # b and c still run when c reaches the target
    finish(stopper, "c", [0.75])
    stopper.on_trial_complete(0, [], types.SimpleNamespace(trial_id="b"))
    assert stopper.completed == {"a"}
    assert stopper.ended("b") and stopper.ended("c") and not stopper.ended("a")
    assert not SearchStopper(target=0.7).ended("a")  # nothing ends a trial before the stopper fires


def test_no_rule_never_stops():
    stopper = SearchStopper()
    for k in range(5):
        finish(stopper, str(k), [0.99])
    assert not stopper.stop_all()


def test_warm_start_adds_the_trials_that_fit_the_new_space_with_its_distributions(tmp_path):
    import optuna

    from search.record import SearchRecord
    from search.study import study_storage, study_url, warm_start

    old_path = tmp_path / "old"
    old = optuna.create_study(study_name="old", storage=study_storage(old_path), direction="maximize")
    old_space = {"model": optuna.distributions.CategoricalDistribution(["cnn5", "cnn4", "resnet18"]),
                 "lr_adamw": optuna.distributions.FloatDistribution(1e-5, 1.0, log=True)}
    for model, lr, value in [("cnn5", 1e-3, 0.5), ("cnn4", 1e-2, 0.6), ("resnet18", 1e-3, 0.7), ("cnn5", 0.5, 0.4)]:
        old.add_trial(optuna.trial.create_trial(params={"model": model, "lr_adamw": lr}, value=value,
                                                distributions=old_space))
    old.enqueue_trial({"model": "cnn5"})  # WAITING: not finished, never added
    space = {"model": ["cnn5", "cnn4"], "lr_adamw": {"low": 1e-4, "high": 0.1, "log": True}, "epochs": 3}
    record = SearchRecord(name="old", storage=str(tmp_path))
    summary = warm_start(tmp_path / "new", "new", [(record, old_path)], space)
    assert summary == {"old": {"added": 2, "skipped": 2, "duplicates": 0}}  # resnet18 and lr 0.5 are outside it
    new = optuna.load_study(study_name="new", storage=study_url(tmp_path / "new"))
    added = new.get_trials()
    assert sorted(t.value for t in added) == [0.5, 0.6] and all(t.user_attrs["warm_start_from"] == "old" for t in added)
    assert all(t.distributions["model"] == optuna.distributions.CategoricalDistribution(["cnn5", "cnn4"]) for t in added)


def test_pruned_below_tells_optuna_the_trials_asha_stopped_as_pruned_with_their_intermediate_values():
    import optuna
    from optuna.trial import TrialState

    from search.study import KeptOptunaSearch

    def space(trial):
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)

    results = {"stopped": [0.3], "finished": [0.2, 0.4, 0.5], "failed": [0.1]}
    states = {}
    for pruned_below in (3, None):
        search = KeptOptunaSearch(space=space, metric=PRIMARY_METRIC, mode="max", pruned_below=pruned_below,
                                  max_epochs=3, sampler=optuna.samplers.RandomSampler(seed=0))
        for trial_id, scores in results.items():
            search.suggest(trial_id)
            for epoch, score in enumerate(scores, start=1):
                search.on_trial_result(trial_id, {PRIMARY_METRIC: score, "training_iteration": epoch})
            last = {PRIMARY_METRIC: scores[-1], "training_iteration": len(scores)}
            search.on_trial_complete(trial_id, last, error=trial_id == "failed")
        trials = search._ot_study.get_trials()
        states[pruned_below] = [(t.state, t.value, t.user_attrs["tune_trial_id"]) for t in trials]
        # either way, only the trial ASHA stopped carries the epoch it stopped at (search/study.py STOPPED_AT_ATTR)
        assert [t.user_attrs.get("stopped_at_epoch") for t in trials] == [1, None, None]
    assert states[3] == [(TrialState.PRUNED, 0.3, "stopped"), (TrialState.COMPLETE, 0.5, "finished"),
                         (TrialState.COMPLETE, 0.1, "failed")]  # a result with an error: OptunaSearch's own rule
    assert states[None][0][:2] == (TrialState.COMPLETE, 0.3)  # OptunaSearch's: the last score, COMPLETE


def _kept_study(storage, name: str, trials: list[tuple[str, float, float]]):
    """A finished search `name` in folder `storage` (record + kept study) with COMPLETE trials (model, lr, value)."""
    import optuna

    from search.record import SearchRecord
    from search.study import study_storage

    record = SearchRecord(name=name, storage=str(storage), labels=["a", "b"], data_fingerprint="fp", status="finished")
    record.write()
    study = optuna.create_study(study_name=name, storage=study_storage(record.path), direction="maximize",
                                load_if_exists=True)  # a warm-started search's study exists before its trials ran
    dists = {"model": optuna.distributions.CategoricalDistribution(["cnn5", "cnn4"]),
             "lr_adamw": optuna.distributions.FloatDistribution(1e-5, 1.0, log=True)}
    for model, lr, value in trials:
        study.add_trial(optuna.trial.create_trial(params={"model": model, "lr_adamw": lr}, value=value,
                                                  distributions=dists))
    return record


def test_warm_starts_never_count_a_trial_twice(tmp_path):
    """Issue 22 item 4: a retried warm start, a source named twice, and a source seeded from another source."""
    import optuna

    from search.study import study_url, warm_start
    from search.run import warm_start_sources

    space = {"model": ["cnn5", "cnn4"], "lr_adamw": {"low": 1e-5, "high": 1.0, "log": True}}
    s1 = _kept_study(tmp_path, "s1", [("cnn5", 1e-3, 0.5), ("cnn4", 1e-2, 0.6), ("cnn5", 3e-3, 0.55)])

    def trials(name):
        return optuna.load_study(study_name=name, storage=study_url(tmp_path / name)).get_trials()

    # --warm-start s1,s1: one source
    sources = warm_start_sources("s1,s1", str(tmp_path), ["a", "b"], "fp")
    assert [record.name for record, _ in sources] == ["s1"]
    # a start that failed after seeding (study, no record), then retried: the same 3 trials, not 6
    assert warm_start(tmp_path / "w3", "w3", sources, space)["s1"] == {"added": 3, "skipped": 0, "duplicates": 0}
    assert warm_start(tmp_path / "w3", "w3", sources, space)["s1"] == {"added": 3, "skipped": 0, "duplicates": 3}
    assert len(trials("w3")) == 3
    # w3 finished with one trial of its own; --warm-start s1,w3 adds s1's trials once, labelled as s1's
    w3_record = _kept_study(tmp_path, "w3", [("cnn4", 5e-4, 0.7)])
    summary = warm_start(tmp_path / "x", "x", warm_start_sources("s1,w3", str(tmp_path), ["a", "b"], "fp"), space)
    assert summary == {"s1": {"added": 3, "skipped": 0, "duplicates": 0},
                       "w3": {"added": 1, "skipped": 0, "duplicates": 3}}
    added = trials("x")
    assert len(added) == 4 and sorted(t.user_attrs["warm_start_from"] for t in added) == ["s1", "s1", "s1", "w3"]
    assert w3_record.name == "w3"


def test_a_warm_start_keeps_a_trial_whose_parameter_the_new_space_fixes_to_its_value(tmp_path):
    """Issue 22 item 6: model=cnn4 fits `model: cnn4`; the study does not search it, so it is dropped."""
    import optuna

    from search.study import study_url, warm_start

    s1 = _kept_study(tmp_path, "s1", [("cnn4", 1e-3, 0.5), ("cnn5", 1e-3, 0.6)])
    space = {"model": "cnn4", "lr_adamw": {"low": 1e-5, "high": 1.0, "log": True}}
    assert warm_start(tmp_path / "n", "n", [(s1, s1.path)], space)["s1"] == {"added": 1, "skipped": 1, "duplicates": 0}
    (trial,) = optuna.load_study(study_name="n", storage=study_url(tmp_path / "n")).get_trials()
    assert trial.params == {"lr_adamw": 1e-3} and trial.value == 0.5


def test_a_damaged_warm_start_source_is_refused_in_one_line_before_anything_is_written(tmp_path):
    """Issue 22 item 5: warm_start_sources reads each source's study (it runs before Ray starts)."""
    from search.options import SearchError
    from search.run import warm_start_sources

    s1 = _kept_study(tmp_path, "s1", [("cnn4", 1e-3, 0.5)])
    (s1.path / "optuna.db").write_bytes(b"SQLite format 3\x00" + b"\x07" * 2000)  # a damaged database
    with pytest.raises(SearchError) as refused:
        warm_start_sources("s1", str(tmp_path), ["a", "b"], "fp")
    message = str(refused.value)
    assert message.startswith("--warm-start s1:") and str(s1.path / "optuna.db") in message and "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s1"]


def test_settle_tells_the_trials_a_stop_ended_and_fails_a_queued_recipe_that_never_ran(tmp_path):
    """Issue 22 items 2 and 11: after a --target stop no Optuna trial stays RUNNING or WAITING for good."""
    import optuna
    from optuna.trial import TrialState

    from search.outcome import TrialOutcome
    from search.study import kept_outcomes, settle, study_storage

    study = optuna.create_study(study_name="s", storage=study_storage(tmp_path), direction="maximize")
    for trial_id in ("reached", "cut", "failed", "running"):
        trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1.0)})
        trial.set_user_attr("tune_trial_id", trial_id)
    study.enqueue_trial({"lr": 0.1})  # a recipe queued as WAITING
    outcomes = {"reached": TrialOutcome("reached", "ended_by_stop", 1, 0.8, 0.8),
                "cut": TrialOutcome("cut", "ended_by_stop", 2, 0.5, 0.4),
                "failed": TrialOutcome("failed", "failed", 1, 0.1, 0.1),
                "running": TrialOutcome("running", "unfinished", 1, 0.2, 0.2)}
    settle(tmp_path, "s", outcomes, final=False)
    states = {t.user_attrs.get("tune_trial_id"): (t.state, t.value) for t in study.get_trials()}
    assert states == {"reached": (TrialState.COMPLETE, 0.8), "cut": (TrialState.COMPLETE, 0.4),
                      "failed": (TrialState.FAIL, None), "running": (TrialState.RUNNING, None),
                      None: (TrialState.WAITING, None)}  # a resume may still run the recipe
    settle(tmp_path, "s", {}, final=True)
    assert study.get_trials()[-1].state == TrialState.FAIL
    assert kept_outcomes(tmp_path, "s") == {k: {"outcome": o.outcome, "best": o.best} for k, o in outcomes.items()}


def test_a_search_a_stop_ends_is_finished_even_with_trials_left_unfinished(tmp_path):
    """Issue 22 item 1: an interrupted --target search that reaches its target in the resume ends finished."""
    from search.record import SearchRecord
    from search.stopping import Outcomes
    from search.run import _finish

    def finish(reason: str, trials: list) -> str:
        stopper = SearchStopper(target=0.5)
        stopper.reason = reason
        outcomes = Outcomes(max_epochs=3, stopper=stopper)
        outcomes.on_experiment_end(trials)
        record = SearchRecord(name="s", storage=str(tmp_path), options={"trials": 8, "epochs": 3})
        return _finish([], record, None, stopper, outcomes, 0.0).interrupted, record.status

    cut = types.SimpleNamespace(trial_id="a", status="TERMINATED", last_result={"training_iteration": 1},
                                metric_analysis={PRIMARY_METRIC: {"max": 0.6, "last": 0.6}})
    assert finish("target reached: trial a", [cut]) == (False, "finished")  # 1 of 8 trials, cut short: still done
    assert finish("", [cut]) == (True, "interrupted")  # the same without a stop: Ctrl-C left it


def test_resuming_a_finished_search_repairs_the_running_trials_an_older_stop_left(tmp_path):
    """Issue 22 item 2: a --target stop of an older labeltune left Optuna trials RUNNING; the next resume settles them
    from the trials' own results (a trial that reported: COMPLETE with its last score; one that did not: FAIL)."""
    import json

    import optuna
    from optuna.trial import TrialState

    from search.study import repair_stopped, study_storage

    study = optuna.create_study(study_name="s", storage=study_storage(tmp_path), direction="maximize")
    for trial_id in ("reported", "silent"):
        study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1.0)}).set_user_attr("tune_trial_id", trial_id)
    (tmp_path / "trial_reported").mkdir()
    (tmp_path / "trial_reported" / "result.json").write_text(
        "\n".join(json.dumps({PRIMARY_METRIC: v, "training_iteration": i}) for i, v in ((1, 0.3), (2, 0.25))) + "\n")
    assert repair_stopped(tmp_path, "s") == 2
    assert [(t.state, t.value) for t in study.get_trials()] == [(TrialState.COMPLETE, 0.25), (TrialState.FAIL, None)]
    assert repair_stopped(tmp_path, "s") == 0


def test_a_recipe_the_warm_start_brought_is_not_queued_again(tmp_path):
    """Issue 22 item 11: build_tuner drops a first point whose values a finished trial of the study already has."""
    from search.study import study_holds

    s1 = _kept_study(tmp_path, "s1", [("cnn4", 1e-3, 0.5)])
    assert study_holds(s1.path, "s1", {"model": "cnn4", "lr_adamw": 1e-3})
    assert not study_holds(s1.path, "s1", {"model": "cnn4", "lr_adamw": 2e-3})
    assert not study_holds(tmp_path / "none", "none", {"model": "cnn4"})  # no study: nothing held
