"""Weights only where they are needed (issue 24 item 2): which epochs of a trial write weights, what every other
epoch leaves (a record), and that pruning and promotion still find the best epoch's weights. Fast: no Ray start,
the dummy model, Tune's own checkpoint manager and Result. tests/test_trial.py resumes trials from such folders."""

from __future__ import annotations

import shutil
import types
from pathlib import Path

import numpy as np
import pytest
from ray.air.result import Result
from ray.train._internal.checkpoint_manager import _CheckpointManager
from ray.train._internal.session import _TrainingResult
from ray.tune import Checkpoint, CheckpointConfig

from trainable import checkpoint as ckpt_io
from trainable.checkpoint import CHECKPOINT_FILE, RECORD_FILE, needs_weights
from trainable.config import PRIMARY_METRIC, PRIMARY_MODE, WORST_SCORE, TrainConfig, better
from trainable.gym import Gym

CONFIG = {"model": "dummy", "image_size": 32, "device": "cpu", "threads": 1, "pretrained": False}
NAN = float("nan")


def weights_epochs(scores: list[float], rungs: list[int]) -> list[int]:
    """The epochs needs_weights picks for a trial of len(scores) epochs, the best updated as the Gym does."""
    picked, best = [], WORST_SCORE
    for epoch, score in enumerate(scores, 1):
        if needs_weights(epoch, score, best, rungs, last=len(scores)):
            picked.append(epoch)
        best = score if better(score, best) else best
    return picked


@pytest.mark.parametrize(("scores", "rungs", "expected"), [
    ([0.2, 0.2, 0.1, 0.3, 0.25], [1, 3], [1, 3, 4, 5]),  # a tie is no improvement; a rung and the last always
    ([0.1, 0.2, 0.3, 0.4, 0.5], [], [1, 2, 3, 4, 5]),  # a trial that keeps improving keeps every epoch
    ([0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [1, 3, 9], [1, 3, 9, 10]),
    ([NAN, 0.1, NAN, 0.1, 0.05, 0.2], [], [2, 6]),  # NaN never beats the best
    ([0.3], [], [1]),
])
def test_needs_weights_picks_the_best_so_far_the_rungs_and_the_last_epoch(scores, rungs, expected):
    assert weights_epochs(scores, rungs) == expected


def test_the_rungs_a_search_passes_are_ashas_own():
    """search.asha.rungs is what the trainable is told; Ray 2.60's ASHA bracket (`_Bracket._rungs`, private) is what
    stops trials. Below max_t they must agree (at max_t the trial ends: the last epoch writes weights anyway)."""
    from ray.tune.schedulers.async_hyperband import _Bracket

    from search.asha import REDUCTION, rungs

    for max_t in range(1, 40):
        for grace in range(1, max_t + 1):
            bracket = _Bracket(min_t=grace, max_t=max_t, reduction_factor=REDUCTION, s=0)
            assert sorted(m for m, _ in bracket._rungs if m < max_t) == rungs(max_t, grace), (max_t, grace)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (40, 3, 128, 128), dtype=np.uint8)
    targets = (rng.random((40, 3)) < 0.3).astype(np.uint8)
    return images, targets, ["a", "b", "c"]


def script_scores(monkeypatch, scores: list[float]) -> None:
    """Every Gym's validation reports scores[epoch - 1] as PRIMARY_METRIC (the other metrics are real)."""
    original = Gym.evaluate_split

    def scripted(self, split="val", threshold=None):
        metrics = {**original(self, split, threshold).compute(), PRIMARY_METRIC: scores[self.epoch]}
        return types.SimpleNamespace(compute=lambda: metrics)

    monkeypatch.setattr(Gym, "evaluate_split", scripted)


def fit_into(folder: Path, data, scores: list[float], rungs, monkeypatch) -> list[Path]:
    """A Gym run of len(scores) epochs whose reports are copied to folder/checkpoint_<epoch - 1> (as Tune names them)."""
    script_scores(monkeypatch, scores)
    images, targets, labels = data
    gym = Gym(TrainConfig.from_dict({**CONFIG, "epochs": len(scores)}), images, targets, labels, data_fingerprint="fp")
    kept = []

    def keep(row, ckpt_dir):
        kept.append(folder / f"checkpoint_{row['epoch'] - 1:06d}")
        shutil.copytree(ckpt_dir, kept[-1])

    gym.fit(keep, rungs=rungs)
    return kept


def test_epochs_without_weights_leave_only_their_record(tmp_path, data, monkeypatch):
    scores = [0.2, 0.2, 0.1, 0.3, 0.25]
    folders = fit_into(tmp_path, data, scores, [1, 3], monkeypatch)
    with_weights = [i + 1 for i, f in enumerate(folders) if (f / CHECKPOINT_FILE).exists()]
    assert with_weights == weights_epochs(scores, [1, 3]) == [1, 3, 4, 5]
    for epoch, folder in enumerate(folders, 1):
        record = ckpt_io.load_record(folder)
        assert record.epoch == epoch and record.weights == (epoch in with_weights)
        assert record.metrics[PRIMARY_METRIC] == scores[epoch - 1] and not any(k.startswith("time/") for k in record.metrics)
        assert sorted(p.name for p in folder.iterdir()) == sorted([RECORD_FILE] + [CHECKPOINT_FILE] * record.weights)
        assert record.optimizer == (epoch in (1, 3, 5)), epoch  # a rung or the last: a resume continues from it
        if record.weights:  # a best-so-far epoch between rungs (4) holds the weights alone
            ckpt = ckpt_io.load(folder)
            assert ckpt["epoch"] == epoch and bool(ckpt["optimizer_state"]) == record.optimizer, epoch
    # Without rungs (labeltune train) every epoch writes its weights, as before.
    everything = fit_into(tmp_path / "train", data, scores, None, monkeypatch)
    assert all((f / CHECKPOINT_FILE).exists() and ckpt_io.load_record(f).optimizer for f in everything)


