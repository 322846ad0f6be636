"""Checkpoints round-trip through weights_only loading, are written atomically, and refuse what they cannot use."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch

from trainable import checkpoint
from trainable.checkpoint import FORMAT_VERSION, CheckpointError, check_labels, load, save
from trainable.losses import get_loss
from trainable.optimizers import get_optimizer
from trainable.models import build_model

LABELS = ["bird", "car", "dog"]


def _trained():
    torch.manual_seed(0)
    model = build_model("cnn3bn", num_labels=3, width=0.125)
    optimizer = get_optimizer("adamw", model.parameters(), lr=1e-3)
    loss = get_loss("bce")(model(torch.randn(2, 3, 32, 32)), torch.ones(2, 3))
    loss.backward()
    optimizer.step()
    return model, optimizer


def _save(path, **overrides):
    model, optimizer = _trained()
    values = dict(
        model_state=model.state_dict(), optimizer_state=optimizer.state_dict(), epoch=np.int64(3),
        config={"model": "cnn3bn", "lr": np.float32(0.001), "split_fractions": (0.8, 0.1, 0.1), "width": 0.125},
        labels=LABELS, thresholds=np.array([0.5, 0.25, 0.7]),
        metrics={"val/micro_f1": np.float32(0.5), "val/tp/dog": np.int64(7), "epoch": 3},
        data_fingerprint="abc123",
    )
    values.update(overrides)
    return save(path, **values), model, optimizer


def test_round_trip_with_weights_only_and_plain_values(tmp_path):
    path, model, optimizer = _save(tmp_path / "trial" / "checkpoint.pt")
    assert path == tmp_path / "trial" / "checkpoint.pt"
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]  # no temporary file left
    raw = torch.load(path, weights_only=True)  # what a user or MLflow would do
    ckpt = load(path.parent)  # a folder means folder/checkpoint.pt
    assert raw.keys() == ckpt.keys() == set(checkpoint.KEYS)
    assert ckpt["format_version"] == FORMAT_VERSION and ckpt["epoch"] == 3 and type(ckpt["epoch"]) is int
    assert ckpt["labels"] == LABELS and ckpt["thresholds"] == [0.5, 0.25, 0.7]
    assert ckpt["data_fingerprint"] == "abc123"
    assert ckpt["metrics"] == {"val/micro_f1": 0.5, "val/tp/dog": 7, "epoch": 3}
    assert type(ckpt["metrics"]["val/micro_f1"]) is float and type(ckpt["metrics"]["val/tp/dog"]) is int
    assert type(ckpt["config"]["lr"]) is float and ckpt["config"]["split_fractions"] == (0.8, 0.1, 0.1)
    for key, value in model.state_dict().items():
        assert torch.equal(ckpt["model_state"][key], value), key
    # the states load back into fresh objects
    fresh = build_model("cnn3bn", num_labels=3, width=0.125)
    fresh.load_state_dict(ckpt["model_state"])
    get_optimizer("adamw", fresh.parameters(), lr=1e-3).load_state_dict(ckpt["optimizer_state"])


def test_numpy_arrays_become_tensors(tmp_path):
    path, _, _ = _save(tmp_path / "checkpoint.pt", metrics={"probs": np.arange(4, dtype=np.float32)})
    assert torch.equal(load(path)["metrics"]["probs"], torch.arange(4, dtype=torch.float32))


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path, _, _ = _save(tmp_path / "checkpoint.pt", epoch=1)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _save(path, epoch=2)
    monkeypatch.undo()
    assert load(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_save_refuses_values_weights_only_cannot_read(tmp_path):
    with pytest.raises(CheckpointError, match=r"metrics\['bad'\]"):
        _save(tmp_path / "checkpoint.pt", metrics={"bad": object()})
    with pytest.raises(CheckpointError, match="thresholds"):
        _save(tmp_path / "checkpoint.pt", thresholds=[0.5])


class _Foreign:
    pass


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such checkpoint file"),
        (b"plain text, not a checkpoint", "not a labeltune checkpoint"),
        ({"model": torch.zeros(2)}, "no format_version"),
        ([1, 2, 3], "no format_version"),
        ({"format_version": 99}, "format_version 99 is not supported"),
        ({"format_version": FORMAT_VERSION, "labels": ["a"]}, "missing model_state"),
        ("foreign-class", "not a labeltune checkpoint"),
    ],
)
def test_load_refuses_what_is_not_a_checkpoint(tmp_path, content, message):
    path = tmp_path / "checkpoint.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "foreign-class":
        path.write_bytes(pickle.dumps(_Foreign(), protocol=2))  # weights_only refuses to build arbitrary classes
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=message) as err:
        load(path)
    assert str(path) in str(err.value)


def _damaged(path, damage):
    """Write a checkpoint damaged as `damage` says at `path`."""
    good, model, _ = _save(path.parent / "good.pt")
    if damage == "truncated":  # a copy cut short (a full disk, a killed scp)
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif damage == "whole pickled model":
        torch.save(model, path)
    elif damage == "state dict only":
        torch.save(model.state_dict(), path)
    elif damage == "keys of nothing":
        torch.save({**{key: None for key in checkpoint.KEYS}, "format_version": FORMAT_VERSION}, path)
    elif damage == "thresholds for other labels":
        torch.save({**load(good), "thresholds": [0.5]}, path)
    elif damage == "ensemble member of nothing":
        member = {key: value for key, value in load(good).items() if key in checkpoint.MEMBER_KEYS}
        checkpoint.save_ensemble(path, [member], thresholds=[0.5] * 3, metrics={}, data_fingerprint="abc123")
        ckpt = torch.load(path, weights_only=True)
        ckpt["members"][0]["model_state"] = "weights"
        torch.save(ckpt, path)


@pytest.mark.parametrize("damage, message", [
    ("truncated", "not a complete torch file"),
    ("whole pickled model", "it pickles Python objects"),
    ("state dict only", "no format_version"),
    ("keys of nothing", "labels is not a list of names; metrics is not a dict"),
    ("thresholds for other labels", "thresholds is not 3 numbers, one per label"),
    ("ensemble member of nothing", "ensemble member 0: a damaged labeltune checkpoint (model_state is not a dict"),
])
def test_a_damaged_checkpoint_is_one_line_naming_the_file(tmp_path, damage, message):
    path = tmp_path / "checkpoint.pt"
    _damaged(path, damage)
    with pytest.raises(CheckpointError, match=re.escape(message)) as err:
        load(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value) and "\x1b" not in str(err.value)


def test_eval_and_pred_of_a_damaged_checkpoint_print_one_line(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from search.cli import main

    path = tmp_path / "checkpoint.pt"
    _damaged(path, "truncated")
    (tmp_path / "images").mkdir()
    Image.new("RGB", (128, 128)).save(tmp_path / "images" / "im1.jpg")
    for args in (["eval", "--checkpoint", str(path), "--data", str(tmp_path / "data")],
                 ["pred", "--checkpoint", str(path), "--images", str(tmp_path / "images"),
                  "--out", str(tmp_path / "p.tsv")]):
        result = CliRunner().invoke(main, [*args, "--device", "cpu"])
        assert result.exit_code == 1 and not isinstance(result.exception, RuntimeError), result.output
        assert result.output.strip().splitlines() == [f"Error: {path}: not a labeltune checkpoint (not a complete "
                                                      f"torch file: cut short, or another kind of file); use another "
                                                      f"checkpoint of the trial, or train it again"]
    assert not (tmp_path / "p.tsv").exists()


def test_a_model_state_of_another_architecture_is_one_line():
    model, _ = _trained()
    other = build_model("cnn3bn", num_labels=5, width=0.125)  # another head: the same keys, other shapes
    ckpt = {"model_state": other.state_dict(), "config": {"model": "cnn3bn", "width": 0.125}}
    with pytest.raises(CheckpointError, match=r"^ckpt.pt: its model_state does not fit the model its config names "
                                              r"\(cnn3bn, width 0.125\): other shape \d+ \(") as err:
        checkpoint.load_model_state(model, ckpt, where="ckpt.pt")
    assert "\n" not in str(err.value)
    ckpt["model_state"] = {"extra.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"missing \d+ \(.*\); unexpected 1 \(extra.weight\)"):
        checkpoint.load_model_state(model, ckpt)
    checkpoint.load_model_state(model, {"model_state": model.state_dict()})  # a fitting state loads


def test_check_labels_says_which_labels_differ():
    ckpt = {"labels": ["bird", "car", "dog"]}
    check_labels(ckpt, ["bird", "car", "dog"], where="data")
    with pytest.raises(CheckpointError) as err:
        check_labels(ckpt, ["bird", "cat", "dog", "sea"], where="/data/annotations")
    message = str(err.value)
    assert "only in the checkpoint: car" in message and "only in /data/annotations: cat, sea" in message
    with pytest.raises(CheckpointError, match="another order"):
        check_labels(ckpt, ["car", "bird", "dog"], where="data")
