"""How each trial of a search ended, decided once on the driver and written to every store.

    outcome_of(trial, max_epochs=10, stopper=stopper).outcome    # "stopped_early"
    count(outcomes)     # {"finished": 5, "stopped_early": 9, "ended_by_stop": 0, "failed": 1, ...}

search/stopping.py's `Outcomes` callback applies it to every trial when the experiment ends.
Standard library only: `labeltune searches` and `report` read these names without Ray.

The record, the summary, `searches`, `report`, the kept Optuna study (its user attribute
OUTCOMES_ATTR: Optuna refuses attributes on a finished trial) and the MLflow parent run all show these figures; they agree because they are
computed here once, when the experiment ends, from Tune's own trial states:

    finished        ran every epoch
    stopped_early   ASHA stopped it before the last epoch
    ended_by_stop   still running when --target or --plateau ended the search
    failed          raised an error (Tune's ERROR)
    never_ran       suggested, but the search ended before it started
    unfinished      neither ended nor failed: the search was interrupted; a resume continues it

A trial's score is its best epoch's PRIMARY_METRIC (as promote ranks it); Optuna is told the
last epoch's, as Ray's OptunaSearch does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from trainable.config import PRIMARY_METRIC, PRIMARY_MODE  # not trainable.metrics: it imports torch

OUTCOMES = ("finished", "stopped_early", "ended_by_stop", "failed", "never_ran", "unfinished")
COMPLETED = ("finished", "stopped_early", "ended_by_stop")
"""outcomes Optuna holds as COMPLETE (the others are FAIL, or RUNNING while unfinished)"""
OUTCOMES_ATTR = "labeltune_outcomes"
"""the kept study's user attribute: Tune trial id -> {"outcome", "best"} (search/study.py settle)"""


@dataclass
class TrialOutcome:
    trial_id: str
    outcome: str
    epochs: int = 0
    """epochs reported"""
    best: float | None = None
    """the best epoch's PRIMARY_METRIC"""
    last: float | None = None
    """the last epoch's PRIMARY_METRIC (what Optuna is told)"""

    def to_dict(self) -> dict:
        return asdict(self)


def _score(trial: Any, key: str) -> float | None:
    value = (getattr(trial, "metric_analysis", None) or {}).get(PRIMARY_METRIC, {}).get(key)
    return float(value) if isinstance(value, (int, float)) and value == value else None


def outcome_of(trial: Any, max_epochs: int, stopper: Any = None, ended: bool = True) -> TrialOutcome:
    """The outcome of one Tune trial from its status, its last result and the search's stopper.

    `ended`: Tune completed the trial (its on_trial_complete ran, now or under an earlier driver). A
    trial TERMINATED without it was ended by the experiment's end: by --target/--plateau when the
    stopper fired, else by an interruption (Ctrl-C), which leaves it unfinished for a resume.
    """
    status = str(getattr(trial, "status", ""))
    epochs = int((getattr(trial, "last_result", None) or {}).get("training_iteration") or 0)
    stopped = stopper is not None and bool(stopper.reason)
    if status == "ERROR":
        outcome = "failed"
    elif status != "TERMINATED" or not (ended or stopped):
        outcome = "unfinished"
    elif epochs == 0:
        outcome = "never_ran"
    elif ended and epochs >= max_epochs:
        outcome = "finished"
    elif stopped and stopper.ended(str(trial.trial_id)):
        outcome = "ended_by_stop"
    else:
        outcome = "stopped_early"
    best = _score(trial, "max" if PRIMARY_MODE == "max" else "min")
    return TrialOutcome(str(trial.trial_id), outcome, epochs, best, _score(trial, "last"))


def count(outcomes: dict[str, TrialOutcome]) -> dict[str, int]:
    """Trials per outcome, every outcome named (0 when none)."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for item in outcomes.values():
        counts[item.outcome] += 1
    return counts


def rank_key(value: float, trial_id: str) -> tuple:
    """Sort key, best first: the better score, and on a tie the smaller trial id (every store ranks alike)."""
    return (-value if PRIMARY_MODE == "max" else value, str(trial_id))


def started(counts: dict[str, int]) -> int:
    """Trials that started (every outcome but never_ran): the search's trial count everywhere."""
    return sum(n for outcome, n in counts.items() if outcome != "never_ran")
