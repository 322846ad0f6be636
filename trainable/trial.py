"""The Ray Tune function trainable: one trial = one Gym run.

    trainable = make_trainable(TrialData(...), to_config, rungs=(1, 3))   # to_config: Tune's config dict -> TrainConfig

The decoded images arrive through `tune.with_parameters`, i.e. Ray's object store:
zero-copy for every trial on a node, shipped by Ray to other nodes, so worker nodes
need no copy of the image folder and no trial decodes a JPEG.

Every epoch reports one metrics dict and a checkpoint folder to Tune, but only some folders hold
weights (trainable/checkpoint.py `needs_weights`): the epoch that beats the trial's best
PRIMARY_METRIC so far, ASHA's rung epochs (`rungs`, from the search: trainable/ does not import
search/) and the last epoch write the model and optimizer state; every other epoch reports a folder
with only its record (checkpoint.RECORD_FILE: epoch and metrics, a few KB). So Tune, ASHA, MLflow and
a replay see every epoch, and a promotion, which takes a trial's best checkpoint by PRIMARY_METRIC,
always finds weights there.

A restarted trial (a lost node, a failure, `search --resume`) starts from the last epoch Tune has
(`tune.get_checkpoint()`, weights or not), reports the epochs its folder holds beyond that
(`replay_checkpoints`: a lost driver's newer epochs), and trains on from its latest checkpoint with
the optimizer state (a rung or the last epoch): the epochs after it that were reported already are
trained again without being reported (each epoch is seeded), so no epoch is reported twice and
MLflow gets each step once. A finished trial is never trained again. How many epochs a resume trains
again: with g_0 = 0 (from scratch) < g_1 < ... < g_k = last the rungs and the last epoch, at most
max(g_{i+1} - g_i) - 1 reported epochs, plus, as ever, the epoch the kill interrupted: at most 1
with the default 5 epochs and rungs 1, 3; up to last - 1 for a trial without rungs
(grace_period = epochs).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ray
from ray import tune
from ray.tune import Checkpoint

from trainable import checkpoint as ckpt_io
from trainable import timing
from trainable.config import PRIMARY_METRIC, WORST_SCORE, TrainConfig, best_score
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


@dataclass
class Resume:
    """Where a (re)started trial stands once the epochs in its folder that Tune lacked are replayed."""

    checkpoint: dict | None = None
    """the latest checkpoint up to `reported` with the optimizer state: the Gym continues from it"""
    reported: int = 0
    """the last epoch Tune has now: the Gym trains the epochs after `checkpoint` up to it again, unreported"""
    best: float = WORST_SCORE
    """the best PRIMARY_METRIC of the epochs up to `reported`: a later epoch writes weights only when it beats it"""


def run_trial(config: dict, data: TrialData, to_config: Callable[[dict], TrainConfig] = TrainConfig.from_dict,
              hold: Hold | None = None, finished: frozenset[str] = frozenset(), rungs: tuple[int, ...] = ()) -> None:
    """Tune function trainable: config dict -> TrainConfig once (`to_config`) -> Gym -> tune.report per epoch.

    `finished`: trial ids that the kept study holds as finished while Tune's saved state (older, after a lost
    driver) does not: such a trial replays its epochs from disk and ends, it never trains again.
    `rungs`: ASHA's rung epochs, which always write weights (module docstring).
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

    # Tune's saved state can be older than the trial's folder (a driver killed between two snapshots):
    # epochs already on disk are reported again from their records instead of being trained again.
    known, _ = restored_checkpoint(load_weights=False)
    resume = replay_checkpoints(Path(trial_dir), known, report, finished=trial_id in finished)
    if trial_id in finished:
        log.info("trial %s had finished before the driver was lost: its epochs were replayed, none trained", trial_id)
        return
    if resume.reported >= cfg.epochs:
        log.info("trial %s had reported all its %d epochs", trial_id, cfg.epochs)
        return
    if resume.checkpoint is None and known:  # nothing to resume from in the folder (storage that is no local path)
        resume.checkpoint = restored_checkpoint(load_weights=True)[1]
    if resume.checkpoint is not None:
        log.info("trial resumes after epoch %d (reported up to %d)", resume.checkpoint["epoch"], resume.reported)
    gym = Gym(cfg, data.images, data.targets, data.labels, data_fingerprint=data.fingerprint, checkpoint=resume.checkpoint)
    context.update(data_setup_s=gym.data_ready - started, data_cached=gym.data_cached)
    gym.startup[timing.IMPORT] = take_import_seconds()
    gym.fit(report, rungs=rungs, reported=resume.reported, best=resume.best)


