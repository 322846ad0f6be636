"""The Gym: learning, determinism, resume, divergence, checkpoint round trip, device-side preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainable import checkpoint as ckpt_io
from trainable import gym as gym_module
from trainable.config import ConfigError, TrainConfig
from trainable.data import decode, load
from trainable.checkpoint import CHECKPOINT_FILE
from trainable.gym import Gym, Predictor, TrialDiverged, augment, to_device_images
from trainable.metrics import PRIMARY_METRIC

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def tiny(synth_dir):
    dataset = load(synth_dir)
    return dataset, decode(dataset, "rgb", progress=False)


def small_cfg(**overrides) -> TrainConfig:
    values = dict(model="cnn5", width=0.25, image_size=32, epochs=2, batch_size=16, lr=3e-3, device="cpu", threads=1)
    values.update(overrides)
    return TrainConfig(**values)


def test_unknown_config_key_is_an_error():
    with pytest.raises(ConfigError, match="lrr"):
        TrainConfig.from_dict({"lrr": 0.1})


def test_training_lowers_the_loss(tiny):
    dataset, images = tiny
    gym = Gym(small_cfg(epochs=4), images, dataset.targets, dataset.labels)
    history = gym.fit()
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["train/loss"] < history[0]["train/loss"]
    assert all(0.0 <= h[PRIMARY_METRIC] <= 1.0 for h in history)


def test_the_asl_knobs_of_the_config_reach_the_loss(tiny):
    dataset, images = tiny
    gym = Gym(small_cfg(loss="asl", asl_gamma_neg=2.0, asl_gamma_pos=1.0, asl_clip=0.1), images, dataset.targets,
              dataset.labels)
    assert (gym.loss_fn.gamma_neg, gym.loss_fn.gamma_pos, gym.loss_fn.clip) == (2.0, 1.0, 0.1)
    history = gym.fit()
    assert all(np.isfinite(h["train/loss"]) and h["train/loss"] > 0 for h in history)


def test_same_seed_same_metrics_and_report_gets_checkpoints(tiny):
    dataset, images = tiny
    runs = []
    for _ in range(2):
        reported = []

        def report(metrics, ckpt_dir):
            reported.append((metrics, ckpt_io.load(ckpt_dir / CHECKPOINT_FILE)["epoch"]))

        Gym(small_cfg(augment="flipcrop"), images, dataset.targets, dataset.labels).fit(report)
        runs.append(reported)
    assert [m for m, _ in runs[0]] != []
    assert [e for _, e in runs[0]] == [1, 2]
    # img_per_s and the time/ keys are the clock's, not the run's
    strip = lambda ms: [{k: v for k, v in m.items() if k != "img_per_s" and not k.startswith("time/")} for m, _ in ms]  # noqa: E731
    assert strip(runs[0]) == strip(runs[1])


def test_resume_continues_the_epoch_count_and_repeats_the_uninterrupted_run(tiny, tmp_path):
    dataset, images = tiny
    full = Gym(small_cfg(epochs=2), images, dataset.targets, dataset.labels).fit()
    first = Gym(small_cfg(epochs=1), images, dataset.targets, dataset.labels)
    first.fit()
    first.save(tmp_path / CHECKPOINT_FILE, {})
    ckpt = ckpt_io.load(tmp_path / CHECKPOINT_FILE)
    resumed = Gym(small_cfg(epochs=2), images, dataset.targets, dataset.labels, checkpoint=ckpt).fit()
    assert [h["epoch"] for h in resumed] == [2]
    assert resumed[0]["train/loss"] == pytest.approx(full[1]["train/loss"], rel=1e-5)
    assert resumed[0][PRIMARY_METRIC] == pytest.approx(full[1][PRIMARY_METRIC], rel=1e-5)


def test_evaluate_in_uneven_batches_matches_one_batch(tiny, monkeypatch):
    """The loss is weighted by batch size and the probabilities keep the split's order."""
    dataset, images = tiny
    gym = Gym(small_cfg(epochs=1), images, dataset.targets, dataset.labels)
    whole = gym.evaluate_split("val")
    monkeypatch.setattr(gym_module, "EVAL_BATCH", 7)  # the val split is not a multiple of 7
    assert len(gym.split_index["val"]) % 7
    batched = gym.evaluate_split("val")
    assert batched.compute()["val/loss"] == pytest.approx(whole.compute()["val/loss"], rel=1e-5)
    np.testing.assert_allclose(batched.probs, whole.probs, rtol=1e-5, atol=1e-6)
    assert batched.compute()["val/micro_f1"] == whole.compute()["val/micro_f1"]
    assert gym.evaluate("val") == batched.compute()


def test_evaluate_split_gives_the_outputs_it_scored(tiny):
    dataset, images = tiny
    gym = Gym(small_cfg(epochs=1), images, dataset.targets, dataset.labels)
    thresholds = np.linspace(0.3, 0.7, len(dataset.labels))
    collector = gym.evaluate_split("test", thresholds)
    probs, targets, loss = gym.outputs("test")
    np.testing.assert_array_equal(collector.probs, probs)
    np.testing.assert_array_equal(collector.targets, targets)
    np.testing.assert_allclose(collector.threshold, thresholds)
    assert collector.compute()["test/loss"] == pytest.approx(loss)


