"""The Ray Tune function trainable: one trial = one Gym run.

    trainable = tune.with_parameters(run_trial, data=TrialData(...))

The decoded images arrive through `tune.with_parameters`, i.e. Ray's object store:
zero-copy for every trial on a node, shipped by Ray to other nodes, so worker nodes
need no copy of the image folder and no trial decodes a JPEG. Every epoch reports one
metrics dict and a checkpoint; a restarted trial continues from `tune.get_checkpoint()`.
Beside the Gym's metrics each row says where and how the trial ran: `node_id`, its wall-clock
`started_at` and `reported_at`, `data_setup_s` (trial start until the data is on the device)
and `data_cached` (the worker process had the device copy from an earlier trial); Tune adds
the worker's `pid`. This is the only module of `trainable` that imports Ray.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
from ray import tune
from ray.tune import Checkpoint

from trainable import checkpoint as ckpt_io
from trainable.gym import CHECKPOINT_FILE, Gym

log = logging.getLogger(__name__)


@dataclass
class TrialData:
    """What every trial of a search shares: decoded once on the driver, put in the object store once."""

    images: np.ndarray
    """uint8 N x C x 128 x 128"""
    targets: np.ndarray
    """uint8 N x L"""
    labels: list[str]
    fingerprint: str


def assigned_cpus() -> int:
    """CPUs Ray reserved for this trial, so two trials on two cores do not oversubscribe."""
    resources = ray.get_runtime_context().get_assigned_resources()
    return max(1, int(resources.get("CPU", 1)))


def run_trial(config: dict, data: TrialData) -> None:
    """Tune function trainable: config dict -> TrainConfig once -> Gym -> tune.report per epoch."""
    from search.space import to_train_config

    started_at, started = time.time(), time.perf_counter()
    cfg = to_train_config(config)
    if not cfg.threads:
        cfg.threads = assigned_cpus()
    start = None
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            start = ckpt_io.load(Path(folder) / CHECKPOINT_FILE)
        log.info("trial resumes after epoch %d", start["epoch"])
    gym = Gym(cfg, data.images, data.targets, data.labels, data_fingerprint=data.fingerprint, checkpoint=start)
    context = {"node_id": ray.get_runtime_context().get_node_id(), "started_at": started_at,
               "data_setup_s": gym.data_ready - started, "data_cached": gym.data_cached}

    def report(metrics: dict, ckpt_dir: Path | None) -> None:
        # Tune copies the folder into the search's storage before report returns.
        tune.report({**metrics, **context, "reported_at": time.time()}, checkpoint=Checkpoint.from_directory(str(ckpt_dir)))

    gym.fit(report)


def make_trainable(data: TrialData):
    """run_trial with the data bound through the object store."""
    return tune.with_parameters(run_trial, data=data)

