"""The OPTIMIZERS registry (the other half of the course seed's "Getters"), built by name.

    optimizer = get_optimizer("adamw", model.parameters(), lr=1e-3, weight_decay=1e-4)

The names are written once, in trainable/specs.py (OPTIMIZER_NAMES: the CLI lists them without
torch); each has one factory function here named after it, and a name without its function
stops this module's import. On CUDA, Adam and AdamW take their fused kernels.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from trainable.config import ConfigError
from trainable.specs import OPTIMIZER_NAMES, builders


# One factory per name of trainable.specs.OPTIMIZER_NAMES, named after it; momentum is used by sgd only.


def adamw(params, lr, weight_decay, momentum, fused=None) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)


def adam(params, lr, weight_decay, momentum, fused=None) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)


def sgd(params, lr, weight_decay, momentum) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def adamax(params, lr, weight_decay, momentum) -> torch.optim.Optimizer:
    return torch.optim.Adamax(params, lr=lr, weight_decay=weight_decay)


def adadelta(params, lr, weight_decay, momentum) -> torch.optim.Optimizer:
    return torch.optim.Adadelta(params, lr=lr, weight_decay=weight_decay)


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = builders(OPTIMIZER_NAMES, globals())
"""name -> factory(params, lr, weight_decay, momentum); momentum is used by sgd only"""


def get_optimizer(name: str, params: Iterable, lr: float, weight_decay: float = 0.0,
                  momentum: float = 0.9) -> torch.optim.Optimizer:
    """The optimizer `name` of OPTIMIZERS over `params`."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZERS)}")
    params = list(params)
    extra = {}
    if name in ("adam", "adamw") and params and all(p.is_cuda for p in params):
        extra["fused"] = True  # one kernel per step instead of one per tensor (the GPU ceiling uses it too)
    return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay, momentum=momentum, **extra)
