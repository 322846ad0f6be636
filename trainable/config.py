"""TrainConfig: every knob of one trial, typed once at the edge.

Ray hands a trial a plain dict, the CLI hands it click options, a checkpoint stores
it as a dict: each becomes a TrainConfig through `TrainConfig.from_dict`, which
refuses unknown keys so that a typo in a search space fails loudly instead of being
ignored. Field names are the search-space parameter names, the MLflow param names
and the CLI option names (`batch_size` -> `--batch-size`).

Each field's docstring is its help and its `option(...)` metadata its range or choices
(trainable/fields.py): `validate()` checks them, `labeltune train`'s options are generated
from them (search/cli/options.py), and the model, loss and optimizer choices are the
registries' names (trainable/specs.py), read without importing torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable

from trainable.errors import LabeltuneError
from trainable.fields import check, option
from trainable.specs import LOSS_NAMES, MODEL_NAMES, OPTIMIZER_NAMES


class ConfigError(LabeltuneError, ValueError):
    """A trial configuration that cannot run: unknown key or invalid value."""


COLOR_MODES = {"rgb": ("RGB", 3), "gray": ("L", 1)}
"""color mode -> (PIL mode, channels): the one definition (data.py decodes with it; kept here, free of PIL and numpy)"""
COLORS = tuple(COLOR_MODES)
AUGMENTS = ("none", "flip", "flipcrop")
POS_WEIGHTS = ("off", "auto")
DEVICES = ("auto", "cpu", "cuda")
IMAGE_SIZES = (128, 64, 32)
PRIMARY_METRIC = "val/micro_f1"
"""the figure ASHA, Optuna, checkpoint ranking and promotion optimise (the course scored micro F1)"""
PRIMARY_MODE = "max"
"""PRIMARY_METRIC is better when larger"""
PRIMARY_SIGN = {"max": 1.0, "min": -1.0}[PRIMARY_MODE]
"""+1.0 when PRIMARY_METRIC is better larger, -1.0 when smaller: PRIMARY_SIGN * score is always larger-is-better"""
WORST_SCORE = -PRIMARY_SIGN * math.inf
"""a PRIMARY_METRIC score every real one beats: where a running best starts"""


def better(score: float, than: float) -> bool:
    """Whether `score` of PRIMARY_METRIC beats `than` by PRIMARY_MODE (a tie or a NaN does not)."""
    return PRIMARY_SIGN * score > PRIMARY_SIGN * than


def best_score(scores: Iterable[float]) -> float:
    """The best of `scores` by PRIMARY_MODE, WORST_SCORE when there is none (NaN never wins)."""
    best = WORST_SCORE
    for score in scores:
        if better(score, best):
            best = score
    return best


@dataclass
class TrainConfig:
    model: str = option("efficientnet_lite0", choices=MODEL_NAMES)
    """the network (default: the pretrained backbone, far ahead of the small CNNs: bench/results/train_defaults_*.json)"""
    pretrained: bool = False
    """start from ImageNet weights (resnet18/50: from `weights` or the torch hub cache; efficientnet_lite0: shipped)"""
    weights: str = ""
    """absolute path of a pretrained state dict for resnet18/50; empty = torch hub cache"""
    loss: str = option("bce", choices=LOSS_NAMES)
    """the training loss (asl: the asymmetric loss)"""
    asl_gamma_neg: float = option(4.0, low=0)
    """asl loss: focusing exponent of the negatives (larger = easy negatives count less)"""
    asl_gamma_pos: float = option(0.0, low=0)
    """asl loss: focusing exponent of the positives (0 = plain log-likelihood)"""
    asl_clip: float = option(0.05, low=0, high=1, high_open=True)
    """asl loss: probability margin below which a negative counts as solved (0 = none)"""
    optimizer: str = option("adamw", choices=OPTIMIZER_NAMES)
    """the optimizer"""
    lr: float = option(1e-3, low=0, low_open=True, finite=True)
    """learning rate of the optimizer"""
    weight_decay: float = option(0.0, low=0, finite=True)
    """L2 penalty (decoupled for adamw)"""
    momentum: float = 0.9
    """momentum of sgd (ignored by the other optimizers)"""
    batch_size: int = option(32, low=1)
    """images per optimisation step"""
    epochs: int = option(5, low=0)
    """training epochs; Tune's training_iteration counts these"""
    threshold: float = option(0.5, low=0, low_open=True, high=1, high_open=True)
    """probability above which a label is predicted"""
    color: str = option("rgb", choices=COLORS)
    """rgb (3 channels) or gray (1 channel)"""
    split_fractions: tuple[float, float, float] = option((0.8, 0.1, 0.1), metavar="TRAIN,VAL,TEST")
    """train / val / test fractions of the images (unlabelled images are all-negative rows)"""
    split_seed: int = 0
    """fixes the train/val/test split; one search keeps it for all trials so the test split never leaks"""
    seed: int = 0
    """initialisation and shuffling"""
    image_size: int = option(128, choices=IMAGE_SIZES)
    """side of the images fed to the model: 128, or 64/32 downsampled on the device"""
    width: float = option(1.0, low=0, low_open=True)
    """channel multiplier of the small CNNs (0.25 = a quarter of the channels)"""
    augment: str = option("none", choices=AUGMENTS)
    """random flips (flip) or flips and crops (flipcrop), done on the device"""
    pos_weight: str = option("off", choices=POS_WEIGHTS)
    """auto: BCE positive weights from label frequencies, so rare labels are not ignored"""
    limit: int = option(0, low=0)
    """use only the first N images (0 = all), for debugging"""
    device: str = option("auto", choices=DEVICES)
    """where the trial trains (auto: cuda when torch sees a GPU, else cpu)"""
    threads: int = option(0, low=0)
    """torch CPU threads (0 = the CPUs given to this trial, or all CPUs outside Ray)"""

    def __post_init__(self) -> None:
        self.split_fractions = tuple(float(f) for f in self.split_fractions)
        self.validate()

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a plain dict; unknown keys are an error that names them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}"
            )
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        coerced = {}
        for key, value in values.items():
            kind = types[key]
            try:
                if kind == "bool" and isinstance(value, str):
                    value = value.lower() in ("1", "true", "yes", "on")
                elif kind in ("int", "float", "bool", "str"):
                    value = {"int": int, "float": float, "bool": bool, "str": str}[kind](value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"config key {key}: {value!r} is not a {kind}") from exc
            coerced[key] = value
        return cls(**coerced)

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (lists, not tuples), fit for JSON, MLflow and torch.save."""
        out = dataclasses.asdict(self)
        out["split_fractions"] = list(self.split_fractions)
        return out

    def validate(self) -> None:
        """Refuse a value outside its field's range or choices, then split_fractions that are no split."""
        check(self, ConfigError)
        fr = self.split_fractions
        if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6 or fr[0] == 0:
            raise ConfigError(f"split_fractions: {list(fr)} must be 3 non-negative numbers summing to 1")
