"""MLflowTracker in real Tune runs (parent + children, metrics, figures, failures), its resume
semantics (runs found again by tags after a pickle round trip, the best epoch's figures kept
through Tune's callback state), and check_store's verdicts."""

from __future__ import annotations

import csv
import json
import logging
import pickle
import re
import socket
import sqlite3
import sys
import types
from pathlib import Path

import mlflow
import pytest
import ray.cloudpickle
from ray import tune

from search.readable import number
from search.tracking.callback import MLflowTracker
from search.tracking.names import BEST_MARK, EPOCH_METRICS, LABEL_TABLE
from search.tracking.runs import TrackingUnavailable, check_store, find_search_runs
from trainable.metrics import PRIMARY_METRIC

# tests/ is not importable on Ray workers: ship this module's functions (the trainables) by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

LABELS = ("dog", "sea")
EPOCHS = 3
RISE_AND_FALL = (0.1, 0.3, 0.2)
"""added to val/micro_f1 at epochs 1, 2, 3: the best epoch is not the last"""
BEST_EPOCH = 2


def _uri(home: Path) -> str:
    return f"sqlite:///{home / 'mlruns' / 'mlflow.db'}"


def _fake_metrics(x: float, epoch: int) -> dict:
    """What the Gym would report at an epoch; deterministic so the test can recompute it."""
    f1 = round(x + RISE_AND_FALL[epoch - 1], 6)
    metrics = {"epoch": epoch, "img_per_s": 100.0 * epoch, "train/loss": 1.0 / epoch, "val/loss": 1.2 / epoch,
               "val/micro_f1": f1, "val/macro_f1": f1 / 2, "val/map": f1 / 3, "val/hamming_acc": 0.9}
    for i, label in enumerate(LABELS):
        metrics.update({f"val/tp/{label}": epoch + i, f"val/fp/{label}": 1, f"val/fn/{label}": 2, f"val/tn/{label}": 10})
        metrics.update({f"val/f1/{label}": f1 - 0.01 * i, f"val/acc/{label}": 0.5 + 0.1 * epoch})
    return metrics


def _dataset(tmp_path: Path) -> dict:
    return {"name": "toy", "folder": str(tmp_path / "data"), "fingerprint": "ab12" * 16, "n_images": 40,
            "labels": list(LABELS), "label_counts": {"dog": 7, "sea": 3}}


def _make_trainable(fail_x: float | None = None):
    """A function trainable that reports EPOCHS fake epochs, and raises at epoch 2 when config x == fail_x."""

    def trainable(config: dict) -> None:
        for epoch in range(1, EPOCHS + 1):
            if fail_x is not None and config["x"] == fail_x and epoch == 2:
                raise ValueError(f"boom at x={config['x']}")
            tune.report({**_fake_metrics(config["x"], epoch), "node_id": "node-abc", "flag": True})

    return trainable


def _fit(tmp_path: Path, tracker: MLflowTracker, param_space: dict, num_samples: int, fail_x: float | None = None):
    tuner = tune.Tuner(
        _make_trainable(fail_x),
        param_space=param_space,
        tune_config=tune.TuneConfig(num_samples=num_samples),
        run_config=tune.RunConfig(name="exp", storage_path=str((tmp_path / "runs").resolve()), callbacks=[tracker],
                                  verbose=0),
    )
    return tuner.fit()


def _artifacts(client: mlflow.MlflowClient, run_id: str) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id)}


def _label_table(client: mlflow.MlflowClient, run_id: str, folder: Path) -> list[dict]:
    local = client.download_artifacts(run_id, LABEL_TABLE, str(folder / run_id))
    with open(local, newline="") as f:
        return list(csv.DictReader(f))


def _assert_dataset_input(client: mlflow.MlflowClient, run_id: str, dataset: dict) -> None:
    (logged,) = client.get_run(run_id).inputs.dataset_inputs
    assert logged.dataset.name == "toy" and logged.dataset.digest == f"{dataset['fingerprint'][:12]}-40"
    assert json.loads(logged.dataset.source) == {"uri": dataset["folder"]}
    profile = json.loads(logged.dataset.profile)
    assert profile["fingerprint"] == dataset["fingerprint"] and profile["label_counts"] == {"dog": 7, "sea": 3}
    assert profile["n_images"] == 40 and profile["labels"] == list(LABELS)
    assert {t.key: t.value for t in logged.tags} == {"mlflow.data.context": "train"}


