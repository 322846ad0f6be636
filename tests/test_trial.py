"""The Tune trainable continues from the latest checkpoint on disk when Tune's saved state is older (issue 12, item 5),
and from the latest weights when the epoch Tune restores has only its record (issue 24 item 2): no epoch is reported
twice, and a resumed trial ends where an uninterrupted one does."""

from __future__ import annotations

import shutil
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from ray.tune import Checkpoint
from test_checkpoint_policy import script_scores

from trainable import checkpoint as ckpt_io
from trainable import trial as trial_mod
from trainable.config import PRIMARY_METRIC, TrainConfig
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
    resume = trial_mod.replay_checkpoints(tmp_path, 0, lambda m, d: reported.append((m, ckpt_io.load(d / CHECKPOINT_FILE))))
    assert [m["epoch"] for m, _ in reported] == [1, 2, 3]
    assert [m["val/micro_f1"] for m, _ in reported] == [h["val/micro_f1"] for h in history]
    assert [c["epoch"] for _, c in reported] == [1, 2, 3] and resume.checkpoint["epoch"] == 3 == resume.reported
    assert resume.best == max(h["val/micro_f1"] for h in history)

    reported.clear()
    resume = trial_mod.replay_checkpoints(tmp_path, 1, lambda m, d: reported.append((m, None)))
    assert resume.checkpoint["epoch"] == 3 and [m["epoch"] for m, _ in reported] == [2, 3]


def test_replay_stops_at_a_checkpoint_cut_short_by_the_kill(tmp_path, data):
    write_epochs(tmp_path, data, 3)
    broken = tmp_path / "checkpoint_000001" / CHECKPOINT_FILE
    broken.write_bytes(broken.read_bytes()[:100])
    reported = []
    resume = trial_mod.replay_checkpoints(tmp_path, 0, lambda m, d: reported.append(m["epoch"]))
    assert reported == [1] and resume.checkpoint["epoch"] == 1 == resume.reported
    empty = trial_mod.replay_checkpoints(tmp_path / "empty", 0, lambda m, d: reported.append(m))
    assert empty == trial_mod.Resume() and reported == [1]


class FakeTune:
    """What run_trial uses of ray.tune: the trial's storage folder, the checkpoint Tune restores (a folder in it, or
    None), and a report that copies the reported folder into the storage folder as Tune does."""

    def __init__(self, trial_dir: Path, restore: Path | None = None) -> None:
        self.trial_dir, self.restore, self.reports = trial_dir, restore, []

    def get_checkpoint(self):
        return Checkpoint.from_directory(str(self.restore)) if self.restore else None

    def get_context(self):
        storage = types.SimpleNamespace(trial_fs_path=str(self.trial_dir))
        return types.SimpleNamespace(get_trial_id=lambda: "t1", get_storage=lambda: storage)

    def report(self, metrics, checkpoint):
        index = len(list(self.trial_dir.glob("checkpoint_*")))  # Tune's index goes on after the restored one
        folder = self.trial_dir / f"checkpoint_{index:06d}"
        shutil.copytree(checkpoint.path, folder, dirs_exist_ok=True)
        record = ckpt_io.load_record(folder)
        self.reports.append((metrics, record.epoch, record.weights))


@pytest.fixture
def trial(monkeypatch):
    """run_trial(tune, config, rungs) with `tune` in place of ray.tune; the epochs each Gym trained in `trained`."""
    monkeypatch.setattr(trial_mod.ray, "get_runtime_context",
                        lambda: types.SimpleNamespace(get_node_id=lambda: "node-1"))
    trained = []
    original_epoch = Gym.train_one_epoch
    monkeypatch.setattr(Gym, "train_one_epoch", lambda self, epoch, *a: trained.append(epoch) or original_epoch(self, epoch, *a))

    def run(tune, data, rungs=(), finished=(), **config):
        monkeypatch.setattr(trial_mod, "tune", tune)
        trained.clear()
        trial_mod.run_trial({**CONFIG, **config}, data, finished=frozenset(finished), rungs=rungs)
        return trained

    return run


@pytest.mark.parametrize("finished", [(), ("t1",)], ids=["unfinished", "finished-in-the-study"])
def test_a_trial_whose_saved_state_lags_the_disk_trains_only_the_missing_epochs(tmp_path, data, trial, finished):
    # Tune's snapshot knows no checkpoint (the trial would start from scratch), the disk holds epochs 1 and 2.
    write_epochs(tmp_path, data, 2)
    tune = FakeTune(tmp_path)
    trained = trial(tune, data, finished=finished)
    reports = tune.reports
    if finished:  # the study holds it finished: the epochs on disk are reported again, none is trained
        assert [m["epoch"] for m, _, _ in reports] == [1, 2] and trained == []
        assert [m[trial_mod.DECIDED] for m, _, _ in reports] == [True, True]  # ASHA does not decide on them again
        return
    assert [m["epoch"] for m, _, _ in reports] == [1, 2, 3] and [e for _, e, _ in reports] == [1, 2, 3]
    assert trained == [3], "epochs already on disk were trained again"
    assert all(m["node_id"] == "node-1" for m, _, _ in reports)
    # epoch 1 was decided by the lost driver (the trial went on to epoch 2); epoch 2 may not have been
    assert [m.get(trial_mod.DECIDED) for m, _, _ in reports] == [True, False, None]


