"""LOSSES and OPTIMIZERS: every entry works and computes what its name says."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from trainable.getters import LOSSES, OPTIMIZERS, get_loss, get_optimizer, pos_weight_from_targets

LOGITS = torch.tensor([[2.0, -1.0, 0.5], [-0.3, 0.8, -2.0], [0.0, 1.5, 1.0], [-1.2, -0.4, 3.0]])
TARGETS = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])

REFERENCE = {
    "bce": lambda x, y: F.binary_cross_entropy(torch.sigmoid(x), y),
    "multilabel_soft_margin": lambda x, y: -(y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x)).mean(),
    "mse": lambda x, y: ((torch.sigmoid(x) - y) ** 2).mean(),
    "l1": lambda x, y: (torch.sigmoid(x) - y).abs().mean(),
}


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


def test_pos_weight_is_ignored_with_a_warning_by_other_losses(caplog):
    with caplog.at_level(logging.WARNING, logger="trainable.getters"):
        loss = get_loss("mse", pos_weight=torch.ones(3))(LOGITS, TARGETS)
    assert "pos_weight is ignored" in caplog.text
    torch.testing.assert_close(loss, REFERENCE["mse"](LOGITS, TARGETS))


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