@pytest.mark.timeout(180)
def test_search_logs_parent_children_metrics_and_figures(ray_address, labeltune_home, tmp_path):
    uri = _uri(labeltune_home)
    dataset = _dataset(tmp_path)
    tracker = MLflowTracker(uri, "s1", parent_tags={"labeltune.space": "quick"}, max_epochs=EPOCHS, dataset=dataset)
    space = {"x": tune.uniform(0.0, 0.5), "long": "y" * 7000, "opt": {"name": "sgd"}, "model": "cnn5",
             "optimizer": tune.grid_search(["adamw", "sgd", "adamw"]), "lr_adamw": 1e-3, "lr_sgd": 0.1}
    grid = _fit(tmp_path, tracker, space, num_samples=1)
    assert not grid.errors

    client = mlflow.MlflowClient(uri)
    parent, children = find_search_runs(uri, "s1")
    assert parent is not None and parent.info.status == "FINISHED"
    assert parent.info.run_name == "s1" and parent.data.tags["labeltune.space"] == "quick"
    _assert_dataset_input(client, parent.info.run_id, dataset)
    assert len(children) == 3
    configs = {r.metrics["trial_id"]: r.config for r in grid}
    assert {c.data.tags["labeltune.trial_id"] for c in children} == set(configs)

    best, names = 0.0, set()
    # Whatever the label count: the epoch metrics, best/val/micro_f1, best_epoch and the two time/ summaries.
    assert len(EPOCH_METRICS) + 2 + 2 <= 20
    for child in children:
        trial_id = child.data.tags["labeltune.trial_id"]
        x, optimizer = configs[trial_id]["x"], configs[trial_id]["optimizer"]
        assert child.info.status == "FINISHED"
        # the whole trial id, as the console prints it
        name = re.fullmatch(rf"({BEST_MARK})?cnn5-{optimizer}-({re.escape(trial_id)})", child.info.run_name)
        assert name, child.info.run_name
        names.add(name[2])
        assert (name[1] is not None) == (child.data.tags.get("labeltune.best") == "true")
        assert (name[1] is not None) == (trial_id == parent.data.tags["labeltune.best_trial_id"])
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["labeltune.role"] == "trial"
        assert child.data.tags["labeltune.node_id"] == "node-abc"
        assert child.data.tags["labeltune.hostname"] == socket.gethostname()
        assert child.data.tags["labeltune.stopped_early"] == "false"
        assert child.data.params["x"] == number(x) and len(number(x).replace(".", "").lstrip("0")) <= 4
        assert child.data.params["opt/name"] == "sgd"
        assert child.data.params["long"] == "y" * 6000  # cut to MLflow's limit
        assert child.data.params["optimizer"] == optimizer and child.data.params["model"] == "cnn5"
        assert child.data.params["lr"] == number(configs[trial_id][f"lr_{optimizer}"])
        assert child.data.params["log10_lr"] == number(-3.0 if optimizer == "adamw" else -1.0)
        assert not any(key.startswith("lr_") for key in child.data.params)
        _assert_dataset_input(client, child.info.run_id, dataset)

        history = client.get_metric_history(child.info.run_id, PRIMARY_METRIC)
        assert sorted((m.step, m.value) for m in history) == [(e, _fake_metrics(x, e)[PRIMARY_METRIC]) for e in (1, 2, 3)]
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val/map")] == [1, 2, 3]
        per_epoch = {key for key in EPOCH_METRICS if key in _fake_metrics(x, 1)}
        best_metrics = {f"best/{PRIMARY_METRIC}", "best_epoch"}
        assert set(child.data.metrics) == per_epoch | best_metrics  # no per-label keys (LABEL_TABLE), no hamming_acc
        assert child.data.metrics[f"best/{PRIMARY_METRIC}"] == max(m.value for m in history)
        assert child.data.metrics["best_epoch"] == BEST_EPOCH
        at_best = _fake_metrics(x, BEST_EPOCH)

        rows = _label_table(client, child.info.run_id, tmp_path)
        assert [row["label"] for row in rows] == list(LABELS)
        for row in rows:
            assert row["epoch"] == str(BEST_EPOCH)
            for name in ("f1", "acc", "tp", "fp", "fn", "tn"):
                assert float(row[name]) == pytest.approx(at_best[f"val/{name}/{row['label']}"]), name
        assert {"curves.png", "confusion.png"} <= _artifacts(client, child.info.run_id)
        local = Path(client.download_artifacts(child.info.run_id, "confusion.png", str(tmp_path)))
        assert local.read_bytes()[:4] == b"\x89PNG"
        best = max(best, at_best[PRIMARY_METRIC])

    assert len(names) == 3  # the names tell the trials apart
    assert sum(child.data.tags.get("labeltune.best") == "true" for child in children) == 1
    assert parent.data.metrics[f"best/{PRIMARY_METRIC}"] == pytest.approx(best)
    outcomes = json.loads(parent.data.tags["labeltune.outcomes"])
    assert parent.data.tags["labeltune.trials"] == "3" and outcomes["stopped_early"] == 0 and outcomes["finished"] == 3
    assert parent.data.tags["labeltune.best_trial_id"] in configs