def test_a_record_cut_short_or_claiming_missing_weights_is_refused(tmp_path, data, monkeypatch):
    folders = fit_into(tmp_path, data, [0.2, 0.1, 0.3], [], monkeypatch)
    weights = folders[0] / CHECKPOINT_FILE
    weights.write_bytes(weights.read_bytes()[:100])  # the kill cut the weights' copy short, the record made it
    with pytest.raises(ckpt_io.CheckpointError, match="cut short"):
        ckpt_io.load_record(folders[0])
    record = folders[1] / RECORD_FILE
    record.write_text(record.read_text()[:20])
    with pytest.raises(ckpt_io.CheckpointError, match="not a labeltune epoch record"):
        ckpt_io.load_record(folders[1])
    (folders[2] / RECORD_FILE).unlink()  # an older labeltune's folder: the checkpoint alone
    assert ckpt_io.load_record(folders[2]) == ckpt_io.EpochRecord(3, ckpt_io.load(folders[2])["metrics"], True, True)


def test_pruning_and_promotion_keep_and_pick_the_best_epochs_weights(tmp_path, data, monkeypatch):
    """Tune's own checkpoint manager and Result over a trial whose best score is tied by later epochs without
    weights: the pruner keeps, and promotion ranks, the first epoch with it, which has weights."""
    from search.promote import load_members, rank_results
    from search.pruning import CheckpointPruner

    scores = [0.2, 0.5, 0.5, 0.4, 0.5, 0.3]
    trial_dir = tmp_path / "trial_t1"
    folders = fit_into(trial_dir, data, scores, [1], monkeypatch)
    assert [i + 1 for i, f in enumerate(folders) if (f / CHECKPOINT_FILE).exists()] == [1, 2, 6]
    manager = _CheckpointManager(CheckpointConfig(checkpoint_score_attribute=PRIMARY_METRIC,
                                                  checkpoint_score_order=PRIMARY_MODE))
    for epoch, folder in enumerate(folders, 1):  # registered as Tune does, in the order they were reported
        metrics = {**ckpt_io.load_record(folder).metrics, "training_iteration": epoch, "trial_id": "t1"}
        manager.register_checkpoint(_TrainingResult(Checkpoint.from_directory(str(folder)), metrics))

    def ranked():
        result = Result(metrics={"trial_id": "t1", "config": {}}, checkpoint=manager.latest_checkpoint_result.checkpoint,
                        error=None, path=str(trial_dir),
                        best_checkpoints=[(r.checkpoint, r.metrics) for r in manager.best_checkpoint_results])
        return rank_results([result])

    ((_, best_folder, metrics),) = ranked()
    assert best_folder == folders[1] and metrics[PRIMARY_METRIC] == 0.5
    trial = types.SimpleNamespace(trial_id="t1", run_metadata=types.SimpleNamespace(checkpoint_manager=manager))
    CheckpointPruner(PRIMARY_METRIC, PRIMARY_MODE).prune(trial)
    assert sorted(p.name for p in trial_dir.iterdir()) == [folders[1].name, folders[5].name]  # best and latest
    ((_, best_folder, _),) = ranked()  # Tune still lists the pruned ones: the pick is the same
    members, checkpoints = load_members(ranked(), PRIMARY_METRIC)
    assert best_folder == folders[1] and members[0].epoch == 2 and checkpoints[0]["epoch"] == 2


def test_promotion_by_another_metric_ranks_only_epochs_with_weights(tmp_path, data, monkeypatch):
    """--metric other than PRIMARY_METRIC: its best epoch may have kept only its record (or been pruned); the
    ranking takes the best epoch by that metric among those whose weights are on disk."""
    from search.promote import rank_results

    folders = fit_into(tmp_path / "trial_t2", data, [0.5, 0.4, 0.3, 0.6], [], monkeypatch)
    assert [(f / CHECKPOINT_FILE).exists() for f in folders] == [True, False, False, True]
    other = [0.9, 0.1, 0.95, 0.2]  # by this metric epoch 3 (no weights) is best, then epoch 1 (weights)
    pairs = [(Checkpoint.from_directory(str(f)), {"other": v, "training_iteration": e, "trial_id": "t2"})
             for e, (f, v) in enumerate(zip(folders, other), 1)]
    result = Result(metrics={"trial_id": "t2"}, checkpoint=pairs[-1][0], error=None, path=str(tmp_path / "trial_t2"),
                    best_checkpoints=pairs)
    ((_, folder, metrics),) = rank_results([result], "other", "max")
    assert folder == folders[0] and metrics["other"] == 0.9
    ((_, folder, _),) = rank_results([result], "other", "min")
    assert folder == folders[3]  # epoch 2 (0.1) has no weights
