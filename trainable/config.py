"""TrainConfig: every knob of one trial, typed once at the edge.

Ray hands a trial a plain dict, the CLI hands it click options, a checkpoint stores
it as a dict: each becomes a TrainConfig through `TrainConfig.from_dict`, which
refuses unknown keys so that a typo in a search space fails loudly instead of being
ignored. Field names are the search-space parameter names, the MLflow param names
and the CLI option names (`batch_size` -> `--batch-size`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from trainable.errors import LabeltuneError
from trainable.fields import docs


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
# The registries' names, here so that `--help` lists them without importing torch; trainable.models
# and trainable.getters refuse to import when their registries hold other names.
MODEL_NAMES = ("dummy", "cnn4", "cnn3bn", "cnn5", "resnet18", "resnet50", "efficientnet_lite0")
LOSS_NAMES = ("bce", "multilabel_soft_margin", "mse", "l1", "asl")
OPTIMIZER_NAMES = ("adamw", "adam", "sgd", "adamax", "adadelta")


@dataclass
class TrainConfig:
    model: str = "efficientnet_lite0"
    """the network (default: the pretrained backbone, far ahead of the small CNNs: bench/results/train_defaults_*.json)"""
    pretrained: bool = False
    """start from ImageNet weights (resnet18/50: from `weights` or the torch hub cache; efficientnet_lite0: shipped)"""
    weights: str = ""
    """absolute path of a pretrained state dict for resnet18/50; empty = torch hub cache"""
    loss: str = "bce"
    """the training loss (asl: the asymmetric loss)"""
    asl_gamma_neg: float = 4.0
    """asl loss: focusing exponent of the negatives (larger = easy negatives count less)"""
    asl_gamma_pos: float = 0.0
    """asl loss: focusing exponent of the positives (0 = plain log-likelihood)"""
    asl_clip: float = 0.05
    """asl loss: probability margin below which a negative counts as solved (0 = none)"""
    optimizer: str = "adamw"
    """the optimizer"""
    lr: float = 1e-3
    """learning rate of the optimizer"""
    weight_decay: float = 0.0
    """L2 penalty (decoupled for adamw)"""
    momentum: float = 0.9
    """momentum of sgd (ignored by the other optimizers)"""
    batch_size: int = 32
    """images per optimisation step"""
    epochs: int = 5
    """training epochs; Tune's training_iteration counts these"""
    threshold: float = 0.5
    """probability above which a label is predicted"""
    color: str = "rgb"
    """rgb (3 channels) or gray (1 channel)"""
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    """train / val / test fractions of the images (unlabelled images are all-negative rows)"""
    split_seed: int = 0
    """fixes the train/val/test split; one search keeps it for all trials so the test split never leaks"""
    seed: int = 0
    """initialisation and shuffling"""
    image_size: int = 128
    """side of the images fed to the model: 128, or 64/32 downsampled on the device"""
    width: float = 1.0
    """channel multiplier of the small CNNs (0.25 = a quarter of the channels)"""
    augment: str = "none"
    """none | flip | flipcrop: random flips (and crops) done on the device"""
    pos_weight: str = "off"
    """off | auto: BCE positive weights from label frequencies, so rare labels are not ignored"""
    limit: int = 0
    """use only the first N images (0 = all), for debugging"""
    device: str = "auto"
    """auto | cpu | cuda"""
    threads: int = 0
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
        def choice(name: str, options: tuple) -> None:
            value = getattr(self, name)
            if value not in options:
                raise ConfigError(f"{name}: {value!r} is not one of {', '.join(map(str, options))}")

        choice("model", MODEL_NAMES)
        choice("loss", LOSS_NAMES)
        choice("optimizer", OPTIMIZER_NAMES)
        choice("color", COLORS)
        choice("augment", AUGMENTS)
        choice("pos_weight", POS_WEIGHTS)
        choice("device", DEVICES)
        choice("image_size", IMAGE_SIZES)
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr: {self.lr} must be a finite number > 0")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ConfigError(f"weight_decay: {self.weight_decay} must be a finite number >= 0")
        if self.batch_size < 1 or self.epochs < 0 or self.limit < 0 or self.threads < 0:
            raise ConfigError("batch_size must be >= 1; epochs, limit and threads >= 0")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"threshold: {self.threshold} must lie strictly between 0 and 1")
        if not self.width > 0:
            raise ConfigError(f"width: {self.width} must be > 0")
        for name in ("asl_gamma_neg", "asl_gamma_pos"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name}: {getattr(self, name)} must be >= 0")
        if not 0.0 <= self.asl_clip < 1.0:
            raise ConfigError(f"asl_clip: {self.asl_clip} must lie in [0, 1)")
        fr = self.split_fractions
        if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6 or fr[0] == 0:
            raise ConfigError(f"split_fractions: {list(fr)} must be 3 non-negative numbers summing to 1")


def config_fields() -> list[dataclasses.Field]:
    """The TrainConfig fields, for building CLI options and MLflow params from one list."""
    return list(dataclasses.fields(TrainConfig))


def field_doc(name: str) -> str:
    """The one-line docstring under a field (read from the source, used as CLI help)."""
    return _FIELD_DOCS.get(name, "")


_FIELD_DOCS = docs(TrainConfig)
