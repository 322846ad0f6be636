"""A promotion's typed record: the promoted trial(s), their thresholds and scores, the baselines, the registry's
answer. search/promote.py fills it in; the model card, the registry (search/tracking/registry.py) and the CLI read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trainable.baselines import PREFIX as BASELINE_PREFIX
from trainable.baselines import beats_baseline
from trainable.errors import LabeltuneError

POLICIES = ("trial", "global", "per-label")
"""the threshold policies a promotion scores: the trial's own, one global threshold re-chosen on val, one per label"""


class PromotionError(LabeltuneError, RuntimeError):
    """The search cannot be promoted (not found, no checkpoint, registry unreachable...)."""


@dataclass
class Member:
    """One promoted trial: its best checkpoint and its own scores."""

    trial_id: str
    checkpoint: Path
    epoch: int
    val_score: float
    """its best PRIMARY_METRIC over all epochs, as the search ranked it"""
    config: dict
    scores: dict = field(default_factory=dict)
    """val/test micro and macro F1 at its own threshold (recomputed here)"""


@dataclass
class Promotion:
    search: str
    trial_id: str
    checkpoint: Path
    """the promoted checkpoint file (per-label thresholds inside)"""
    source_checkpoint: Path
    epoch: int
    val_score: float
    thresholds: dict[str, float]
    test_global: dict
    """test metrics at the global threshold re-chosen on val"""
    test_per_label: dict
    """test metrics at the promoted (per-label) thresholds"""
    card: Path
    global_threshold: float = 0.5
    val: dict = field(default_factory=dict)
    """policy (POLICIES) -> val metrics"""
    test: dict = field(default_factory=dict)
    """policy (POLICIES) -> test metrics"""
    baselines: dict = field(default_factory=dict)
    """baseline/val/... and baseline/test/... (trainable.baselines)"""
    baseline_rule: str = ""
    members: list[Member] = field(default_factory=list)
    n_images: int = 0
    val_cv_micro_f1: float = float("nan")
    """validation micro-F1 at the promoted thresholds, cross-validated inside val (`trainable.metrics.cv_micro_f1`):
    the thresholds were chosen on val, so this, not `val_micro_f1`, is compared with the baseline"""
    allowed_below_baseline: bool = False
    alias_set: bool = False
    """the alias now points at the registered version"""
    model_name: str = ""
    version: str = ""
    alias: str = ""
    run_id: str = ""
    parent_run_id: str = ""
    trial_run_id: str = ""

    @property
    def val_micro_f1(self) -> float:
        """validation micro-F1 at the promoted thresholds, in sample (they were chosen on these images)"""
        return float(self.val["per-label"]["val/micro_f1"])

    @property
    def baseline_val_micro_f1(self) -> float:
        return float(self.baselines[f"{BASELINE_PREFIX}val/micro_f1"])

    @property
    def below_baseline(self) -> bool:
        """the cross-validated validation micro-F1 does not beat the best baseline's: the alias is not moved
        (unless allowed)"""
        return not beats_baseline(self.val_cv_micro_f1, self.baseline_val_micro_f1)

    def baseline_line(self) -> str:
        """Why the alias did not move: both numbers, what was registered, and what to try."""
        alias = f"@{self.alias or 'champion'}"
        if self.version:
            outcome = (f"version {self.version} is registered without {alias}: search longer, add pretrained "
                       f"efficientnet_lite0 to the space, or pass --allow-below-baseline")
        else:
            outcome = (f"nothing was registered (--no-register): search longer or add pretrained efficientnet_lite0 "
                       f"to the space; without --no-register, promote registers it without {alias}, or with "
                       f"{alias} given --allow-below-baseline")
        return f"{self.decision_line()} ({self.baseline_rule}); {outcome}"

    def decision_line(self) -> str:
        """The figure that decides next to the baseline's (the card, the version description, promote's messages)."""
        verdict = "does not beat" if self.below_baseline else "beats"
        return (f"validation micro-F1 {self.val_cv_micro_f1:.4f} (cross-validated inside val, the figure that decides; "
                f"{self.val_micro_f1:.4f} on the val images the thresholds were chosen on) {verdict} the no-learning "
                f"baseline's {self.baseline_val_micro_f1:.4f}")
