"""The Tune trainable continues from the latest checkpoint on disk when Tune's saved state is older (issue 12, item 5)."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from trainable import checkpoint as ckpt_io
from trainable import trial as trial_mod
from trainable.config import TrainConfig
from trainable.gym import CHECKPOINT_FILE, Gym

CONFIG = {"model": "dummy", "image_size": 32, "epochs": 3, "device": "cpu", "threads": 1, "pretrained": False}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (40, 3, 128, 128), dtype=np.uint8)
    targets = (rng.random((40, 3)) < 0.3).astype(np.uint8)
    return trial_mod.TrialData(images, targets, ["a", "b", "c"], "fp")


def write_epochs(trial_dir: Path, data, epochs: int) -> list[dict]:
    """What a trial leaves in its folder: checkpoint_00000<e-1>/checkpoint.pt for epochs 1..epochs (Tune's names)."""
    gym = Gym(TrainConfig.from_dict({**CONFIG, "epochs": epochs}), data.images, data.targets, data.labels,
              data_fingerprint=data.fingerprint)
    history = []

    def keep(metrics, ckpt_dir):
        folder = trial_dir / f"checkpoint_{metrics['epoch'] - 1:06d}"
        folder.mkdir(parents=True)
        (folder / CHECKPOINT_FILE).write_bytes((ckpt_dir / CHECKPOINT_FILE).read_bytes())
        history.append(metrics)

    gym.fit(keep)
    return history


def test_replay_reports_the_epochs_on_disk_in_order_and_returns_the_latest(tmp_path, data):
    history = write_epochs(tmp_path, data, 3)
    reported = []
    latest = trial_mod.replay_checkpoints(tmp_path, None, lambda m, d: reported.append((m, ckpt_io.load(d / CHECKPOINT_FILE))))
    assert [m["epoch"] for m, _ in reported] == [1, 2, 3]
    assert [m["val/micro_f1"] for m, _ in reported] == [h["val/micro_f1"] for h in history]
    assert [c["epoch"] for _, c in reported] == [1, 2, 3] and latest["epoch"] == 3

    after_one = ckpt_io.load(tmp_path / "checkpoint_000000" / CHECKPOINT_FILE)
    reported.clear()
    assert trial_mod.replay_checkpoints(tmp_path, after_one, lambda m, d: reported.append((m, None)))["epoch"] == 3
    assert [m["epoch"] for m, _ in reported] == [2, 3]


def test_replay_stops_at_a_checkpoint_cut_short_by_the_kill(tmp_path, data):
    write_epochs(tmp_path, data, 3)
    broken = tmp_path / "checkpoint_000001" / CHECKPOINT_FILE
    broken.write_bytes(broken.read_bytes()[:100])
    reported = []
    latest = trial_mod.replay_checkpoints(tmp_path, None, lambda m, d: reported.append(m["epoch"]))
    assert reported == [1] and latest["epoch"] == 1
    assert trial_mod.replay_checkpoints(tmp_path / "empty", None, lambda m, d: reported.append(m)) is None


@pytest.mark.parametrize("finished", [(), ("t1",)], ids=["unfinished", "finished-in-the-study"])
def test_a_trial_whose_saved_state_lags_the_disk_trains_only_the_missing_epochs(tmp_path, data, monkeypatch, finished):
    # Tune's snapshot knows no checkpoint (the trial would start from scratch), the disk holds epochs 1 and 2.
    write_epochs(tmp_path, data, 2)
    reports = []
    fake_tune = types.SimpleNamespace(
        get_checkpoint=lambda: None,
        get_context=lambda: types.SimpleNamespace(get_trial_id=lambda: "t1", get_storage=lambda: types.SimpleNamespace(
            trial_fs_path=str(tmp_path))),
        report=lambda metrics, checkpoint: reports.append(
            (metrics, ckpt_io.load(Path(checkpoint.path) / CHECKPOINT_FILE)["epoch"])),
    )
    monkeypatch.setattr(trial_mod, "tune", fake_tune)
    monkeypatch.setattr(trial_mod.ray, "get_runtime_context",
                        lambda: types.SimpleNamespace(get_node_id=lambda: "node-1"))
    trained = []
    original_epoch = Gym.train_one_epoch
    monkeypatch.setattr(Gym, "train_one_epoch", lambda self, epoch, *a: trained.append(epoch) or original_epoch(self, epoch, *a))
    trial_mod.run_trial(dict(CONFIG), data, finished=frozenset(finished))
    if finished:  # the study holds it finished: the epochs on disk are reported again, none is trained
        assert [m["epoch"] for m, _ in reports] == [1, 2] and trained == []
        assert [m[trial_mod.DECIDED] for m, _ in reports] == [True, True]  # ASHA does not decide on them again
        return
    assert [m["epoch"] for m, _ in reports] == [1, 2, 3] and [e for _, e in reports] == [1, 2, 3]
    assert trained == [3], "epochs already on disk were trained again"
    assert all(m["node_id"] == "node-1" for m, _ in reports)
    # epoch 1 was decided by the lost driver (the trial went on to epoch 2); epoch 2 may not have been
    assert [m.get(trial_mod.DECIDED) for m, _ in reports] == [True, False, None]
