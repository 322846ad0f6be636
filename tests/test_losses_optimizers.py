"""LOSSES and OPTIMIZERS: every entry works and computes what its name says."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from trainable.config import ConfigError, TrainConfig
from trainable.losses import LOSSES, get_loss, pos_weight_from_targets
from trainable.optimizers import OPTIMIZERS, get_optimizer

LOGITS = torch.tensor([[2.0, -1.0, 0.5], [-0.3, 0.8, -2.0], [0.0, 1.5, 1.0], [-1.2, -0.4, 3.0]])
TARGETS = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])

REFERENCE = {
    "bce": lambda x, y: F.binary_cross_entropy(torch.sigmoid(x), y),
    "multilabel_soft_margin": lambda x, y: -(y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x)).mean(),
    "mse": lambda x, y: ((torch.sigmoid(x) - y) ** 2).mean(),
    "l1": lambda x, y: (torch.sigmoid(x) - y).abs().mean(),
    # ASL at the paper's defaults (gamma_neg 4, gamma_pos 0, clip 0.05), written straight from its definition
    "asl": lambda x, y: -(y * torch.log(torch.sigmoid(x)) + (1 - y) * (torch.sigmoid(x) - 0.05).clamp(min=0) ** 4
                          * torch.log(1 - (torch.sigmoid(x) - 0.05).clamp(min=0))).mean(),
}
ASL_OPTIONS = {"gamma_neg": 2.5, "gamma_pos": 1.5, "clip": 0.15}


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_matches_its_definition_and_has_gradients(name):
    logits = LOGITS.clone().requires_grad_(True)
    loss = get_loss(name)(logits, TARGETS)
    assert loss.shape == () and loss.dtype == torch.float32
    torch.testing.assert_close(loss, REFERENCE[name](LOGITS, TARGETS))
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_computes_in_float32_for_bf16_logits(name):
    loss = get_loss(name)(LOGITS.bfloat16(), TARGETS)
    assert loss.dtype == torch.float32


def test_bce_weights_the_positive_term_per_label():
    pos_weight = torch.tensor([1.0, 3.0, 0.5])
    loss = get_loss("bce", pos_weight=pos_weight)(LOGITS, TARGETS)
    expected = -(pos_weight * TARGETS * F.logsigmoid(LOGITS) + (1 - TARGETS) * F.logsigmoid(-LOGITS)).mean()
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("name", ("mse", "asl"))
def test_pos_weight_is_ignored_with_a_warning_by_other_losses(caplog, name):
    with caplog.at_level(logging.WARNING, logger="trainable.losses"):
        loss = get_loss(name, pos_weight=torch.ones(3))(LOGITS, TARGETS)
    assert "pos_weight is ignored" in caplog.text
    torch.testing.assert_close(loss, REFERENCE[name](LOGITS, TARGETS))


@pytest.mark.parametrize("name", [name for name in LOSSES if name != "asl"])
def test_losses_without_knobs_ignore_the_asl_options(name):
    # the Gym passes the asl options whatever the loss
    loss = get_loss(name, **ASL_OPTIONS)(LOGITS, TARGETS)
    torch.testing.assert_close(loss, REFERENCE[name](LOGITS, TARGETS))


def test_asl_matches_a_hand_computation():
    gamma_neg, gamma_pos, clip = ASL_OPTIONS.values()
    total = 0.0
    for logits, targets in zip(LOGITS.tolist(), TARGETS.tolist()):
        for x, y in zip(logits, targets):
            p = 1.0 / (1.0 + math.exp(-x))
            if y == 1.0:
                total -= (1.0 - p) ** gamma_pos * math.log(p)
            else:
                p_m = max(p - clip, 0.0)  # the negative at logit -2.0 (p = 0.12) is below the clip
                total -= p_m ** gamma_neg * math.log(1.0 - p_m)
    expected = total / LOGITS.numel()
    loss = get_loss("asl", **ASL_OPTIONS)(LOGITS, TARGETS)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("scale", (1.0, 30.0))
def test_asl_without_focusing_or_clip_is_bce(scale):
    logits = LOGITS * scale  # at 30x, confident right and wrong answers up to |logit| 90
    loss = get_loss("asl", gamma_neg=0.0, gamma_pos=0.0, clip=0.0)(logits, TARGETS)
    torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(logits, TARGETS))


def test_asl_clip_shifts_the_negative_probabilities():
    negatives = torch.zeros(1, 2)
    logits = torch.tensor([[-3.0, 0.0]], requires_grad=True)  # p = 0.047 (below clip 0.1) and p = 0.5
    loss = get_loss("asl", gamma_neg=1.0, gamma_pos=0.0, clip=0.1)(logits, negatives)
    loss.backward()
    # the easy negative counts as solved: no loss and no gradient; the other one is scored at p_m = 0.5 - 0.1
    assert loss.item() == pytest.approx(-(0.4 * math.log(0.6)) / 2, abs=1e-7)
    assert logits.grad[0, 0].item() == 0.0 and logits.grad[0, 1].item() > 0
    unclipped = get_loss("asl", gamma_neg=1.0, gamma_pos=0.0, clip=0.0)(logits[:, :1], negatives[:, :1])
    assert unclipped.item() > 0


@pytest.mark.parametrize("options", (
    {},  # the paper's defaults
    {"gamma_neg": 0.5, "gamma_pos": 0.5, "clip": 0.0},  # fractional powers of a probability that is exactly 0 or 1
    {"gamma_neg": 0.5, "gamma_pos": 0.5, "clip": 0.05},
    {"gamma_neg": 6.0, "gamma_pos": 2.0, "clip": 0.2},
))
def test_asl_is_finite_for_extreme_logits(options):
    # +-50: sigmoid is 1e-22 from 0 or 1; +-200: it rounds to exactly 0 or 1 in float32
    logits = torch.tensor([[50.0, -50.0, 200.0, -200.0], [-50.0, 50.0, -200.0, 200.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]])  # row 0 right, row 1 confidently wrong
    loss = get_loss("asl", **options)(logits, targets)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[1, 0].item() < 0 and logits.grad[1, 2].item() < 0  # the wrong positives still learn


@pytest.mark.parametrize("field, value, valid", (
    ("asl_clip", 1.5, "[0, 1)"), ("asl_clip", 1.0, "[0, 1)"), ("asl_clip", -0.1, "[0, 1)"),
    ("asl_gamma_neg", -1.0, ">= 0"), ("asl_gamma_pos", -0.5, ">= 0"),
))
def test_config_refuses_invalid_asl_knobs(field, value, valid):
    with pytest.raises(ConfigError) as err:
        TrainConfig(loss="asl", **{field: value})
    assert field in str(err.value) and valid in str(err.value)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_lowers_a_simple_loss(name):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3)
    lr = {"adadelta": 1.0, "sgd": 0.1}.get(name, 0.05)
    optimizer = get_optimizer(name, model.parameters(), lr=lr, weight_decay=1e-4, momentum=0.9)
    assert optimizer.param_groups[0]["lr"] == lr
    assert optimizer.param_groups[0]["weight_decay"] == 1e-4
    loss_fn = get_loss("bce")
    first = loss_fn(model(LOGITS), TARGETS).item()
    for _ in range(20):
        optimizer.zero_grad()
        loss = loss_fn(model(LOGITS), TARGETS)
        loss.backward()
        optimizer.step()
    assert loss_fn(model(LOGITS), TARGETS).item() < first


def test_sgd_uses_momentum():
    optimizer = get_optimizer("sgd", torch.nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.8)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["momentum"] == 0.8


@pytest.mark.parametrize("getter", (get_loss, lambda name: get_optimizer(name, [torch.zeros(1)], lr=0.1)))
def test_unknown_names_list_the_valid_ones(getter):
    with pytest.raises(ValueError) as err:
        getter("nope")
    registry = LOSSES if getter is get_loss else OPTIMIZERS
    for name in registry:
        assert name in str(err.value)


def test_pos_weight_from_targets():
    targets = np.zeros((1000, 5), dtype=np.uint8)
    targets[:200, 0] = 1  # 800 / 200
    targets[:1, 2] = 1  # 999 / 1, clipped to 100
    targets[:, 3] = 1  # 0 / 1000, clipped to 1/100
    targets[:500, 4] = 1  # balanced
    weight = pos_weight_from_targets(targets)
    assert weight.dtype == torch.float32
    # label 1 has no positive: neutral weight
    torch.testing.assert_close(weight, torch.tensor([4.0, 1.0, 100.0, 0.01, 1.0]))
    torch.testing.assert_close(pos_weight_from_targets(targets, clip=10.0)[2], torch.tensor(10.0))
