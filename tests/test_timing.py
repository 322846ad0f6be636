"""Where a trial's time goes (issue 24 item 1): the Gym's per-epoch `time/` keys and start-up, their summary
(trainable/timing.py), and what the MLflow tracker makes of them in a real Tune run (TIME_TABLE, two metrics)."""

from __future__ import annotations

import csv
import time
import types

import mlflow
import numpy as np
import pytest
import ray.cloudpickle
from ray import tune

from search.tracking.callback import MLflowTracker
from search.tracking.names import EPOCH_METRICS, TIME_EPOCH_MEDIAN, TIME_TABLE, TIME_TRAIN_SHARE
from search.tracking.runs import find_search_runs
from trainable import checkpoint as ckpt_io
from trainable import timing
from trainable.config import TrainConfig
from trainable.gym import CHECKPOINT_FILE, Gym
from trainable.trial import make_trainable
from trainable.trial_data import TrialData

CONFIG = {"model": "cnn5", "width": 0.25, "image_size": 32, "epochs": 3, "batch_size": 8, "lr": 3e-3,
          "device": "cpu", "threads": 1, "pretrained": False}
GYM_STARTUP = (timing.CUDA_INIT, timing.DATA_TO_DEVICE, timing.MODEL_BUILD, timing.FIRST_BATCHES)
REPORT_PAUSE_S = 0.05
"""each report of the Gym test sleeps this long: the next row's time/report_s holds at least that"""


@pytest.fixture(scope="module")
def data() -> TrialData:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (64, 3, 128, 128), dtype=np.uint8)
    targets = (rng.random((64, 3)) < 0.3).astype(np.uint8)
    return TrialData(images, targets, ["a", "b", "c"], "fp-timing")


def test_every_gym_row_says_where_its_epoch_went(data):
    gym = Gym(TrainConfig.from_dict(CONFIG), data.images, data.targets, data.labels, data_fingerprint=data.fingerprint)
    kept = []

    def report(row, folder):
        kept.append(ckpt_io.load(folder / CHECKPOINT_FILE)["metrics"])
        time.sleep(REPORT_PAUSE_S)

    rows = gym.fit(report)
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    for row in rows:
        phases = [row[key] for key in timing.EPOCH_PHASES]
        assert all(seconds >= 0.0 for seconds in phases), row
        assert sum(phases) <= row[timing.EPOCH] + 1e-6, "the phases are parts of the epoch's wall"
    assert rows[0][timing.REPORT] == 0.0  # nothing was reported before the first epoch
    assert all(row[timing.REPORT] >= REPORT_PAUSE_S for row in rows[1:]), "a row carries the previous report"
    # Start-up once, in the first row; no CUDA on the CPU; the first batches are part of the first epoch's training.
    assert all(rows[0][key] >= 0.0 for key in GYM_STARTUP) and rows[0][timing.CUDA_INIT] == 0.0
    assert rows[0][timing.FIRST_BATCHES] <= rows[0][timing.TRAIN]
    assert not any(key.startswith("time/startup/") for row in rows[1:] for key in row)
    # The checkpoint holds the epoch's metrics, not its timing (an epoch replayed from it was not timed again).
    assert [m["epoch"] for m in kept] == [1, 2, 3] and not any(key.startswith("time/") for m in kept for key in m)

    summary = timing.summarise(rows)
    assert summary.epochs == 3 and summary.epoch_s == sorted(row[timing.EPOCH] for row in rows)[1]
    assert summary.totals[timing.REPORT] == pytest.approx(rows[1][timing.REPORT] + rows[2][timing.REPORT])
    assert 0.0 < summary.train_share < 1.0


