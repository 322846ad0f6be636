"""The MLflow run of one `labeltune train` (no Ray, no search): the experiment `local`, apart from the searches'."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param

from search.tracking.columns import baseline_metrics, trial_params, write_baseline_table
from search.tracking.names import BASELINE_TABLE, LOCAL_DATA_TAG, LOCAL_EXPERIMENT, LOCAL_FINGERPRINT_TAG
from search.tracking.runs import open_experiment
from trainable import store


class LocalRun:
    """An MLflow run in LOCAL_EXPERIMENT for one `labeltune train`: its config as params (as a trial's: 4 significant
    figures, log10 twins), each epoch's metrics at step = epoch, the baselines as a search's parent holds them (a few
    metrics at step 0, BASELINE_TABLE), the plots and metrics.json as artifacts."""

    def __init__(self, cfg, dataset, uri: str | None) -> None:
        experiment_id = open_experiment(LOCAL_EXPERIMENT, uri)
        self.client = mlflow.MlflowClient(store.tracking_uri(uri))
        self.run_id = self.client.create_run(
            experiment_id, tags={LOCAL_FINGERPRINT_TAG: dataset.fingerprint, LOCAL_DATA_TAG: str(dataset.root)}
        ).info.run_id
        params = trial_params(cfg.to_dict(), None)
        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in params.items()])

    def log_epoch(self, metrics: dict) -> None:
        step, now = int(metrics["epoch"]), int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if k != "epoch"]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_baselines(self, figures: dict) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, 0) for k, v in baseline_metrics(figures).items()])
        with tempfile.TemporaryDirectory() as tmp:
            self.client.log_artifact(self.run_id, str(write_baseline_table(figures, Path(tmp) / BASELINE_TABLE)))

    def finish(self, status: str, artifacts: list[Path]) -> None:
        for path in artifacts:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, status)
