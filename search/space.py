"""Search spaces: named presets and user files, turned into Optuna define-by-run functions.

A space is a plain dict, parameter name -> one of
    a scalar                      fixed value
    a list                        categorical choices
    {"low": a, "high": b, "log": true/false, "int": true/false}   a range

Parameter names are TrainConfig fields, except the learning rate: each optimizer has
its own (`lr_adamw`, `lr_sgd`, ...) so TPE does not pool scales that differ by 1000x;
`to_train_config` maps the chosen one to `lr` at the edge. `lr_<opt>` is only
suggested when `<opt>` is the chosen optimizer, `width` only for the small CNNs and
the `asl_*` knobs only when the loss is `asl`.

A user file (YAML or JSON) names a preset to start from (`preset: quick`, default
`default`) and fixes or narrows any parameter:

    preset: quick
    model: [cnn5, cnn4]        # narrow the choices
    lr_adamw: {low: 1e-4, high: 3e-3, log: true}
    image_size: 32             # fix

The define-by-run function is module-level and bound with functools.partial, so the
searcher state pickles for resume. The space's fingerprint is recorded with the
search: Optuna cannot change categorical choices inside a study.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from trainable.config import ConfigError, TrainConfig
from trainable.errors import LabeltuneError
from trainable.specs import MODEL_SPECS, OPTIMIZER_NAMES

OPTIMIZER_LR = {
    "adamw": {"low": 1e-5, "high": 1e-2, "log": True},
    "adam": {"low": 1e-5, "high": 1e-2, "log": True},
    "adamax": {"low": 1e-5, "high": 1e-2, "log": True},
    "sgd": {"low": 1e-3, "high": 0.3, "log": True},
    "adadelta": {"low": 0.05, "high": 1.0, "log": True},
}
LR_PREFIX = "lr_"
"""a learning rate parameter is LR_PREFIX + its optimizer's name: `lr_adamw`"""


def lr_param(optimizer: str) -> str:
    """The space parameter of `optimizer`'s learning rate: lr_param("sgd") == "lr_sgd"."""
    return LR_PREFIX + optimizer


def lr_optimizer(param: str) -> str | None:
    """The optimizer whose learning rate the space parameter `param` is (lr_sgd -> sgd), None for another parameter."""
    return param.removeprefix(LR_PREFIX) if param.startswith(LR_PREFIX) else None


def chosen_lr(config: dict[str, Any]) -> Any:
    """The learning rate a trial config trains with: its optimizer's `lr_<optimizer>`, else `lr` (None: neither)."""
    return config.get(lr_param(config.get("optimizer", TrainConfig.optimizer)), config.get("lr"))


SMALL_CNNS = tuple(name for name, spec in MODEL_SPECS.items() if spec.weights == "none")
"""the small models trained from scratch; only their trials suggest `width` (dummy's ignores it)"""
ASL_KNOBS = {
    "asl_gamma_neg": {"low": 1.0, "high": 6.0},
    "asl_gamma_pos": {"low": 0.0, "high": 2.0},
    "asl_clip": {"low": 0.0, "high": 0.2},
}
"""the asymmetric loss's parameters, around the paper's defaults (gamma_neg 4, gamma_pos 0, clip 0.05)"""

PRESETS: dict[str, dict[str, Any]] = {
    # The full space for GPU clusters.
    "default": {
        "model": ["cnn3bn", "cnn4", "cnn5", "resnet18", "resnet50", "efficientnet_lite0"],
        "loss": ["bce", "multilabel_soft_margin", "mse", "l1", "asl"],
        **ASL_KNOBS,
        "optimizer": list(OPTIMIZER_LR),
        **{lr_param(name): rng for name, rng in OPTIMIZER_LR.items()},
        "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
        "batch_size": [32, 64, 128, 256],
        "threshold": {"low": 0.2, "high": 0.8},
        "color": ["rgb", "gray"],
        "augment": ["none", "flip", "flipcrop"],
        "pos_weight": ["off", "auto"],
        "width": 1.0,
        "image_size": 128,
    },
    # 64x64 images, the pretrained efficientnet_lite0 (seconds per epoch on 2 cores for the
    # demo's 1,200 images) beside narrow small CNNs: a search that runs on a laptop CPU.
    "quick": {
        "model": ["efficientnet_lite0", "cnn3bn", "cnn4", "cnn5"],
        "loss": ["bce", "multilabel_soft_margin", "asl"],
        **ASL_KNOBS,
        "optimizer": ["adamw", "adam", "sgd", "adadelta"],
        **{lr_param(name): OPTIMIZER_LR[name] for name in ("adamw", "adam", "sgd", "adadelta")},
        "weight_decay": {"low": 1e-6, "high": 1e-3, "log": True},
        "batch_size": [32, 64],
        "threshold": {"low": 0.2, "high": 0.6},
        "color": ["rgb"],
        "augment": ["none", "flip"],
        "pos_weight": ["off", "auto"],
        "width": [0.25, 0.5],
        "image_size": 64,
    },
}