def test_summarise_counts_each_start_of_a_trial_and_what_the_tracker_added():
    def row(epoch, start, reported, train, **extra):
        return {"epoch": epoch, "started_at": start, "reported_at": reported, timing.TRAIN: train, timing.EPOCH: 2.0,
                timing.REPORT: 0.5, **extra}

    rows = [
        row(1, 100.0, 104.0, 1.0, **{timing.PLACEMENT: 3.0, timing.MODEL_BUILD: 0.25}),
        row(2, 100.0, 106.0, 1.0),  # the driver was lost after this epoch; the trial started again at 200
        {"epoch": 2, "started_at": 200.0, "reported_at": 201.0},  # epoch 2 replayed from its checkpoint: no timing
        row(3, 200.0, 203.0, 1.0, **{timing.PLACEMENT: 1.0, timing.MODEL_BUILD: 0.25}),
        row(4, 200.0, 205.0, 3.0, **{timing.FINISH: 2.0}),
    ]
    summary = timing.summarise(rows)
    assert summary.epochs == 4 and summary.epoch_s == 2.0
    assert summary.wall_s == pytest.approx((106 - 100) + (205 - 200) + 3.0 + 1.0 + 2.0)
    assert summary.train_share == pytest.approx(6.0 / 17.0)
    assert summary.totals[timing.REPORT] == 2.0 and summary.startup == {timing.PLACEMENT: 4.0, timing.MODEL_BUILD: 0.5}
    assert [r["epoch"] for r in timing.table(rows)] == [1, 2, 3, 4]
    assert timing.summarise([]).train_share is None and timing.summarise([]).epoch_s is None
    # A Gym's own history has no wall clocks: its epochs and its start-up are its wall.
    gym_rows = [{"epoch": 1, timing.TRAIN: 1.0, timing.EPOCH: 3.0, timing.DATA_TO_DEVICE: 1.0}]
    assert timing.summarise(gym_rows).train_share == pytest.approx(0.25)


@pytest.mark.timeout(180)
def test_a_trials_child_run_holds_its_time_table_and_two_summary_metrics(ray_address, labeltune_home, tmp_path, data):
    uri = f"sqlite:///{labeltune_home / 'mlruns' / 'mlflow.db'}"
    tracker = MLflowTracker(uri, "timing", max_epochs=CONFIG["epochs"])
    grid = tune.Tuner(
        make_trainable(data),
        param_space=dict(CONFIG),
        tune_config=tune.TuneConfig(num_samples=1),
        run_config=tune.RunConfig(name="exp", storage_path=str(tmp_path / "runs"), callbacks=[tracker], verbose=0),
    ).fit()
    assert not grid.errors
    results = grid[0].metrics_dataframe.to_dict("records")  # Tune's result rows carry the worker's timing
    assert [r["training_iteration"] for r in results] == [1, 2, 3]
    assert all(r[timing.TRAIN] > 0 and r[timing.EPOCH] > 0 for r in results)
    assert results[0][timing.IMPORT] >= 0 and results[0][timing.MODEL_BUILD] > 0

    client = mlflow.MlflowClient(uri)
    _, (child,) = find_search_runs(uri, "timing")
    local = client.download_artifacts(child.info.run_id, TIME_TABLE, str(tmp_path / "artifacts"))
    with open(local, newline="") as f:
        table = list(csv.DictReader(f))
    assert [row["epoch"] for row in table] == ["1", "2", "3"]
    assert {*timing.EPOCH_PHASES, timing.EPOCH, timing.PLACEMENT, timing.IMPORT, *GYM_STARTUP} <= set(table[0])
    assert float(table[0][timing.PLACEMENT]) > 0 and table[1][timing.PLACEMENT] == ""  # once per start
    assert float(table[2][timing.REPORT]) > 0 and float(table[2][timing.FINISH]) > 0  # the last report: the finish

    time_metrics = {key for key in child.data.metrics if key.startswith("time/")}
    assert time_metrics == {TIME_TRAIN_SHARE, TIME_EPOCH_MEDIAN}
    assert 0.0 < child.data.metrics[TIME_TRAIN_SHARE] < 1.0
    assert child.data.metrics[TIME_EPOCH_MEDIAN] == pytest.approx(sorted(float(r[timing.EPOCH]) for r in table)[1])
    assert [m.step for m in client.get_metric_history(child.info.run_id, TIME_EPOCH_MEDIAN)] == [0]
    assert client.get_metric_history(child.info.run_id, timing.TRAIN) == []  # no time/ history per epoch
    assert not any(key.startswith("time/") for key in EPOCH_METRICS)
    assert [m.step for m in client.get_metric_history(child.info.run_id, "val/micro_f1")] == [1, 2, 3]