@pytest.mark.timeout(180)
def test_failing_trial_is_failed_with_its_error_others_finish(ray_address, labeltune_home, tmp_path):
    uri = _uri(labeltune_home)
    tracker = MLflowTracker(uri, "s2", max_epochs=EPOCHS + 1)
    grid = _fit(tmp_path, tracker, {"x": tune.grid_search([0.0, 0.1, 0.2])}, num_samples=1, fail_x=0.1)
    assert len(grid.errors) == 1

    parent, children = find_search_runs(uri, "s2")
    assert parent.info.status == "FINISHED"
    outcomes = json.loads(parent.data.tags["labeltune.outcomes"])
    assert outcomes["failed"] == 1
    assert outcomes["stopped_early"] == 2  # the failed trial is not counted
    by_x = {child.data.params["x"]: child for child in children}
    assert set(by_x) == {"0", "0.1", "0.2"}  # 4 significant figures: 0.0 is "0"
    failed = by_x["0.1"]
    assert failed.info.status == "FAILED"
    assert "ValueError: boom at x=0.1" in failed.data.tags["labeltune.error"]
    assert "error.txt" in _artifacts(mlflow.MlflowClient(uri), failed.info.run_id)
    assert failed.data.metrics["best_epoch"] == 1  # the one epoch it reported
    for x in ("0", "0.2"):
        assert by_x[x].info.status == "FINISHED"
        assert by_x[x].data.tags["labeltune.stopped_early"] == "true"  # 3 epochs of max 4
        assert "labeltune.error" not in by_x[x].data.tags


def _trial(trial_id: str, x: float) -> types.SimpleNamespace:
    """The attributes of ray.tune.experiment.Trial the tracker reads."""
    return types.SimpleNamespace(trial_id=trial_id, config={"x": x}, last_result={}, status="RUNNING", error_file=None)


def _report(tracker: MLflowTracker, trial, epoch: int) -> None:
    result = {**_fake_metrics(trial.config["x"], epoch), "training_iteration": epoch}
    tracker.on_trial_result(iteration=epoch, trials=[trial], trial=trial, result=result)
    trial.last_result = result