# The course report's final recipe, the point every search starts from when its space holds it,
# with the settings the recipe does not name fixed to what works for it: positive weights on
# (test micro-F1 0.655 -> 0.738 and 0.620 -> 0.723, bench/results/train_defaults_2026-12-01.json), no flips.
COURSE_RECIPE = {
    "model": "efficientnet_lite0", "color": "rgb", "loss": "bce", "optimizer": "adadelta",
    "lr_adadelta": 0.2, "batch_size": 32, "threshold": 0.5, "pos_weight": "auto", "augment": "none",
}
# A modern fine-tuning recipe, the second first point: pretrained backbone, AdamW 1e-3, BCE, no positive
# weights (they cost adamw 0.10 test micro-F1) and no flips at 3 epochs (-0.03), same file.
MODERN_RECIPE = {
    "model": "efficientnet_lite0", "color": "rgb", "loss": "bce", "optimizer": "adamw",
    "lr_adamw": 1e-3, "batch_size": 32, "threshold": 0.5, "pos_weight": "off", "augment": "none",
}
RECIPES = (COURSE_RECIPE, MODERN_RECIPE)
"""the known-good points a search evaluates first, in this order, when its space holds them"""


SEARCH_CONSTANTS = frozenset({"epochs", "seed", "split_seed", "split_fractions", "limit"})
"""TrainConfig fields the search fixes for all trials, so that they are ranked on one split and budget"""


class SpaceError(LabeltuneError, ValueError):
    """A space file or preset that cannot be used."""


def load_space(name_or_file: str) -> dict[str, Any]:
    """A preset name or a YAML/JSON file -> the space dict (a fresh copy)."""
    if name_or_file in PRESETS:
        return copy.deepcopy(PRESETS[name_or_file])
    path = Path(name_or_file)
    if not path.is_file():
        raise SpaceError(f"{name_or_file}: neither a preset ({', '.join(PRESETS)}) nor a file")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            overrides = yaml.safe_load(path.read_text()) or {}
        else:
            overrides = json.loads(path.read_text())
    except Exception as exc:  # yaml and json raise different types; both are a bad file
        raise SpaceError(f"{path}: not valid YAML/JSON: {str(exc).splitlines()[0]}") from exc
    if not isinstance(overrides, dict):
        raise SpaceError(f"{path}: expected a mapping of parameter -> value, list or range")
    fixed = sorted(set(overrides) & SEARCH_CONSTANTS)
    if fixed:
        raise SpaceError(f"{path}: {', '.join(fixed)}: fixed by the search for every trial (use the search's "
                         f"options, e.g. --epochs, --seed, --split-seed), not a space parameter")
    preset = overrides.pop("preset", "default")
    if preset not in PRESETS:
        raise SpaceError(f"{path}: preset {preset!r} is not one of {', '.join(PRESETS)}")
    space = copy.deepcopy(PRESETS[preset])
    space.update(overrides)
    validate_space(space, where=str(path))
    return space


def validate_space(space: dict[str, Any], where: str = "space") -> None:
    """Every key a TrainConfig field or lr_<optimizer>; ranges well formed."""
    fields = set(TrainConfig.__dataclass_fields__) - {"lr"}
    valid = fields | {lr_param(name) for name in OPTIMIZER_NAMES}
    for key, value in space.items():
        if key not in valid:
            raise SpaceError(f"{where}: unknown parameter {key!r}; valid: {', '.join(sorted(valid))}")
        if isinstance(value, dict):
            try:
                low, high = float(value["low"]), float(value["high"])
            except (KeyError, TypeError, ValueError):
                raise SpaceError(f"{where}: {key}: a range needs numbers low and high, got {value}") from None
            if not low <= high:
                raise SpaceError(f"{where}: {key}: a range needs low <= high, got {value}")
            if value.get("log") and low <= 0:
                raise SpaceError(f"{where}: {key}: a log range needs low > 0, got {value}")
            candidates = [low, high]
        elif isinstance(value, list):
            if not value:
                raise SpaceError(f"{where}: {key}: an empty list of choices")
            candidates = value
        else:
            candidates = [value]
        # Every choice and range end must be a value a trial accepts: refused now, not by every trial later.
        field = "lr" if lr_optimizer(key) is not None else key
        for candidate in candidates:
            try:
                TrainConfig.from_dict({field: candidate})
            except ConfigError as exc:
                raise SpaceError(f"{where}: {key}: {exc}") from None


def choices(value: Any) -> list:
    """A space entry as a list: its choices, or the one fixed value."""
    return value if isinstance(value, list) else [value]


