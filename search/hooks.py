"""A test-only hook that kills the driver at a known moment (trainable/hold.py holds a trial instead).

    LABELTUNE_TEST_KILL_AFTER=1 labeltune search ...   # SIGKILL itself once the 1st trial completed

The driver kills itself right after Tune told the searcher and every callback that the k-th
trial completed (Optuna has it COMPLETE, MLflow has its run FINISHED) and before Tune's next
snapshot of its state: the window in which a lost driver leaves stores that disagree, which a
resume must reconcile without training that trial again. Unset, no callback is added.
"""

from __future__ import annotations

import os
import signal

from ray.tune import Callback

KILL_ENV = "LABELTUNE_TEST_KILL_AFTER"
"""'<k>': the driver SIGKILLs itself after the callbacks of the k-th completed trial"""


class KillAfterCompletion(Callback):
    def __init__(self, after: int) -> None:
        self.after = after
        self.completed = 0

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.completed += 1
        if self.completed == self.after:
            os.kill(os.getpid(), signal.SIGKILL)


def driver_hooks() -> list:
    """The callbacks $LABELTUNE_TEST_KILL_AFTER asks for (last in the list: every other callback runs first)."""
    after = os.environ.get(KILL_ENV)
    return [KillAfterCompletion(int(after))] if after else []
