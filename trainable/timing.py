"""Where a trial's time goes: the `time/` keys of its result rows, and a summary of them (standard library only).

    watch = Stopwatch(); train(); watch.lap(TRAIN); validate(); watch.lap(VAL_FORWARD)   # watch.laps: key -> seconds
    summary = summarise(rows)        # rows: a trial's results (Tune's, the tracker's, or a Gym's history)
    summary.train_share, summary.epoch_s, summary.totals[CHECKPOINT]

Every row the Gym reports holds EPOCH_PHASES and EPOCH: seconds on `time.perf_counter`, with no extra
device syncs (each phase ends where the Gym waits for the device anyway). A row cannot hold its own
report's duration, so REPORT is the previous epoch's report (0 in the first epoch a Gym trains);
EPOCH spans from the previous report's call to this one's, so the phases of a row add up to at most
its EPOCH. The last report of a trial is in no row (Tune takes no result after the last epoch, and an
extra one would be an extra `training_iteration`); the MLflow tracker, on the driver, measures
FINISH instead. The first row a Gym reports also holds the STARTUP keys of that start (a resumed
trial starts again); PLACEMENT and FINISH are the tracker's, in its copy of the rows only.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Iterable

TRAIN = "time/train_s"
"""the epoch's training loop (Gym.train_one_epoch), ended by its one read of the loss"""
VAL_FORWARD = "time/val_forward_s"
"""the validation split's forward passes and their copy to the host (Gym.evaluate_split)"""
METRICS = "time/metrics_s"
"""MetricsCollector.compute over the validation outputs (scikit-learn, on the host)"""
CHECKPOINT = "time/checkpoint_s"
"""writing the epoch's checkpoint (Gym.save: state dicts to the host, torch.save, atomic rename)"""
REPORT = "time/report_s"
"""the PREVIOUS epoch's report call, until it returned: in a trial, tune.report, which copies the checkpoint
folder to the search's storage and waits for the driver to take the result and ask for the next; 0 in the first"""
EPOCH = "time/epoch_s"
"""wall seconds from the previous report's call (or the start of Gym.fit) to this epoch's: >= the sum of EPOCH_PHASES"""
EPOCH_PHASES = (TRAIN, VAL_FORWARD, METRICS, CHECKPOINT, REPORT)

IMPORT = "time/startup/import_s"
"""this worker process importing the trainable (torch, scikit-learn); 0 when an earlier trial of the process did"""
CUDA_INIT = "time/startup/cuda_init_s"
"""creating the CUDA context (torch.cuda.init and a first allocation, synchronised); 0 on the CPU or when the process had one"""
DATA_TO_DEVICE = "time/startup/data_to_device_s"
"""the images, targets and split indices to the device, synchronised; ~0 when the process had them cached"""
MODEL_BUILD = "time/startup/model_build_s"
"""building the model on the device (pretrained weights read), loss and optimizer, a resumed trial's state loaded"""
FIRST_BATCHES = "time/startup/first_batches_s"
"""the first FIRST_BATCH_COUNT training batches of the first epoch a Gym trains, synchronised on CUDA (cuDNN
autotunes each new shape there); part of that epoch's TRAIN, not added to it"""
FIRST_BATCH_COUNT = 2
PLACEMENT = "time/startup/placement_s"
"""(tracker, driver clock) the trial PENDING until Tune started it: resources, worker process, imports, actor set-up"""
FINISH = "time/finish_s"
"""(tracker) the trial's last report call until the driver saw the trial end: that report's copy and round trip,
the trial's exit; the driver's clock minus the worker's `reported_at` (the same clock on one node)"""
STARTUP = (PLACEMENT, IMPORT, CUDA_INIT, DATA_TO_DEVICE, MODEL_BUILD, FIRST_BATCHES)
"""once per start of a trial, in the first row it trains after that start"""
COLUMNS = ("epoch", *EPOCH_PHASES, EPOCH, *STARTUP, FINISH, "started_at", "reported_at")
"""a trial's timing table (the tracker's time_phases.csv): the epoch, the time/ keys, the trainable's wall clocks"""


