"""The LOSSES registry (half of the course seed's "Getters"), built by name.

    loss_fn = get_loss("bce", pos_weight=pos_weight_from_targets(train_targets))
    loss_fn = get_loss("asl", gamma_neg=4.0, gamma_pos=0.0, clip=0.05)   # or the asymmetric loss
    loss = loss_fn(logits, targets)      # B x L logits, B x L float targets -> scalar

Every loss takes raw logits. `mse` and `l1` compare sigmoid probabilities with the 0/1
targets; `bce` alone uses `pos_weight` (per-label weight of the positive term, so rare
labels are not drowned by the negatives), the other losses ignore it with a warning.
`asl` (asymmetric loss, Ridnik et al., ICCV 2021) fights the same imbalance its own way:
focal weights with separate exponents for positives and negatives, and negatives whose
probability is below `clip` count as solved. Its knobs reach it as keyword options of
get_loss; the losses without knobs ignore them, so a caller can always pass them.
Losses compute in float32 whatever the autocast dtype of the logits.

The names are written once, in trainable/specs.py (LOSS_NAMES: the CLI lists them without
torch); each has one factory function here named after it, and a name without its function
stops this module's import.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from trainable.config import ConfigError
from trainable.specs import LOSS_NAMES, builders

log = logging.getLogger(__name__)


class BCEWithLogits(nn.BCEWithLogitsLoss):
    """BCEWithLogitsLoss in float32 whose pos_weight follows the logits to their device."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        pos_weight = self.pos_weight
        if pos_weight is not None and pos_weight.device != logits.device:
            pos_weight = pos_weight.to(logits.device)
        return F.binary_cross_entropy_with_logits(
            logits.float(), targets.float(), pos_weight=pos_weight, reduction=self.reduction
        )


class MultilabelSoftMargin(nn.Module):
    """MultiLabelSoftMarginLoss (mean over labels, then over the batch), float32."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.multilabel_soft_margin_loss(logits.float(), targets.float())


class ProbabilityLoss(nn.Module):
    """A regression loss (mse or l1) between sigmoid(logits) and the 0/1 targets."""

    def __init__(self, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(torch.sigmoid(logits.float()), targets.float())


class AsymmetricLoss(nn.Module):
    """Asymmetric loss (ASL), mean over the B x L elements like bce, float32.

    Per element, with p = sigmoid(logit) and the shifted probability p_m = max(p - clip, 0):
        loss = -(y (1 - p)^gamma_pos log(p) + (1 - y) p_m^gamma_neg log(1 - p_m))
    gamma_neg = gamma_pos = clip = 0 is bce. The paper's defaults: gamma_neg 4, gamma_pos 0, clip 0.05.
    """

    EPS = 1e-8
    """floor of a probability under a log or a fractional power: no log(0), no 0 * inf from 0 ** -0.5 in the gradient"""

    def __init__(self, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05) -> None:
        super().__init__()
        self.gamma_neg, self.gamma_pos, self.clip = float(gamma_neg), float(gamma_pos), float(clip)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x, y = logits.float(), targets.float()
        p, q = torch.sigmoid(x), torch.sigmoid(-x)  # q = 1 - p, exact where p rounds to 1
        # log(p) from the logit: a confidently wrong positive keeps its gradient (log(clamp(p)) would stall it)
        positive = q.clamp(min=self.EPS) ** self.gamma_pos * F.logsigmoid(x)
        p_m = (p - self.clip).clamp(min=self.EPS)  # max(p - clip, 0); at p <= clip the log below is log(1) = 0
        if self.clip > 0:
            log_not_p_m = torch.log((q + self.clip).clamp(self.EPS, 1.0))  # 1 - p_m = min(1 - p + clip, 1)
        else:
            log_not_p_m = F.logsigmoid(-x)  # log(1 - p), as bce computes it
        negative = p_m ** self.gamma_neg * log_not_p_m
        return -(y * positive + (1 - y) * negative).mean()


LossFactory = Callable[..., nn.Module]
"""factory(pos_weight=None, **options) -> a module called as loss(logits, targets) -> scalar tensor"""


def _unweighted(make: Callable[..., nn.Module]) -> LossFactory:
    """The factory of a loss without positive weights, named after `make`: warns that pos_weight is ignored."""

    @functools.wraps(make)
    def factory(pos_weight: torch.Tensor | None = None, **options) -> nn.Module:
        if pos_weight is not None:
            log.warning("loss %s has no positive weights: pos_weight is ignored (only bce uses it)", make.__name__)
        return make(**options)

    return factory


# One factory per name of trainable.specs.LOSS_NAMES, named after it; the options are asl's knobs.


def bce(pos_weight: torch.Tensor | None = None, **options) -> nn.Module:
    return BCEWithLogits(pos_weight=pos_weight)


@_unweighted
def multilabel_soft_margin(**options) -> nn.Module:
    return MultilabelSoftMargin()


@_unweighted
def mse(**options) -> nn.Module:
    return ProbabilityLoss(F.mse_loss)


@_unweighted
def l1(**options) -> nn.Module:
    return ProbabilityLoss(F.l1_loss)


@_unweighted
def asl(**options) -> nn.Module:
    return AsymmetricLoss(**options)


LOSSES: dict[str, LossFactory] = builders(LOSS_NAMES, globals())
"""name -> factory(pos_weight=None, **options); the options are asl's knobs (gamma_neg, gamma_pos, clip)"""


def get_loss(name: str, pos_weight: torch.Tensor | None = None, **options) -> nn.Module:
    """The loss `name` of LOSSES: a module called as loss(logits, targets) -> scalar tensor.

    options: asl's gamma_neg, gamma_pos and clip (AsymmetricLoss); the other losses ignore them.
    """
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}")
    return LOSSES[name](pos_weight=pos_weight, **options)


def pos_weight_from_targets(targets: np.ndarray, clip: float = 100.0) -> torch.Tensor:
    """Per-label BCE positive weight (negatives / positives), clipped to [1/clip, clip]; 1.0 for a label with no positives."""
    targets = np.asarray(targets)
    if targets.ndim != 2:
        raise ValueError(f"targets must be N x L, got shape {targets.shape}")
    n = targets.shape[0]
    pos = (targets > 0).sum(axis=0).astype(np.float64)
    weight = np.ones_like(pos)
    has = pos > 0
    weight[has] = np.clip((n - pos[has]) / pos[has], 1.0 / clip, clip)
    return torch.tensor(weight, dtype=torch.float32)