def test_predictor_and_gym_share_one_inference_path(tiny, tmp_path, monkeypatch):
    """Gym.outputs, Gym.predict and Predictor.probabilities all go through gym.batched_logits."""
    dataset, images = tiny
    gym = Gym(small_cfg(epochs=1), images, dataset.targets, dataset.labels)
    gym.fit()
    gym.save(tmp_path / CHECKPOINT_FILE, {})
    predictor = Predictor(ckpt_io.load(tmp_path / CHECKPOINT_FILE), device="cpu")
    calls = []
    real = gym_module.batched_logits

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(gym_module, "batched_logits", counting)
    val, _, _ = gym.outputs("val")
    val_images = images[gym.splits["val"]]
    np.testing.assert_allclose(predictor.probabilities(val_images), val, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gym.predict(val_images)[0], val, rtol=1e-5, atol=1e-6)
    assert len(calls) == 3


def test_nan_loss_raises_trial_diverged_naming_the_epoch(tiny):
    dataset, images = tiny
    gym = Gym(small_cfg(), images, dataset.targets, dataset.labels)
    gym.loss_fn = lambda logits, y: (logits * float("nan")).mean()
    with pytest.raises(TrialDiverged, match="epoch 1"):
        gym.fit()


def test_checkpoint_round_trip_gives_identical_predictions(tiny, tmp_path):
    dataset, images = tiny
    gym = Gym(small_cfg(epochs=1, color="gray"), images, dataset.targets, dataset.labels)
    gym.fit()
    probs, preds = gym.predict(images[:20])
    gym.save(tmp_path / CHECKPOINT_FILE, {}, thresholds=[0.3] * len(dataset.labels))
    predictor = Predictor(ckpt_io.load(tmp_path / CHECKPOINT_FILE), device="cpu")
    probs2, preds2 = predictor.predict(images[:20])
    np.testing.assert_allclose(probs, probs2, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(preds2, (probs2 >= 0.3).astype(np.uint8))


def test_checkpoint_with_other_labels_is_refused(tiny, tmp_path):
    dataset, images = tiny
    gym = Gym(small_cfg(epochs=0), images, dataset.targets, dataset.labels)
    gym.save(tmp_path / CHECKPOINT_FILE, {})
    ckpt = ckpt_io.load(tmp_path / CHECKPOINT_FILE)
    ckpt["labels"] = ["cat"] + ckpt["labels"][1:]
    with pytest.raises(ckpt_io.CheckpointError):
        Gym(small_cfg(), images, dataset.targets, dataset.labels, checkpoint=ckpt)


def test_device_images_downsample_and_gray_match_a_numpy_reference():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 3, 128, 128), dtype=np.uint8)
    small = to_device_images(images, 32, torch.device("cpu")).numpy()
    reference = images.reshape(3, 3, 32, 4, 32, 4).astype(np.float64).mean(axis=(3, 5))
    assert small.shape == (3, 3, 32, 32)
    assert np.abs(small.astype(np.float64) - reference).max() <= 0.5 + 1e-6
    gray = to_device_images(images, 128, torch.device("cpu"), color="gray").numpy()
    luma = images[:, 0] * 0.299 + images[:, 1] * 0.587 + images[:, 2] * 0.114
    assert gray.shape == (3, 1, 128, 128)
    assert np.abs(gray[:, 0].astype(np.float64) - luma).max() <= 0.5 + 1e-3


def test_cpu_trials_at_full_size_read_the_shared_array_in_place(tiny):
    """Issue 27: at the array's own size and colour a CPU trial holds no private copy of the images (the
    object store's read-only view is used as it is) and training never writes to it."""
    dataset, images = tiny
    shared = np.array(images)
    shared.setflags(write=False)  # as Ray's object store hands it out
    before = shared.copy()
    view = to_device_images(shared, 128, torch.device("cpu"))
    assert view.data_ptr() == shared.ctypes.data, "a full-size CPU trial copied the images"
    assert to_device_images(shared, 32, torch.device("cpu")).data_ptr() != shared.ctypes.data
    gym = Gym(small_cfg(epochs=1, image_size=128), shared, dataset.targets, dataset.labels)
    gym.fit()
    assert gym.images.data_ptr() == shared.ctypes.data and np.array_equal(shared, before)


def test_augment_flips_and_crops_per_image_reproducibly():
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    a = augment(x, "flipcrop", torch.Generator().manual_seed(1))
    b = augment(x, "flipcrop", torch.Generator().manual_seed(1))
    assert a.shape == x.shape
    assert torch.equal(a, b)
    flipped = augment(x, "flip", torch.Generator().manual_seed(3))
    for img, out in zip(x, flipped):
        assert torch.equal(out, img) or torch.equal(out, img.flip(2))