def restored_checkpoint(load_weights: bool) -> tuple[int, dict | None]:
    """(epoch, its checkpoint when it holds the optimizer state and `load_weights`) of the checkpoint Tune restored
    the trial from; (0, None) when Tune restored none."""
    restored = tune.get_checkpoint()
    if restored is None:
        return 0, None
    with restored.as_directory() as folder:
        record = ckpt_io.load_record(folder)
        return record.epoch, ckpt_io.load(folder) if load_weights and record.optimizer else None


def epoch_records(trial_dir: Path) -> dict[int, tuple[Path, ckpt_io.EpochRecord]]:
    """epoch -> (folder, record) of the whole reported folders in `trial_dir` (one cut short by a kill is left out)."""
    on_disk = {}
    for folder in trial_dir.glob("checkpoint_*"):
        try:
            record = ckpt_io.load_record(folder)
        except ckpt_io.CheckpointError:
            continue  # missing or half written
        on_disk[record.epoch] = (folder, record)
    return on_disk


def latest_resumable(on_disk: dict[int, tuple[Path, ckpt_io.EpochRecord]], until: int) -> dict | None:
    """The latest checkpoint with the optimizer state of the epochs up to `until` that loads; None when none."""
    for epoch in sorted((e for e, (_, record) in on_disk.items() if record.optimizer and e <= until), reverse=True):
        try:
            return ckpt_io.load(on_disk[epoch][0] / CHECKPOINT_FILE)
        except ckpt_io.CheckpointError as exc:
            log.warning("epoch %d's weights are unusable, an earlier epoch's are taken: %s", epoch, exc)
    return None


def replay_checkpoints(trial_dir: Path, known: int, report: Callable[[dict, Path], None],
                       finished: bool = False) -> Resume:
    """Report the epochs after `known` (the last one Tune has) whose records are in `trial_dir`, in order; return
    where the trial stands: the last epoch reported, the best score up to it, the checkpoint to continue from (not
    when finished).

    Each record holds its epoch's metrics, so Tune (and ASHA, and MLflow, which skips steps it has) sees the
    same results it would have seen before the kill; a replayed epoch's folder is reported as it was, weights
    or not. Only an unbroken run of epochs is replayed; a folder cut short by the kill ends the run. Every
    replayed epoch but the last of an unfinished trial (`finished` False) carries DECIDED: the lost driver had
    let the trial go on past it (or end), so ASHA does not decide on it again.
    """
    on_disk, done = epoch_records(trial_dir), known
    while done + 1 in on_disk:
        done += 1
    scores = (ckpt_io.record_score(record, PRIMARY_METRIC) for e, (_, record) in on_disk.items() if e <= done)
    # Read before the first report: Tune may write a replayed epoch over a folder of the run.
    resume = Resume(None if finished else latest_resumable(on_disk, done), done, best_score(scores))
    for epoch in range(known + 1, done + 1):
        folder, record = on_disk[epoch]
        with tempfile.TemporaryDirectory(prefix="labeltune-replay-") as tmp:
            for name in (ckpt_io.RECORD_FILE, CHECKPOINT_FILE) if record.weights else (ckpt_io.RECORD_FILE,):
                if (folder / name).exists():  # an older labeltune's folder has no record: Tune's copy gets none
                    shutil.copy2(folder / name, Path(tmp) / name)
            report({**record.metrics, DECIDED: finished or epoch < done}, Path(tmp))
        log.info("epoch %d replayed from %s", epoch, folder)
    return resume


def make_trainable(data: TrialData, to_config: Callable[[dict], TrainConfig] = TrainConfig.from_dict,
                   finished: frozenset[str] = frozenset(), rungs: tuple[int, ...] = ()):
    """run_trial with the data bound through the object store, the search's config translation, the trials
    a resume must not train again, ASHA's rung epochs (which write weights), and the test-only hold of
    $LABELTUNE_TEST_HOLD (read here, on the driver)."""
    return tune.with_parameters(run_trial, data=data, to_config=to_config, hold=Hold.from_env(), finished=finished,
                                rungs=tuple(rungs))