def test_resume_finds_the_same_runs_after_a_pickle_round_trip(labeltune_home):
    uri = _uri(labeltune_home)
    client = mlflow.MlflowClient(uri)
    done, cut = _trial("t_00000", 0.1), _trial("t_00001", 0.2)
    trials = [done, cut]

    def statuses() -> tuple[str, dict[str, str]]:
        parent, children = find_search_runs(uri, "s3")
        return parent.info.status, {c.data.tags["labeltune.trial_id"]: c.info.status for c in children}

    def names() -> dict[str, str]:
        """trial id -> run name, checked against the labeltune.best tag"""
        _, children = find_search_runs(uri, "s3")
        for c in children:
            assert (c.data.tags.get("labeltune.best") == "true") == c.info.run_name.startswith(BEST_MARK)
        return {c.data.tags["labeltune.trial_id"]: c.info.run_name for c in children}

    first = MLflowTracker(uri, "s3", max_epochs=EPOCHS)
    first.setup(total_num_samples=2)
    for trial in trials:
        first.on_trial_start(iteration=0, trials=trials, trial=trial)
        _report(first, trial, 1)
    first.on_experiment_end(trials=trials)  # Ctrl-C: Tune ends the experiment with both trials unfinished
    assert statuses() == ("KILLED", {"t_00000": "KILLED", "t_00001": "KILLED"})

    # `search --resume`: a new driver unpickles the callback from Tune's experiment state.
    assert first._client is not None
    assert pickle.loads(pickle.dumps(MLflowTracker(uri, "s3"))).parent_run_id is None
    second = ray.cloudpickle.loads(ray.cloudpickle.dumps(first))
    assert second._client is None
    second._children.clear()  # found again by tags, not from memory
    second.setup(total_num_samples=2)
    assert second.parent_run_id == first.parent_run_id
    for trial in trials:
        second.on_trial_start(iteration=0, trials=trials, trial=trial)
    assert statuses() == ("RUNNING", {"t_00000": "RUNNING", "t_00001": "RUNNING"})
    _report(second, done, 2)
    second.on_trial_complete(iteration=2, trials=trials, trial=done)
    done.status = "TERMINATED"  # as Tune sets it
    second.on_experiment_end(trials=trials)
    assert statuses() == ("KILLED", {"t_00000": "FINISHED", "t_00001": "KILLED"})
    assert names() == {"t_00000": f"{BEST_MARK}t_00000", "t_00001": "t_00001"}  # 0.1 + 0.3 at epoch 2 beats 0.2 + 0.1

    third = ray.cloudpickle.loads(ray.cloudpickle.dumps(second))
    third.setup()
    third.on_trial_start(iteration=0, trials=trials, trial=cut)
    _report(third, cut, 2)
    _report(third, cut, 3)
    third.on_trial_complete(iteration=3, trials=trials, trial=cut)
    cut.status = "TERMINATED"
    third.on_experiment_end(trials=trials)
    assert statuses() == ("FINISHED", {"t_00000": "FINISHED", "t_00001": "FINISHED"})
    assert names() == {"t_00000": "t_00000", "t_00001": f"{BEST_MARK}t_00001"}  # the mark moved to the new best

    parent, children = find_search_runs(uri, "s3")
    assert parent.info.run_id == first.parent_run_id
    assert len(client.search_runs([parent.info.experiment_id])) == 3  # no duplicates
    assert sorted(m.step for m in client.get_metric_history(children[0].info.run_id, PRIMARY_METRIC)) == [1, 2]
    assert sorted(m.step for m in client.get_metric_history(children[1].info.run_id, PRIMARY_METRIC)) == [1, 2, 3]
    assert children[0].data.params == {"x": "0.1"}

    # Issue 12 item 5: a driver restored from an older snapshot retrains a trial from scratch; MLflow
    # keeps each step once (the first value), never 1, 1, 2, 2, 3, 3.
    fourth = ray.cloudpickle.loads(ray.cloudpickle.dumps(first))
    fourth.setup()
    fourth.on_trial_start(iteration=0, trials=trials, trial=cut)
    for epoch in (1, 2, 3):
        _report(fourth, cut, epoch)
    steps = sorted(m.step for m in client.get_metric_history(children[1].info.run_id, PRIMARY_METRIC))
    assert steps == [1, 2, 3]
    assert children[0].data.tags["labeltune.stopped_early"] == "true"
    assert children[1].data.tags["labeltune.stopped_early"] == "false"
    assert {"curves.png", "confusion.png"} <= _artifacts(client, children[1].info.run_id)
    best = _fake_metrics(0.2, BEST_EPOCH)[PRIMARY_METRIC]
    assert parent.data.metrics[f"best/{PRIMARY_METRIC}"] == pytest.approx(best)
    assert parent.data.tags["labeltune.best_trial_id"] == "t_00001"


