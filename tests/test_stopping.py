"""--target and --plateau: the search's own stopping rules (issue 14, item 5), on scripted results."""

from __future__ import annotations

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
    assert summary == {"old": {"added": 2, "skipped": 2}}  # resnet18 and lr 0.5 are outside the new space
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
                                  sampler=optuna.samplers.RandomSampler(seed=0))
        for trial_id, scores in results.items():
            search.suggest(trial_id)
            for epoch, score in enumerate(scores, start=1):
                search.on_trial_result(trial_id, {PRIMARY_METRIC: score, "training_iteration": epoch})
            last = {PRIMARY_METRIC: scores[-1], "training_iteration": len(scores)}
            search.on_trial_complete(trial_id, last, error=trial_id == "failed")
        trials = search._ot_study.get_trials()
        states[pruned_below] = [(t.state, t.value, t.user_attrs["tune_trial_id"]) for t in trials]
    assert states[3] == [(TrialState.PRUNED, 0.3, "stopped"), (TrialState.COMPLETE, 0.5, "finished"),
                         (TrialState.COMPLETE, 0.1, "failed")]  # a result with an error: OptunaSearch's own rule
    assert states[None][0][:2] == (TrialState.COMPLETE, 0.3)  # OptunaSearch's: the last score, COMPLETE
