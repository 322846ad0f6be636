"""search/progress.py's live table: the best line covers the trials a resume restored, without a Ray cluster.

Ray's own Trial objects are built as stubs and sent through the round trip Tune's resume uses
(`Trial.get_json_state` -> `Trial.from_json_state` + `restore_run_metadata`), so the test fails
loudly when the per-trial metric summary that trial_best reads goes away (Ray 2.x).
"""

from __future__ import annotations

from types import SimpleNamespace

from trainable.metrics import PRIMARY_METRIC


def ray_trial(config: dict, scores: list[float], status: str):
    """A stub ray.tune Trial that reported `scores`, as Tune's saved state restores it."""
    from ray.tune.experiment import Trial

    trial = Trial("trainable", config=config, stub=True)
    trial.create_placement_group_factory()
    for epoch, score in enumerate(scores, start=1):
        trial.update_last_result({PRIMARY_METRIC: score, "training_iteration": epoch, "trial_id": trial.trial_id})
    trial.set_status(status)
    state, run_metadata = trial.get_json_state()  # what experiment_state-*.json holds
    restored = Trial.from_json_state(state, stub=True)
    restored.restore_run_metadata(run_metadata)
    return restored


def test_the_best_line_includes_the_trials_a_resume_restored(capsys):
    from ray.tune.experiment import Trial

    from search.progress import LiveTable, trial_best

    # Restored: its best (0.8, epoch 2) is not its last result (0.6), and this driver never saw either.
    restored = ray_trial({"model": "cnn4", "optimizer": "sgd"}, [0.5, 0.8, 0.6], Trial.TERMINATED)
    assert restored.last_result[PRIMARY_METRIC] == 0.6 and trial_best(restored) == 0.8
    running = ray_trial({"model": "cnn5", "optimizer": "adamw"}, [], Trial.RUNNING)
    table = LiveTable(max_epochs=3, trials=4, every_s=0.0)
    result = {PRIMARY_METRIC: 0.7, "training_iteration": 1}
    running.update_last_result(dict(result))
    table.on_trial_result(0, [restored, running], running, result)
    assert table.best[:2] == (0.8, restored.trial_id)
    out = capsys.readouterr().out
    assert f"best {PRIMARY_METRIC} 0.8000  {restored.trial_id}  cnn4 sgd" in out

    better = {PRIMARY_METRIC: 0.9, "training_iteration": 2}  # a new best from this driver still wins
    running.update_last_result(dict(better))
    table.on_trial_result(1, [restored, running], running, better)
    assert table.best[:2] == (0.9, running.trial_id)


def test_a_trial_without_a_metric_summary_falls_back_to_its_last_result():
    from search.progress import LiveTable, trial_best

    fake = SimpleNamespace(trial_id="t1", config={"model": "cnn4"}, status="TERMINATED",
                           last_result={PRIMARY_METRIC: 0.4})
    unscored = SimpleNamespace(trial_id="t2", config={}, status="PENDING", last_result={}, metric_analysis={})
    assert trial_best(fake) == 0.4 and trial_best(unscored) is None
    table = LiveTable(max_epochs=3, trials=2, every_s=0.0)
    table.on_trial_complete(0, [fake, unscored], fake)
    assert table.best[:2] == (0.4, "t1")


def test_a_running_trials_row_shows_the_result_tune_has_not_stored_yet(capsys):
    """Tune calls on_trial_result before trial.update_last_result (ray/tune/execution/tune_controller.py): the row
    must show that result, as the best line does, not the epoch before it."""
    from ray.tune.experiment import Trial

    from search.progress import LiveTable

    running = ray_trial({"model": "cnn5", "optimizer": "adamw"}, [0.5], Trial.RUNNING)
    running.set_status(Trial.RUNNING)  # a restored stub comes back PENDING
    table = LiveTable(max_epochs=3, trials=1, every_s=0.0)
    table.on_trial_result(0, [running], running, {PRIMARY_METRIC: 0.7, "training_iteration": 2})
    out = capsys.readouterr().out
    assert f"best {PRIMARY_METRIC} 0.7000" in out
    assert f"{running.trial_id:<10} epoch 2/3   0.7000" in out, out
