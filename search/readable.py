"""How labeltune writes a trial's hyperparameters for people: floats at 4 significant figures, one `lr`.

    number(0.00012345678901234567)        # '0.0001235'
    readable_config({"optimizer": "adamw", "lr_adamw": 1.1851473873082037e-05, "batch_size": 32})
    # {'optimizer': 'adamw', 'lr': '1.185e-05', 'batch_size': '32'}

The report (search/report_text.py) and the model card (search/promote.py) print configs with it;
Optuna's floats have 17 digits, which a table cuts to nonsense (`1.18514738…`). The values
themselves are never rounded: only their text. Standard library and search/space.py only.
"""

from __future__ import annotations

import math
from typing import Any

from search.space import merge_lr

SIGNIFICANT_FIGURES = 4
"""digits a float keeps when printed"""


def number(value: Any) -> str:
    """`value` as text; a float at SIGNIFICANT_FIGURES significant figures (`1.185e-05`, `0.2`, `nan`)."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.{SIGNIFICANT_FIGURES}g}"
    return str(value)


def readable_config(config: dict[str, Any]) -> dict[str, str]:
    """A trial config as people read it: the chosen optimizer's `lr_<optimizer>` as `lr`, every value as `number`."""
    return {key: number(value) for key, value in merge_lr(config).items()}
