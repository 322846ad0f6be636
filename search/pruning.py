"""Keep a finished trial's best and latest checkpoints, delete the rest, without breaking resume.

Why not Tune's `CheckpointConfig(num_to_keep=2)`: Tune deletes the surplus checkpoint the
moment a new one is registered, but its experiment snapshot (what `--resume` restores
from) is written later. A driver killed in between leaves a snapshot pointing at a
deleted checkpoint, and that trial then fails on resume with "Could not recover from
checkpoint as it does not exist on storage anymore" (ray-project/ray#27790; our
kill-and-resume test hit it). So Tune keeps every checkpoint while a trial runs, and
this callback prunes a trial only once it has finished AND a snapshot written after
that is on storage, so no snapshot can point at what it deletes.

Most of a trial's checkpoints hold only the epoch's record, no weights (trainable/trial.py); the
best by the metric always has weights when the metric is PRIMARY_METRIC: the first epoch to reach
the trial's best score wrote them (it beat every epoch before it), and the best kept here is that
first one, as in Tune's `Result.get_best_checkpoint`, which promotion uses: Tune lists equal scores
in the order they were reported and `max` keeps the first. A NaN score is never the best.
"""

from __future__ import annotations

import logging
import time

import pyarrow.fs
from ray.tune import Callback

log = logging.getLogger(__name__)


class CheckpointPruner(Callback):
    def __init__(self, metric: str, mode: str) -> None:
        self.metric = metric
        self.mode = mode
        self.pending: list[tuple[object, float]] = []
        self.last_step = 0.0
        self.pruned: set[str] = set()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.pending.append((trial, time.time()))

    def on_step_end(self, iteration, trials, **info):
        self.last_step = time.time()
        if not self.pending:
            return
        saved = self._last_snapshot_time(self.pending[0][0])
        ready = [t for t, finished in self.pending if finished < saved]
        self.pending = [(t, finished) for t, finished in self.pending if finished >= saved]
        for trial in ready:
            self.prune(trial)

    def on_experiment_end(self, trials, **info):
        """Tune writes a final snapshot before this hook when the search ended normally (not on a crash).

        Then every finished trial can be pruned, those finished under an earlier driver too.
        """
        if not trials or self._last_snapshot_time(trials[0]) < self.last_step:
            return  # no final snapshot: the driver is failing, prune nothing
        for trial in trials:
            if trial.status == "TERMINATED":
                self.prune(trial)

    def _last_snapshot_time(self, trial) -> float:
        storage = trial.storage
        try:
            infos = storage.storage_filesystem.get_file_info(pyarrow.fs.FileSelector(storage.experiment_fs_path))
        except OSError:
            return 0.0
        times = [i.mtime.timestamp() for i in infos if i.base_name.startswith("experiment_state") and i.mtime]
        return max(times, default=0.0)

    def prune(self, trial) -> None:
        """Delete every checkpoint of `trial` but the best by the metric and the latest."""
        if trial.trial_id in self.pruned:
            return
        self.pruned.add(trial.trial_id)
        manager = trial.run_metadata.checkpoint_manager
        results = list(manager.best_checkpoint_results)
        scored = [r for r in results if isinstance(r.metrics.get(self.metric), (int, float))
                  and r.metrics[self.metric] == r.metrics[self.metric]]  # NaN never wins (max would keep one first)
        if not scored:
            return
        sign = 1 if self.mode == "max" else -1
        best = max(scored, key=lambda r: sign * r.metrics[self.metric])  # the first of equal scores: the earliest
        latest = manager.latest_checkpoint_result
        keep = {best.checkpoint.path, latest.checkpoint.path if latest else None}
        for result in results:
            checkpoint = result.checkpoint
            if checkpoint.path in keep:
                continue
            try:
                checkpoint.filesystem.delete_dir(checkpoint.path)
            except FileNotFoundError:
                continue  # pruned by an earlier driver of this search
            except OSError as exc:
                log.warning("could not delete %s: %s", checkpoint.path, exc)