class Stopwatch:
    """Consecutive phases on `time.perf_counter`: `lap(key)` records the seconds since the previous lap (or the start)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, key: str) -> float:
        """Record `key`'s seconds; returns the time the lap ended (a perf_counter value)."""
        now = time.perf_counter()
        self.laps[key] = self.laps.get(key, 0.0) + now - self.last
        self.last = now
        return now


@dataclass(frozen=True)
class TimeSummary:
    """One trial's time, summed over the rows `summarise` was given."""

    epochs: int
    """rows with timing (epochs replayed from a checkpoint have none)"""
    wall_s: float
    """the trial's wall seconds (see `summarise`)"""
    train_share: float | None
    """TRAIN seconds / wall_s; None without a wall"""
    epoch_s: float | None
    """the median EPOCH; None without timed rows"""
    totals: dict[str, float] = field(default_factory=dict)
    """EPOCH_PHASES, EPOCH and FINISH key -> seconds summed over the rows"""
    startup: dict[str, float] = field(default_factory=dict)
    """STARTUP key -> seconds summed over the trial's starts (the keys some row holds)"""


def timed_rows(rows: Iterable[dict]) -> list[dict]:
    """The rows that carry timing, in epoch order (a later row of the same epoch, a retrained one, wins)."""
    by_epoch = {}
    for row in rows:
        if _number(row.get(TRAIN)):
            by_epoch[row.get("epoch", row.get("training_iteration", len(by_epoch) + 1))] = row
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def summarise(rows: Iterable[dict]) -> TimeSummary:
    """A trial's train share, median epoch seconds and per-phase totals from its result rows.

    The wall of a trial is, per start (rows grouped by the trainable's `started_at`), from the trainable
    function's entry to its last report call (`reported_at`), plus PLACEMENT and FINISH where the rows hold
    them (the tracker's do; Tune's result rows do not). Rows without those wall clocks (a Gym's own history)
    give EPOCH summed plus the Gym's start-up (CUDA_INIT, DATA_TO_DEVICE, MODEL_BUILD).
    """
    timed = timed_rows(rows)
    totals = {key: sum(_seconds(row, key) for row in timed) for key in (*EPOCH_PHASES, EPOCH, FINISH)}
    startup = {key: sum(_seconds(row, key) for row in timed) for key in STARTUP if any(key in row for row in timed)}
    last_report: dict[float, float] = {}  # started_at -> the latest reported_at of that start
    for row in timed:
        start, reported = row.get("started_at"), row.get("reported_at")
        if _number(start) and _number(reported):
            last_report[start] = max(last_report.get(start, start), reported)
    if last_report:
        wall = sum(end - start for start, end in last_report.items()) + startup.get(PLACEMENT, 0.0) + totals[FINISH]
    else:
        wall = totals[EPOCH] + sum(startup.get(key, 0.0) for key in (CUDA_INIT, DATA_TO_DEVICE, MODEL_BUILD))
    epochs = [row[EPOCH] for row in timed if _number(row.get(EPOCH))]
    return TimeSummary(
        epochs=len(timed), wall_s=wall, train_share=totals[TRAIN] / wall if wall > 0 else None,
        epoch_s=statistics.median(epochs) if epochs else None, totals=totals, startup=startup,
    )


def table(rows: Iterable[dict]) -> list[dict]:
    """The timed rows restricted to COLUMNS (a column no row holds is left out): the trial's timing table."""
    timed = timed_rows(rows)
    columns = [key for key in COLUMNS if any(key in row for row in timed)]
    return [{key: row.get(key, "") for key in columns} for row in timed]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _seconds(row: dict, key: str) -> float:
    value = row.get(key)
    return float(value) if _number(value) else 0.0
