"""Ensemble checkpoints: saved and read with weights_only, averaged like their members, used by pred and eval."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import run_cli
from trainable import checkpoint as ckpt_io
from trainable import synth
from trainable.config import TrainConfig
from trainable.data import decode, decode_files, load
from trainable.ensemble import EnsemblePredictor, evaluate_split, load_predictor, splits
from trainable.gym import Gym, Predictor

pytestmark = pytest.mark.timeout(120)

LABELS = list(synth.LABELS)  # the synthetic dataset's labels, so `eval` can score the ensemble on it
MEMBERS = (  # members differ in model, colour mode, image size and width
    dict(model="cnn4", color="rgb", image_size=32, width=0.25, seed=1),
    dict(model="cnn4", color="gray", image_size=32, width=0.25, seed=2),
    dict(model="cnn3bn", color="rgb", image_size=64, width=0.125, seed=3),
)


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, 128, 128), dtype=np.uint8)


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list[dict]:
    """Three untrained members saved by the Gym and read back as `checkpoint.load` returns them."""
    folder = tmp_path_factory.mktemp("members")
    images = _images(40, seed=0)
    targets = np.random.default_rng(1).integers(0, 2, size=(40, len(LABELS))).astype(np.float32)
    out = []
    for i, fields in enumerate(MEMBERS):
        cfg = TrainConfig(epochs=0, device="cpu", threads=1, **fields)
        gym = Gym(cfg, images, targets, LABELS, data_fingerprint="fp-members")
        path = gym.save(folder / f"m{i}" / "checkpoint.pt", {"val/micro_f1": 0.1 * i}, thresholds=[0.4 + 0.1 * i] * len(LABELS))
        out.append(ckpt_io.load(path))
    return out


@pytest.fixture(scope="module")
def ensemble_path(members, tmp_path_factory):
    """The ensemble, with thresholds that say whose are used: all-positive, all-negative, then the median."""
    probs = np.mean([Predictor(m, "cpu").probabilities(_images(40, seed=0)) for m in members], axis=0)
    thresholds = [0.01, 0.99, *np.median(probs[:, 2:], axis=0)]
    return ckpt_io.save_ensemble(tmp_path_factory.mktemp("ens") / "ensemble.pt", members, thresholds=thresholds,
                                 metrics={"test/micro_f1": np.float32(0.25)}, data_fingerprint="fp-members")


def test_save_ensemble_round_trips_with_weights_only(members, ensemble_path):
    assert sorted(p.name for p in ensemble_path.parent.iterdir()) == ["ensemble.pt"]  # no temporary file left
    raw = torch.load(ensemble_path, weights_only=True)
    ckpt = ckpt_io.load(ensemble_path)
    assert raw.keys() == ckpt.keys() == set(ckpt_io.ENSEMBLE_KEYS)
    assert ckpt["format_version"] == ckpt_io.ENSEMBLE_FORMAT_VERSION and ckpt_io.kind(ckpt) == "ensemble"
    assert ckpt["labels"] == LABELS and len(ckpt["thresholds"]) == len(LABELS) and ckpt["thresholds"][:2] == [0.01, 0.99]
    assert ckpt["metrics"] == {"test/micro_f1": 0.25} and type(ckpt["metrics"]["test/micro_f1"]) is float
    assert ckpt["data_fingerprint"] == "fp-members"
    assert len(ckpt["members"]) == len(members)
    for saved, member in zip(ckpt["members"], members):
        assert saved.keys() == set(ckpt_io.MEMBER_KEYS)  # no optimizer state
        assert saved["config"] == member["config"] and saved["labels"] == LABELS
        assert saved["thresholds"] == pytest.approx(member["thresholds"]) and saved["epoch"] == member["epoch"] == 0
        assert saved["metrics"] == member["metrics"] and saved["data_fingerprint"] == "fp-members"
        assert saved["model_state"].keys() == member["model_state"].keys()
        for key, value in member["model_state"].items():
            assert torch.equal(saved["model_state"][key], value), key


def test_ensemble_probabilities_are_the_mean_of_its_members(members, ensemble_path):
    predictor = load_predictor(ckpt_io.load(ensemble_path), device="cpu")
    assert isinstance(predictor, EnsemblePredictor)
    assert predictor.cfg.color == "rgb" and predictor.labels == LABELS
    assert [(m.cfg.model, m.cfg.color, m.cfg.image_size, m.cfg.width) for m in predictor.members] == [
        (f["model"], f["color"], f["image_size"], f["width"]) for f in MEMBERS
    ]
    images = _images(9, seed=5)
    own = [Predictor(m, "cpu").probabilities(images) for m in members]  # the gray member converts RGB itself
    assert not np.allclose(own[0], own[1])  # the members really differ
    probs = predictor.probabilities(images)
    assert probs.shape == (9, len(LABELS)) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, np.mean(own, axis=0), rtol=1e-6, atol=1e-6)
    assert predictor.probabilities(images[:0]).shape == (0, len(LABELS))
    with pytest.raises(ValueError, match="RGB"):
        predictor.probabilities(images[:, :1])


def test_ensemble_predict_uses_the_ensembles_thresholds(ensemble_path):
    predictor = load_predictor(ckpt_io.load(ensemble_path), device="cpu")
    probs, predictions = predictor.predict(_images(40, seed=0))
    np.testing.assert_array_equal(predictions, (probs >= np.asarray(predictor.thresholds)).astype(np.uint8))
    assert predictions[:, 0].all() and not predictions[:, 1].any()  # 0.01 and 0.99: not the members' 0.4-0.6
    assert 0 < predictions[:, 2:].mean() < 1  # the median thresholds split the images


def test_save_ensemble_refuses_mismatched_labels_and_no_members(members, tmp_path):
    other = {**members[2], "labels": ["cat", *LABELS[1:]]}
    with pytest.raises(ckpt_io.CheckpointError, match="different labels") as err:
        ckpt_io.save_ensemble(tmp_path / "e.pt", [members[0], members[1], other], thresholds=[0.5] * len(LABELS),
                              metrics={}, data_fingerprint="")
    assert "member 0 (cnn4" in str(err.value) and "member 2 (cnn3bn" in str(err.value) and "cat" in str(err.value)
    with pytest.raises(ckpt_io.CheckpointError, match="at least one member"):
        ckpt_io.save_ensemble(tmp_path / "e.pt", [], thresholds=[], metrics={}, data_fingerprint="")
    with pytest.raises(ckpt_io.CheckpointError, match="thresholds"):
        ckpt_io.save_ensemble(tmp_path / "e.pt", members, thresholds=[0.5], metrics={}, data_fingerprint="")
    assert not tmp_path.joinpath("e.pt").exists()


def test_load_refuses_inconsistent_ensembles(ensemble_path, tmp_path):
    ckpt = torch.load(ensemble_path, weights_only=True)
    cases = [
        ({**ckpt, "format_version": 1}, "kind 'ensemble' is not one of"),  # ensembles came with version 2
        ({**ckpt, "kind": "bagged"}, "kind 'bagged'"),
        ({**ckpt, "members": []}, "without members"),
        ({**ckpt, "members": [{"config": {}}]}, "member 0 is missing model_state"),
        ({k: v for k, v in ckpt.items() if k != "thresholds"}, "missing thresholds"),
    ]
    for content, message in cases:
        torch.save(content, tmp_path / "bad.pt")
        with pytest.raises(ckpt_io.CheckpointError, match=message):
            ckpt_io.load(tmp_path / "bad.pt")


def test_gym_refuses_an_ensemble_checkpoint(ensemble_path):
    cfg = TrainConfig(model="cnn4", width=0.25, image_size=32, epochs=0, device="cpu", threads=1)
    with pytest.raises(ckpt_io.CheckpointError, match="ensemble checkpoint of 3 members"):
        Gym(cfg, _images(8, 0), np.zeros((8, len(LABELS)), np.float32), LABELS, checkpoint=ckpt_io.load(ensemble_path))


def test_old_single_checkpoint_loads_as_a_predictor(members, tmp_path):
    # A checkpoint as labeltune wrote them before ensembles: format_version 1, no `kind` key.
    old = {"format_version": 1, "optimizer_state": {}, **{k: members[0][k] for k in ckpt_io.MEMBER_KEYS}}
    torch.save(old, tmp_path / "checkpoint.pt")
    ckpt = ckpt_io.load(tmp_path)
    assert ckpt.keys() == set(ckpt_io.KEYS) and ckpt_io.kind(ckpt) == "single"
    predictor = load_predictor(ckpt, device="cpu")
    assert type(predictor) is Predictor and predictor.cfg.color == "rgb"
    images = _images(5, seed=7)
    probs, predictions = predictor.predict(images)
    np.testing.assert_array_equal(probs, Predictor(members[0], "cpu").probabilities(images))
    np.testing.assert_array_equal(predictions, (probs >= 0.4).astype(np.uint8))


def test_pyfunc_model_serves_an_ensemble(ensemble_path, tmp_path):
    from search.tracking.pyfunc import LabeltuneModel

    model = LabeltuneModel()
    model.load_context(types.SimpleNamespace(artifacts={"checkpoint": str(ensemble_path)}))
    images = _images(4, seed=8)
    frame = model.predict(None, images)
    assert list(frame.columns) == LABELS
    np.testing.assert_allclose(frame.to_numpy(), model.predictor.probabilities(images), rtol=1e-6)


def test_pred_cli_labels_images_with_an_ensemble(ensemble_path, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(9)
    for i in range(1, 6):
        mode = "L" if i == 3 else "RGB"  # a grayscale JPEG among them, as in the course data
        pixels = rng.integers(0, 256, size=(128, 128) if mode == "L" else (128, 128, 3), dtype=np.uint8)
        Image.fromarray(pixels, mode).save(folder / f"im{i}.jpg", quality=90)
    out = tmp_path / "p.tsv"
    run_cli("pred", "--checkpoint", str(ensemble_path), "--images", str(folder), "--out", str(out), "--device", "cpu",
            timeout=120)
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == ["Filename", *LABELS]
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[0] for r in rows] == [f"im{i}.jpg" for i in range(1, 6)]
    values = np.array([[int(v) for v in r[1:]] for r in rows])
    assert set(np.unique(values)) <= {0, 1}
    images, _ = decode_files([folder / f"im{i}.jpg" for i in range(1, 6)], "rgb", progress=False)
    _, expected = load_predictor(ckpt_io.load(ensemble_path), device="cpu").predict(images)
    np.testing.assert_array_equal(values, expected)


def test_eval_scores_an_ensemble_on_the_members_split(ensemble_path, synth_dir, tmp_path):
    from search.cli.train import eval_cmd

    result = CliRunner().invoke(eval_cmd, ["--checkpoint", str(ensemble_path), "--data", str(synth_dir),
                                           "--split", "test", "--out", str(tmp_path / "eval"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "ensemble of 3" in result.output and "not the data this ensemble was trained on" in result.output
    written = json.loads((tmp_path / "eval" / "eval_test.json").read_text())
    dataset = load(synth_dir)
    predictor = load_predictor(ckpt_io.load(ensemble_path), device="cpu")
    expected = evaluate_split(predictor, decode(dataset, "rgb", progress=False), dataset.targets, "test").compute()
    assert written == pytest.approx(expected)
    assert written["test/tp/" + LABELS[0]] + written["test/fn/" + LABELS[0]] == dataset.targets[
        splits(predictor, len(dataset.targets))["test"], 0].sum()