@pytest.mark.parametrize("snapshot_after", [2, 1])
def test_the_best_epochs_figures_survive_a_resumed_driver(labeltune_home, tmp_path, snapshot_after):
    """`search --resume` gives Tune a fresh tracker and hands it get_state() from the last snapshot. The best
    epoch (2) was reported to the old driver; with snapshot_after=1 the old driver logged it to MLflow after the
    snapshot, and the resumed trial retrains it (MLflow keeps the first value; the tracker keeps its figures)."""
    uri = _uri(labeltune_home)
    trial = _trial("t_00000", 0.1)
    old = MLflowTracker(uri, "s5", max_epochs=EPOCHS)
    old.setup()
    old.on_trial_start(iteration=0, trials=[trial], trial=trial)
    for epoch in (1, 2):
        _report(old, trial, epoch)
        if epoch == snapshot_after:
            state = ray.cloudpickle.loads(ray.cloudpickle.dumps(old.get_state()))  # Tune's callback-state file

    new = MLflowTracker(uri, "s5", max_epochs=EPOCHS)
    new.set_state(state)
    new.setup()
    new.on_trial_start(iteration=0, trials=[trial], trial=trial)
    for epoch in range(snapshot_after + 1, EPOCHS + 1):
        _report(new, trial, epoch)
    new.on_trial_complete(iteration=EPOCHS, trials=[trial], trial=trial)
    assert new.get_state() == {"best": {}}  # written, then dropped

    client = mlflow.MlflowClient(uri)
    _, (child,) = find_search_runs(uri, "s5")
    assert child.data.metrics["best_epoch"] == BEST_EPOCH
    rows = _label_table(client, child.info.run_id, tmp_path)
    assert [(row["epoch"], int(row["tp"])) for row in rows] == [
        (str(BEST_EPOCH), _fake_metrics(0.1, BEST_EPOCH)[f"val/tp/{label}"]) for label in LABELS]


def test_a_dataset_without_folder_or_fingerprint_is_refused(labeltune_home):
    with pytest.raises(ValueError, match="missing \\['fingerprint'\\]"):
        MLflowTracker(_uri(labeltune_home), "s6", dataset={"name": "toy", "folder": "/data"})
    with pytest.raises(ValueError, match="unknown keys \\['count'\\]"):
        MLflowTracker(_uri(labeltune_home), "s6", dataset={"folder": "/data", "fingerprint": "ab", "count": 3})


def test_a_broken_store_warns_and_does_not_stop_the_search(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    tracker = MLflowTracker(f"sqlite:///{blocker}/mlruns/mlflow.db", "s4")
    trial = _trial("t_00000", 0.1)
    with caplog.at_level(logging.WARNING, logger="search.tracking"):
        tracker.setup()
        tracker.on_trial_start(iteration=0, trials=[trial], trial=trial)
        _report(tracker, trial, 1)
        tracker.on_trial_complete(iteration=1, trials=[trial], trial=trial)
        tracker.on_experiment_end(trials=[trial])
    hooks = {r.getMessage().split(" failed in ")[1].split(":")[0] for r in caplog.records if " failed in " in r.getMessage()}
    assert hooks == {"setup", "on_trial_start", "on_trial_result", "on_trial_complete", "on_experiment_end"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_store_refuses_a_dead_server(labeltune_home):
    uri = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(TrackingUnavailable, match="unreachable") as err:
        check_store(uri, timeout_s=2)
    assert uri in str(err.value) and "\n" not in str(err.value)


def test_check_store_refuses_an_unwritable_sqlite_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    uri = f"sqlite:///{blocker}/mlruns/mlflow.db"
    with pytest.raises(TrackingUnavailable) as err:
        check_store(uri)
    assert uri in str(err.value)


def test_check_store_refuses_a_locked_database_and_passes_a_good_one(labeltune_home):
    uri = _uri(labeltune_home)
    check_store(uri)
    holder = sqlite3.connect(labeltune_home / "mlruns" / "mlflow.db")
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(TrackingUnavailable, match="locked") as err:
            check_store(uri, timeout_s=0.2)
        assert uri in str(err.value)
    finally:
        holder.rollback()
        holder.close()
    check_store(uri)


def test_a_trial_the_search_stopper_ended_is_not_counted_as_stopped_early_by_asha():
    from search.stopping import SearchStopper

    stopper = SearchStopper(target=0.7)
    tracker = MLflowTracker("sqlite:///unused.db", "s", max_epochs=4, stopper=stopper)
    cut, ended, full = _trial("a", 0.1), _trial("b", 0.2), _trial("c", 0.3)
    for trial, epochs in ((cut, 1), (ended, 2), (full, 4)):
        trial.last_result = {"training_iteration": epochs}
    stopper.on_trial_complete(0, [], cut)       # ASHA stopped it before the target was reached
    stopper("b", {PRIMARY_METRIC: 0.75})      # b reaches the target: the search ends, b with it
    assert [tracker._stopped_early(t) for t in (cut, ended, full)] == [True, False, False]
    assert tracker._ended_by_stop(ended) and not tracker._ended_by_stop(cut)
    assert MLflowTracker("sqlite:///unused.db", "s", max_epochs=4)._stopped_early(ended)  # no stopper: ASHA's