def _timed_result(epoch: int, started_at: float) -> dict:
    """A trained epoch's result as the trainable reports it (the figures the tracker reads, made up)."""
    result = {"epoch": epoch, "training_iteration": epoch, "val/micro_f1": 0.1 * epoch, "started_at": started_at,
              "reported_at": started_at + epoch, timing.EPOCH: 1.0, **{key: 0.1 for key in timing.EPOCH_PHASES}}
    return {**result, **({timing.MODEL_BUILD: 0.5} if epoch == 1 else {})}


def _read_table(client: mlflow.MlflowClient, run_id: str, folder) -> list[dict]:
    with open(client.download_artifacts(run_id, TIME_TABLE, str(folder)), newline="") as f:
        return list(csv.DictReader(f))


def test_the_timing_rows_survive_a_resumed_driver_and_replayed_epochs_add_none(labeltune_home, tmp_path):
    uri = f"sqlite:///{labeltune_home / 'mlruns' / 'mlflow.db'}"
    trial = types.SimpleNamespace(trial_id="t_00000", config={"x": 0.1}, last_result={}, status="PENDING", error_file=None)

    def report(tracker, result):
        tracker.on_trial_result(iteration=0, trials=[trial], trial=trial, result=result)
        trial.last_result = result

    old = MLflowTracker(uri, "timing-resume", max_epochs=3)
    old.setup()
    old.on_step_begin(iteration=0, trials=[trial])  # first seen PENDING: the placement starts
    trial.status = "RUNNING"
    old.on_trial_start(iteration=0, trials=[trial], trial=trial)
    first_start = time.time() - 100.0  # the worker's clock: the tracker times the finish against it
    for epoch in (1, 2):
        report(old, _timed_result(epoch, started_at=first_start))
    state = ray.cloudpickle.loads(ray.cloudpickle.dumps(old.get_state()))  # Tune's snapshot; then the driver is lost

    new = MLflowTracker(uri, "timing-resume", max_epochs=3)
    new.set_state(state)
    new.setup()
    new.on_trial_start(iteration=0, trials=[trial], trial=trial)
    second_start = first_start + 50.0  # the start after the resume: epoch 2 replayed, 3 trained
    report(new, {"epoch": 2, "training_iteration": 2, "val/micro_f1": 0.2, "started_at": second_start,
                 "reported_at": second_start + 0.5})
    report(new, _timed_result(3, started_at=second_start))
    new.on_trial_complete(iteration=3, trials=[trial], trial=trial)
    assert new.get_state() == {"best": {}}  # written, then dropped

    client = mlflow.MlflowClient(uri)
    _, (child,) = find_search_runs(uri, "timing-resume")
    table = _read_table(client, child.info.run_id, tmp_path)
    assert [row["epoch"] for row in table] == ["1", "2", "3"]  # epoch 2 keeps the timing it was trained with
    assert float(table[0][timing.PLACEMENT]) >= 0 and table[1][timing.PLACEMENT] == table[2][timing.PLACEMENT] == ""
    assert table[0][timing.MODEL_BUILD] == "0.5" and table[2][timing.FINISH] != "" and table[1][timing.FINISH] == ""
    # Two starts, entry to last report 2 s and 3 s, plus the placement and the finish the tracker measured.
    extra = float(table[0][timing.PLACEMENT]) + float(table[2][timing.FINISH])
    assert child.data.metrics[TIME_TRAIN_SHARE] == pytest.approx(0.3 / (2.0 + 3.0 + extra))
    assert child.data.metrics[TIME_EPOCH_MEDIAN] == 1.0