def fingerprint(space: dict[str, Any], constants: dict[str, Any]) -> str:
    """A short hash naming the space and the fixed settings (resume refuses a changed one)."""
    blob = json.dumps({"space": space, "constants": constants}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _suggest(trial, name: str, value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if len(value) == 1 else trial.suggest_categorical(name, value)
    if isinstance(value, dict):
        low, high, log = value["low"], value["high"], bool(value.get("log", False))
        if value.get("int"):
            return trial.suggest_int(name, int(low), int(high), log=log)
        return trial.suggest_float(name, float(low), float(high), log=log)
    return value


def define_by_run(trial, space: dict[str, Any], constants: dict[str, Any], pretrained_models: tuple[str, ...]) -> dict[str, Any]:
    """Optuna define-by-run: suggest each parameter, conditional ones only where they apply.

    Returns the whole trial config (constants + choices); Tune merges it with what Optuna captured.
    `pretrained` is true for the models in `pretrained_models`, the search record's list of the
    models that trainable.models.pretrained_by_default held for when the search started: a resumed
    search keeps that choice whatever weights this machine has.
    """
    chosen = {
        "model": _suggest(trial, "model", space.get("model", "cnn5")),
        "optimizer": _suggest(trial, "optimizer", space.get("optimizer", "adamw")),
        "loss": _suggest(trial, "loss", space.get("loss", "bce")),
    }
    for name, value in space.items():
        if name in chosen:
            continue
        if lr_optimizer(name) not in (None, chosen["optimizer"]):
            continue  # another optimizer's learning rate
        if name == "width" and chosen["model"] not in SMALL_CNNS:
            continue  # the backbones have no width knob
        if name.startswith("asl_") and chosen["loss"] != "asl":
            continue  # only the asymmetric loss has these knobs
        chosen[name] = _suggest(trial, name, value)
    chosen["pretrained"] = chosen["model"] in pretrained_models
    return {**constants, **chosen}


def make_define_by_run(space: dict[str, Any], constants: dict[str, Any], pretrained_models: tuple[str, ...]):
    """The picklable define-by-run function for OptunaSearch."""
    return functools.partial(define_by_run, space=space, constants=constants, pretrained_models=tuple(pretrained_models))


def to_train_config(config: dict[str, Any]) -> TrainConfig:
    """A trial's config (Optuna's names) -> TrainConfig: `lr_<optimizer>` becomes `lr`."""
    return TrainConfig.from_dict(merge_lr(config))


def merge_lr(config: dict[str, Any]) -> dict[str, Any]:
    """The config with the chosen optimizer's `lr_<optimizer>` as `lr` and no `lr_*` keys (as a person reads it)."""
    values = {key: value for key, value in config.items() if lr_optimizer(key) is None}
    chosen = lr_param(config.get("optimizer", TrainConfig.optimizer))
    if chosen in config:
        values["lr"] = config[chosen]
    return values


def points_to_evaluate(space: dict[str, Any], pretrained_models: tuple[str, ...]) -> list[dict[str, Any]]:
    """The known-good recipes (RECIPES) on pretrained backbones, for each backbone the space holds."""
    points = []
    for model, recipe in ((m, r) for m in ("efficientnet_lite0", "resnet50") for r in RECIPES):
        if model not in pretrained_models:
            continue
        point = {**recipe, "model": model}
        if all(_holds(space.get(k), v) for k, v in point.items() if k in space):
            points.append({k: v for k, v in point.items() if isinstance(space.get(k), (list, dict))
                           and not (isinstance(space.get(k), list) and len(space[k]) == 1)})
    return points


def distribution(domain: Any):
    """The Optuna distribution `_suggest` samples `domain` from (None for a fixed value or a one-item list)."""
    import optuna.distributions as d

    if isinstance(domain, list):
        return d.CategoricalDistribution(domain) if len(domain) > 1 else None
    if isinstance(domain, dict):
        log = bool(domain.get("log", False))
        if domain.get("int"):
            return d.IntDistribution(int(domain["low"]), int(domain["high"]), log=log)
        return d.FloatDistribution(float(domain["low"]), float(domain["high"]), log=log)
    return None


def fits(space: dict[str, Any], params: dict[str, Any]) -> bool:
    """Whether a trial's suggested parameters all fit `space`: a searchable value, or the value it fixes."""
    return warm_params(space, params) is not None


def warm_params(space: dict[str, Any], params: dict[str, Any]) -> dict[str, Any] | None:
    """A trial's parameters as `space` searches them (for a warm start), or None when one does not fit.

    A parameter the space searches keeps its value if the space holds it; one the space fixes to
    that same value (`model: cnn4` for a trial with model=cnn4) is dropped, since the study does not
    search it; any other value, or a parameter the space does not know, does not fit.
    """
    kept = {}
    for name, value in params.items():
        domain = space.get(name)
        if name not in space or not _holds(domain, value):
            return None
        if distribution(domain) is not None:
            kept[name] = value
    return kept


def _holds(domain: Any, value: Any) -> bool:
    if isinstance(domain, list):
        return value in domain
    if isinstance(domain, dict):
        return float(domain["low"]) <= float(value) <= float(domain["high"])
    return domain == value