SCORES = [0.3, 0.2, 0.4, 0.1, 0.1, 0.35]
"""the scripted PRIMARY_METRIC of epochs 1..6: with rungs (2,) weights at 1 (best), 2 (rung), 3 (best), 6 (last);
the optimizer state at 2 and 6"""


def final_state(trial_dir: Path) -> dict:
    """The last epoch's checkpoint in a trial folder."""
    return ckpt_io.load(max(trial_dir.glob("checkpoint_*"), key=lambda f: ckpt_io.load_record(f).epoch))


@pytest.mark.parametrize(("known", "on_disk"), [(4, 4), (5, 5), (2, 5)],
                         ids=["restored-metrics-only", "two-after-the-weights", "lost-driver-replays-3-to-5"])
def test_a_resume_from_a_metrics_only_epoch_continues_from_the_latest_weights(tmp_path, data, trial, monkeypatch,
                                                                              known, on_disk):
    """Killed after epoch `on_disk` (its folder the last in storage), Tune restoring epoch `known`: the trial reports
    each epoch after `known` once (the replayed ones from their records), trains again unreported those after the
    latest checkpoint with the optimizer state (epoch 2, the rung: epoch 3's best-so-far weights have none), and
    ends where an uninterrupted run ends: the same weights, optimizer state and metrics (each epoch is seeded; the
    optimizer state came back with the weights)."""
    script_scores(monkeypatch, SCORES)
    whole = FakeTune(tmp_path / "whole")
    assert trial(whole, data, rungs=(2,), epochs=6) == [1, 2, 3, 4, 5, 6]
    assert [e for _, e, weights in whole.reports if weights] == [1, 2, 3, 6]
    folders = sorted((tmp_path / "whole").glob("checkpoint_*"))
    assert [ckpt_io.load_record(f).epoch for f in folders if ckpt_io.load_record(f).optimizer] == [2, 6]
    assert [bool(ckpt_io.load(f)["optimizer_state"]) for f in folders[:3]] == [False, True, False]

    trial_dir = tmp_path / "resumed"
    for folder in sorted((tmp_path / "whole").glob("checkpoint_*"))[:on_disk]:
        shutil.copytree(folder, trial_dir / folder.name)
    tune = FakeTune(trial_dir, restore=trial_dir / f"checkpoint_{known - 1:06d}")
    assert ckpt_io.load_record(tune.restore).weights == (known in (1, 2, 3))  # Tune restores a record only
    trained = trial(tune, data, rungs=(2,), epochs=6)
    assert [e for _, e, _ in tune.reports] == list(range(known + 1, 7)), "an epoch was reported twice, or none"
    assert trained == [3, 4, 5, 6], "the trial did not go on from its latest rung (epoch 2)"  # 3..on_disk unreported
    assert [m[PRIMARY_METRIC] for m, _, _ in tune.reports] == SCORES[known:]
    assert [m.get(trial_mod.DECIDED) for m, _, _ in tune.reports] == [True] * (on_disk - known - 1) + [False] * (
        on_disk > known) + [None] * (6 - on_disk)
    # A replayed epoch is reported as it was (epoch 3 with its weights); 4 and 5 beat nothing: only records.
    assert [e for _, e, weights in tune.reports if weights] == [e for e in (3, 6) if e > known]
    expected, got = final_state(tmp_path / "whole"), final_state(trial_dir)
    for key in ("model_state", "optimizer_state"):
        assert torch.equal(*(torch.cat([t.flatten().float() for t in tensors(c[key])]) for c in (expected, got))), key
    speed = "img_per_s"  # the one figure a repeat does not repeat
    assert {k: v for k, v in got["metrics"].items() if k != speed} == {
        k: v for k, v in expected["metrics"].items() if k != speed}


def tensors(state) -> list:
    """Every tensor in a (nested) state dict, in order."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for key in sorted(state, key=str) for t in tensors(state[key])]
    if isinstance(state, (list, tuple)):
        return [t for item in state for t in tensors(item)]
    return []


def test_a_trial_resumed_twice_reports_each_epoch_once(tmp_path, data, trial, monkeypatch):
    """Killed after epoch 4, resumed, killed after epoch 5 (before Tune saved it), resumed again: 1..6 once each."""
    script_scores(monkeypatch, SCORES)
    whole = FakeTune(tmp_path / "whole")
    trial(whole, data, rungs=(2,), epochs=6)
    trial_dir = tmp_path / "t"
    for folder in sorted((tmp_path / "whole").glob("checkpoint_*"))[:4]:
        shutil.copytree(folder, trial_dir / folder.name)
    seen = [1, 2, 3, 4]
    first = FakeTune(trial_dir, restore=trial_dir / "checkpoint_000003")
    trial(first, data, rungs=(2,), epochs=6)
    seen += [e for _, e, _ in first.reports]
    shutil.rmtree(trial_dir / "checkpoint_000005")  # the last epoch's copy did not make it; Tune has epoch 4
    second = FakeTune(trial_dir, restore=trial_dir / "checkpoint_000003")
    trained = trial(second, data, rungs=(2,), epochs=6)
    assert [e for _, e, _ in second.reports] == [5, 6] and trained == [3, 4, 5, 6]
    assert seen == [1, 2, 3, 4, 5, 6]
