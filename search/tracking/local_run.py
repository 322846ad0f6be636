"""The MLflow run of one `labeltune train` (no Ray, no search): the experiment `local`, apart from the searches'."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
from mlflow.entities import Metric

from search.tracking.names import LOCAL_DATA_TAG, LOCAL_EXPERIMENT, LOCAL_FINGERPRINT_TAG
from search.tracking.runs import open_experiment
from trainable import store


class LocalRun:
    """An MLflow run in LOCAL_EXPERIMENT for one `labeltune train`: its config as params, each epoch's metrics at
    step = epoch, the baselines at step 0, the plots and metrics.json as artifacts."""

    def __init__(self, cfg, dataset, uri: str | None) -> None:
        experiment_id = open_experiment(LOCAL_EXPERIMENT, uri)
        self.client = mlflow.MlflowClient(store.tracking_uri(uri))
        self.run_id = self.client.create_run(
            experiment_id, tags={LOCAL_FINGERPRINT_TAG: dataset.fingerprint, LOCAL_DATA_TAG: str(dataset.root)}
        ).info.run_id
        for key, value in cfg.to_dict().items():
            self.client.log_param(self.run_id, key, value)

    def log_epoch(self, metrics: dict) -> None:
        step, now = int(metrics["epoch"]), int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if k != "epoch"]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_baselines(self, figures: dict) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in figures.items()])

    def finish(self, status: str, artifacts: list[Path]) -> None:
        for path in artifacts:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, status)
