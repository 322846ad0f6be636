"""The Ray Tune function trainable: one trial = one Gym run.

    trainable = make_trainable(TrialData(...), to_config)   # to_config: Tune's config dict -> TrainConfig

The decoded images arrive through `tune.with_parameters`, i.e. Ray's object store:
zero-copy for every trial on a node, shipped by Ray to other nodes, so worker nodes
need no copy of the image folder and no trial decodes a JPEG. Every epoch reports one
metrics dict and a checkpoint; a restarted trial continues from `tune.get_checkpoint()`.
Beside the Gym's metrics each row says where and how the trial ran: `node_id`, its wall-clock
`started_at` and `reported_at`, `data_setup_s` (trial start until the data is on the device)
and `data_cached` (the worker process had the device copy from an earlier trial); Tune adds
the worker's `pid`. Where a trained epoch's time went is in its `time/` keys (trainable/timing.py:
the Gym's phases, `time/report_s` the previous epoch's tune.report; the first row after a start
also the start-up, with `time/startup/import_s` measured here); epochs replayed from a checkpoint
have none. This is the only module of `trainable` that imports Ray. How a search
names its parameters (`lr_<optimizer>`) is the search's business: it passes `to_config`.
"""

from __future__ import annotations

import time

# Before the other imports: they are what the clock measures (a Ray worker imports this module, and torch with
# it, when it unpickles the trainable).
_IMPORT_START = time.perf_counter()

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import ray
from ray import tune
from ray.tune import Checkpoint

from trainable import checkpoint as ckpt_io
from trainable import timing
from trainable.config import TrainConfig
from trainable.gym import CHECKPOINT_FILE, Gym
from trainable.hold import Hold
from trainable.trial_data import TrialData

log = logging.getLogger(__name__)

_import_s = time.perf_counter() - _IMPORT_START
"""seconds this process spent importing the trainable (torch, scikit-learn); the first trial of the process reports it"""

DECIDED = "replayed_decided"
"""result key: a replayed epoch whose scheduler decision the lost driver already made (the trial went on past
it, or it had finished); the search's ASHA lets it continue instead of deciding again on other trials' newer scores"""


def assigned_cpus() -> int:
    """CPUs Ray reserved for this trial, so two trials on two cores do not oversubscribe."""
    resources = ray.get_runtime_context().get_assigned_resources()
    return max(1, int(resources.get("CPU", 1)))


def take_import_seconds() -> float:
    """The process's import of the trainable in seconds, once: 0.0 for the later trials of a reused worker."""
    global _import_s
    seconds, _import_s = _import_s, 0.0
    return seconds


def storage_trial_dir() -> str:
    """The trial's folder in the search's storage, where Tune persists its checkpoints (Ray 2.60).

    Not `get_trial_dir()`: since Ray 2.7 that is the trial's local working directory, which holds no
    checkpoints, so a replay that looked there found none and a resumed trial trained its epochs again.
    """
    return str(tune.get_context().get_storage().trial_fs_path)


def run_trial(config: dict, data: TrialData, to_config: Callable[[dict], TrainConfig] = TrainConfig.from_dict,
              hold: Hold | None = None, finished: frozenset[str] = frozenset()) -> None:
    """Tune function trainable: config dict -> TrainConfig once (`to_config`) -> Gym -> tune.report per epoch.

    `finished`: trial ids that the kept study holds as finished while Tune's saved state (older, after a lost
    driver) does not: such a trial replays its epochs from disk and ends, it never trains again.
    `hold`: the test-only hook of trainable/hold.py.
    """
    started_at, started = time.time(), time.perf_counter()
    cfg = to_config(config)
    if not cfg.threads:
        cfg.threads = assigned_cpus()
    context = {"node_id": ray.get_runtime_context().get_node_id(), "started_at": started_at}
    trial_dir, trial_id = storage_trial_dir(), tune.get_context().get_trial_id()
    order = hold.claim() if hold is not None else 0

    def report(metrics: dict, ckpt_dir: Path | None) -> None:
        # Tune copies the folder into the search's storage before report returns.
        tune.report({**metrics, **context, "reported_at": time.time()}, checkpoint=Checkpoint.from_directory(str(ckpt_dir)))
        if hold is not None and order == hold.trial and metrics.get("epoch") == hold.epoch:
            hold.wait(trial_dir)

    start = None
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            start = ckpt_io.load(Path(folder) / CHECKPOINT_FILE)
    # Tune's saved state can be older than the trial's folder (a driver killed between two snapshots):
    # epochs already on disk are reported again from their checkpoints instead of being trained again.
    start = replay_checkpoints(Path(trial_dir), start, report, finished=trial_id in finished)
    if trial_id in finished:
        log.info("trial %s had finished before the driver was lost: its epochs were replayed, none trained", trial_id)
        return
    if start is not None:
        log.info("trial resumes after epoch %d", start["epoch"])
    gym = Gym(cfg, data.images, data.targets, data.labels, data_fingerprint=data.fingerprint, checkpoint=start)
    context.update(data_setup_s=gym.data_ready - started, data_cached=gym.data_cached)
    gym.startup[timing.IMPORT] = take_import_seconds()
    gym.fit(report)


def replay_checkpoints(trial_dir: Path, start: dict | None, report: Callable[[dict, Path], None],
                       finished: bool = False) -> dict | None:
    """Report the epochs after `start` whose checkpoints are in `trial_dir`, in order; return the latest checkpoint.

    Each checkpoint holds its epoch's metrics, so Tune (and ASHA, and MLflow, which skips
    steps it has) sees the same results it would have seen before the kill. Only an unbroken
    run of epochs is replayed; a checkpoint cut short by the kill ends the run. Every replayed
    epoch but the last of an unfinished trial (`finished` False) carries DECIDED: the lost
    driver had let the trial go on past it (or end), so ASHA does not decide on it again.
    """
    done = start["epoch"] if start is not None else 0
    on_disk = {}  # epoch -> (folder, metrics): one checkpoint's weights in memory at a time, not every epoch's
    for folder in trial_dir.glob("checkpoint_*"):
        try:
            ckpt = ckpt_io.load(folder / CHECKPOINT_FILE)
        except ckpt_io.CheckpointError:
            continue  # missing or half written
        on_disk[int(ckpt["epoch"])] = (folder, dict(ckpt["metrics"]))
        del ckpt
    while done + 1 in on_disk:
        folder, metrics = on_disk[done + 1]
        with tempfile.TemporaryDirectory(prefix="labeltune-replay-") as tmp:
            shutil.copy2(folder / CHECKPOINT_FILE, Path(tmp) / CHECKPOINT_FILE)  # Tune may write over `folder`
            last = done + 2 not in on_disk
            if last:  # the last one replayed: the trial goes on from it
                start = ckpt_io.load(Path(tmp) / CHECKPOINT_FILE)
            report({**metrics, DECIDED: finished or not last}, Path(tmp))
        log.info("epoch %d replayed from %s", done + 1, folder)
        done += 1
    return start


def make_trainable(data: TrialData, to_config: Callable[[dict], TrainConfig] = TrainConfig.from_dict,
                   finished: frozenset[str] = frozenset()):
    """run_trial with the data bound through the object store, the search's config translation, the trials
    a resume must not train again, and the test-only hold of $LABELTUNE_TEST_HOLD (read here, on the driver)."""
    return tune.with_parameters(run_trial, data=data, to_config=to_config, hold=Hold.from_env(), finished=finished)

