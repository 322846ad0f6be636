"""ASHA as a search runs it: Ray's ASHAScheduler that does not decide twice on an epoch a lost driver decided on.

    scheduler = ReplayAwareASHA(time_attr="training_iteration", max_t=10, grace_period=1, reduction_factor=3)

After a driver is lost, a resumed trial reports again the epochs its checkpoints hold
(trainable/trial.py `replay_checkpoints`). The lost driver had already let the trial go on
past those epochs, or had ended it; deciding again at a rung, against scores other trials
reported since, could stop a trial that had in fact finished and drop its later, better
epochs. Such results carry `DECIDED` and always continue; ASHA still records them in its
rungs. Every other result is ASHA's to decide, as in Ray.
"""

from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from trainable.trial import DECIDED

REDUCTION = 3
"""ASHA's reduction factor: a third of the trials at each rung go on"""


class ReplayAwareASHA(ASHAScheduler):
    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        return TrialScheduler.CONTINUE if result.get(DECIDED) else decision


def rungs(max_epochs: int, grace_period: int, reduction: int = REDUCTION) -> list[int]:
    """The epochs at which ASHA may stop a trial (grace_period x reduction^k below max_epochs); [] = none.

    search/tuner.py hands them to the trainable, whose rung epochs always write weights (trainable/checkpoint.py
    needs_weights); tests/test_checkpoint_policy.py checks them against Ray's own ASHA bracket."""
    found, rung = [], max(1, grace_period)
    while rung < max_epochs:
        found.append(rung)
        rung *= reduction
    return found
