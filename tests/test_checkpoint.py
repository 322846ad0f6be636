"""Checkpoints round-trip through weights_only loading, are written atomically, and refuse what they cannot use."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from trainable import checkpoint
from trainable.checkpoint import FORMAT_VERSION, CheckpointError, check_labels, load, save
from trainable.getters import get_loss, get_optimizer
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


def test_check_labels_says_which_labels_differ():
    ckpt = {"labels": ["bird", "car", "dog"]}
    check_labels(ckpt, ["bird", "car", "dog"], where="data")
    with pytest.raises(CheckpointError) as err:
        check_labels(ckpt, ["bird", "cat", "dog", "sea"], where="/data/annotations")
    message = str(err.value)
    assert "only in the checkpoint: car" in message and "only in /data/annotations: cat, sea" in message
    with pytest.raises(CheckpointError, match="another order"):
        check_labels(ckpt, ["car", "bird", "dog"], where="data")
