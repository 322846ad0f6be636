"""A search that stops itself: `--target SCORE` and `--plateau N`.

    stopper = SearchStopper(target=0.8, plateau=6)
    tune.RunConfig(stop=stopper, callbacks=[stopper, ...])

Tune asks a Stopper after every result whether to end the whole experiment (`stop_all`);
the same object is a Callback, so it also hears when a trial completes. `target` ends the
search when any trial reports PRIMARY_METRIC >= target; `plateau` ends it after N
completed trials (finished or stopped by ASHA) in a row that did not raise the best score
so far. `reason` says which one fired, for the summary, the record and the parent run.
A resumed search counts its plateau afresh from the trials it runs.
`completed` holds the trials that completed before the stopper fired: the trials still running
then were ended by it, not by ASHA (the summary counts the two apart).
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback
from ray.tune.stopper import Stopper

from trainable.metrics import PRIMARY_METRIC


class SearchStopper(Stopper, Callback):
    def __init__(self, target: float | None = None, plateau: int | None = None) -> None:
        self.target = target
        self.plateau = plateau
        self.reason = ""
        """why the search ended early ('' while it has not)"""
        self.completed: set[str] = set()
        """trials that completed before `reason` was set"""
        self._trial_best: dict[str, float] = {}
        self._best = float("-inf")
        self._without_new_best = 0

    # ---- Stopper ----------------------------------------------------------------------------------

    def __call__(self, trial_id: str, result: dict) -> bool:
        score = result.get(PRIMARY_METRIC)
        if score is not None and score == score:  # NaN never counts
            self._trial_best[trial_id] = max(score, self._trial_best.get(trial_id, float("-inf")))
            if self.target is not None and score >= self.target and not self.reason:
                self.reason = f"target reached: trial {trial_id} {PRIMARY_METRIC} {score:.4f} >= {self.target:g}"
        return False  # one trial is never stopped here: ASHA decides that

    def stop_all(self) -> bool:
        return bool(self.reason)

    def ended(self, trial_id: str) -> bool:
        """Whether this stopper, not ASHA, ended the trial: it was still running when the search stopped."""
        return bool(self.reason) and trial_id not in self.completed

    # ---- Callback ---------------------------------------------------------------------------------

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if not self.reason:
            self.completed.add(trial.trial_id)
        if self.plateau is None:
            return
        best = self._trial_best.get(trial.trial_id, float("-inf"))
        if best > self._best:
            self._best, self._without_new_best = best, 0
        else:
            self._without_new_best += 1
        if self._without_new_best >= self.plateau and not self.reason:
            self.reason = (f"plateau: {self._without_new_best} completed trials without a new best "
                           f"{PRIMARY_METRIC} (best {self._best:.4f})")
