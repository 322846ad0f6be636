"""How a search ends: it stops itself (`--target SCORE`, `--plateau N`), and each trial's outcome.

`Outcomes` (below) decides each trial's outcome (search/outcome.py) when the experiment ends;
it is listed before the MLflow tracker, which writes them to the parent run.

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

from search.outcome import TrialOutcome, count, outcome_of
from trainable.metrics import PRIMARY_METRIC


class SearchStopper(Stopper, Callback):
    def __init__(self, target: float | None = None, plateau: int | None = None) -> None:
        self.target = target
        self.plateau = plateau
        self.reason = ""
        """why the search ended early ('' while it has not)"""
        self.completed: set[str] = set()
        """trials that completed before `reason` was set"""
        self.trigger = ""
        """the trial that reached the target ('' otherwise)"""
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
                self.trigger = trial_id
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


class Outcomes(Callback):
    """Tune callback: each trial's outcome when the experiment ends (listed before the tracker, which reads it).

        outcomes = Outcomes(max_epochs=10, stopper=stopper)
        tune.RunConfig(callbacks=[stopper, outcomes, tracker]); ...; outcomes.counts()

    It tells a trial Tune completed from one the experiment's end cut short (Ctrl-C, a stop): both end
    TERMINATED, but only the first passes through on_trial_complete, here or under an earlier driver.
    """

    def __init__(self, max_epochs: int, stopper: Any = None) -> None:
        self.max_epochs = max_epochs
        self.stopper = stopper
        self.trials: dict[str, TrialOutcome] = {}
        self._ended: set[str] | None = None
        """trials Tune completed or failed: those restored so (first step), then each on_trial_complete/_error"""

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self._ended is None:
            self._ended = {str(t.trial_id) for t in trials if str(t.status) in ("TERMINATED", "ERROR")}

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.on_step_begin(iteration, trials)
        self._ended.add(str(trial.trial_id))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.on_trial_complete(iteration, trials, trial)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        ended = self._ended or set()
        self.trials = {str(t.trial_id): outcome_of(t, self.max_epochs, self.stopper, str(t.trial_id) in ended)
                       for t in trials}

    def counts(self) -> dict[str, int]:
        return count(self.trials)
