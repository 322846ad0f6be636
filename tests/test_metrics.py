"""MetricsCollector figures equal scikit-learn's computed here independently; tune_thresholds never hurts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from trainable.metrics import PRIMARY_METRIC, PRIMARY_MODE, MetricsCollector, predict, tune_thresholds

LABELS = ["bird", "car", "dog", "night", "river", "sea"]


def _data(seed: int = 0, n: int = 97):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, len(LABELS))) < [0.5, 0.3, 0.1, 0.6, 0.0, 0.2]).astype(np.uint8)  # river: none
    # probabilities that carry some signal, so that F1 and AP are not trivial
    probs = np.clip(0.35 * targets + 0.65 * rng.random(targets.shape), 0, 1).astype(np.float32)
    return probs, targets


def _collect(probs, targets, threshold, batches=(10, 40, 47), losses=(0.9, 0.5, 0.7), prefix="val"):
    collector = MetricsCollector(LABELS, threshold=threshold, prefix=prefix)
    start = 0
    for size, loss in zip(batches, losses):
        collector.update(torch.from_numpy(probs[start:start + size]), torch.from_numpy(targets[start:start + size]),
                         loss=loss)
        start += size
    return collector


def _expected(probs, targets, threshold, losses, batches):
    """Every figure straight from scikit-learn (warnings of labels without positives allowed here)."""
    preds = (probs >= np.broadcast_to(threshold, (len(LABELS),))).astype(int)
    e = {"val/loss": sum(l * b for l, b in zip(losses, batches)) / sum(batches)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for avg in ("micro", "macro"):
            e[f"val/{avg}_precision"] = skm.precision_score(targets, preds, average=avg, zero_division=0)
            e[f"val/{avg}_recall"] = skm.recall_score(targets, preds, average=avg, zero_division=0)
            e[f"val/{avg}_f1"] = skm.f1_score(targets, preds, average=avg, zero_division=0)
        e["val/exact_match"] = skm.accuracy_score(targets, preds)
        e["val/hamming_acc"] = 1 - skm.hamming_loss(targets, preds)
        with_pos = targets.sum(0) > 0
        e["val/map"] = skm.average_precision_score(targets[:, with_pos], probs[:, with_pos], average="macro")
        for j, label in enumerate(LABELS):
            e[f"val/f1/{label}"] = skm.f1_score(targets[:, j], preds[:, j], zero_division=0)
            e[f"val/acc/{label}"] = skm.accuracy_score(targets[:, j], preds[:, j])
            tn, fp, fn, tp = skm.confusion_matrix(targets[:, j], preds[:, j], labels=[0, 1]).ravel()
            e.update({f"val/tn/{label}": tn, f"val/fp/{label}": fp, f"val/fn/{label}": fn, f"val/tp/{label}": tp})
    return e


@pytest.mark.parametrize("threshold", (0.5, 0.3, np.array([0.2, 0.4, 0.5, 0.6, 0.5, 0.7])))
def test_every_metric_equals_scikit_learn(threshold):
    probs, targets = _data()
    batches, losses = (10, 40, 47), (0.9, 0.5, 0.7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a label without positives (river) must not warn
        got = _collect(probs, targets, threshold, batches, losses).compute()
    expected = _expected(probs, targets, threshold, losses, batches)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(float(value), abs=1e-9), key
        if "/tp/" in key or "/fp/" in key or "/fn/" in key or "/tn/" in key:
            assert type(got[key]) is int, key
        else:
            assert type(got[key]) is float, key
    assert got["val/f1/river"] == 0.0 and got["val/tp/river"] == 0
    assert PRIMARY_METRIC in got and PRIMARY_MODE == "max"


def test_loss_is_the_batch_size_weighted_mean():
    probs, targets = _data()
    got = _collect(probs, targets, 0.5, batches=(1, 96), losses=(10.0, 1.0)).compute()
    assert got["val/loss"] == pytest.approx((10.0 * 1 + 1.0 * 96) / 97)


def test_no_positives_anywhere_and_no_predictions_neither_crash_nor_warn():
    collector = MetricsCollector(LABELS, threshold=0.5, prefix="test")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        collector.update(np.zeros((4, len(LABELS))), np.zeros((4, len(LABELS))))
        got = collector.compute()
    assert got["test/micro_f1"] == 0.0 and got["test/map"] == 0.0
    assert got["test/exact_match"] == 1.0 and got["test/tn/dog"] == 4
    assert "test/loss" not in got  # no losses given


def test_accumulated_outputs_and_input_checks():
    probs, targets = _data()
    collector = _collect(probs, targets, 0.5)
    np.testing.assert_array_equal(collector.probs, probs)
    np.testing.assert_array_equal(collector.targets, targets)
    # a bf16 CUDA-style tensor is accepted and copied
    collector.update(torch.full((2, len(LABELS)), 0.75, dtype=torch.bfloat16), torch.ones(2, len(LABELS)))
    assert collector.probs.shape == (99, len(LABELS)) and collector.probs[-1, 0] == 0.75
    with pytest.raises(ValueError, match="one column per label"):
        collector.update(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="one per label"):
        MetricsCollector(LABELS, threshold=[0.5, 0.5])
    with pytest.raises(ValueError, match="no outputs"):
        MetricsCollector(LABELS).compute()


def test_update_copies_the_callers_buffer():
    buffer = np.full((3, len(LABELS)), 0.9, dtype=np.float32)
    collector = MetricsCollector(LABELS)
    collector.update(buffer, np.ones_like(buffer))
    buffer[:] = 0.0
    assert collector.compute()["val/micro_recall"] == 1.0


def test_tune_thresholds_never_lowers_a_labels_f1():
    probs, targets = _data(seed=3, n=300)
    thresholds = tune_thresholds(probs, targets, default=0.5)
    assert thresholds.shape == (len(LABELS),)
    default_pred, tuned_pred = predict(probs, 0.5), predict(probs, thresholds)
    improved = 0
    for j in range(len(LABELS)):
        before = skm.f1_score(targets[:, j], default_pred[:, j], zero_division=0)
        after = skm.f1_score(targets[:, j], tuned_pred[:, j], zero_division=0)
        assert after >= before
        improved += after > before
        if thresholds[j] != 0.5:
            assert after > before  # a threshold moves only for a strict gain
    assert improved >= 1
    assert thresholds[LABELS.index("river")] == 0.5  # no positives: default kept
    grid = np.linspace(0.05, 0.95, 19)
    assert all(t == 0.5 or np.isclose(grid, t).any() for t in thresholds)


def test_tune_thresholds_finds_a_low_threshold_for_underconfident_scores():
    targets = np.array([[1], [1], [1], [0], [0], [0]], dtype=np.uint8)
    probs = np.array([[0.3], [0.35], [0.4], [0.1], [0.05], [0.2]])
    thresholds = tune_thresholds(probs, targets, default=np.array([0.5]))
    assert 0.2 < thresholds[0] <= 0.3
    assert skm.f1_score(targets[:, 0], predict(probs, thresholds)[:, 0]) == 1.0


def test_the_global_threshold_is_rechosen_for_micro_f1_and_kept_unless_beaten():
    from sklearn.metrics import f1_score

    from trainable.metrics import THRESHOLD_GRID, choose_global_threshold

    rng = np.random.default_rng(0)
    targets = (rng.random((300, 3)) < 0.2).astype(np.uint8)
    probs = np.clip(0.25 * targets + 0.3 * rng.random((300, 3)), 0, 1)  # positives score higher, all below 0.5
    chosen = choose_global_threshold(probs, targets, default=0.5)
    best = max(THRESHOLD_GRID, key=lambda t: f1_score(targets, probs >= t, average="micro", zero_division=0))
    assert f1_score(targets, probs >= chosen, average="micro") == pytest.approx(
        f1_score(targets, probs >= best, average="micro"))
    assert chosen < 0.5
    # a perfect default stays: no grid value beats it strictly
    assert choose_global_threshold(targets * 0.9, targets, default=0.5) == 0.5


def test_only_labels_with_enough_validation_positives_get_their_own_threshold():
    from trainable.metrics import choose_thresholds

    targets = np.zeros((400, 2), dtype=np.uint8)
    targets[:100, 0] = 1                      # 100 positives, separated at 0.5
    targets[:4, 1] = 1                        # 4 positives, all scored 0.3: found only below the global 0.5
    probs = np.where(targets[:, [0]] > 0, 0.6, 0.4) * np.array([1.0, 0.0]) + np.where(targets > 0, 0.3, 0.1) * [0, 1]
    global_t, per_label = choose_thresholds(probs, targets, default=0.5, min_positives=10)
    assert global_t == 0.5 and per_label.tolist() == [0.5, 0.5]   # 4 < 10 positives: label 1 keeps the global one
    _, few = choose_thresholds(probs, targets, default=0.5, min_positives=1)
    assert few[0] == 0.5 and 0.1 < few[1] <= 0.3                  # with no minimum it gets its own


# ---- the cross-validated guard of per-label thresholds (issue 13) ---------------------------------

COARSE_GRID = np.array([0.3, 0.4, 0.5, 0.6, 0.7])
"""short grids keep these tests fast (each threshold choice is a scikit-learn call per grid value)"""


def _same_calibration(seed: int = 8, n: int = 200):
    """Three labels with one and the same weak score distribution: any threshold of a label's own is noise."""
    rng = np.random.default_rng(seed)
    targets = rng.random((n, 3)) < 0.35
    probs = np.clip(0.5 + 0.1 * targets + 0.25 * rng.standard_normal((n, 3)), 0, 1)
    return probs, targets


def _different_calibration(seed: int = 0, n: int = 200):
    """Label 0 separates at 0.7, label 1 at 0.2: no one threshold serves both."""
    rng = np.random.default_rng(seed)
    targets = rng.random((n, 2)) < 0.4
    probs = np.clip(np.where(targets, [0.8, 0.3], [0.6, 0.1]) + 0.04 * rng.standard_normal((n, 2)), 0, 1)
    return probs, targets


@pytest.mark.parametrize("guard", ("cv", "cv-label"))
def test_the_cv_guard_falls_back_to_the_global_threshold_when_per_label_ones_overfit(guard):
    from trainable.metrics import choose_thresholds, cv_predictions

    probs, targets = _same_calibration()
    micro = lambda pred: skm.f1_score(targets, pred, average="micro")  # noqa: E731
    global_t, in_sample = choose_thresholds(probs, targets, 0.5, 40, guard="insample", grid=COARSE_GRID)
    # the in-sample guard keeps own thresholds: they raise validation micro F1 on the data they were tuned on
    assert (in_sample != global_t).any() and micro(probs >= in_sample) > micro(probs >= global_t)
    # ... but out of fold they lose to the re-chosen global threshold
    global_pred, own_pred = cv_predictions(probs, targets, 0.5, 40, grid=COARSE_GRID)
    assert micro(own_pred) < micro(global_pred)
    t, guarded = choose_thresholds(probs, targets, 0.5, 40, guard=guard, grid=COARSE_GRID)
    assert t == global_t and guarded.tolist() == [global_t] * 3


@pytest.mark.parametrize("guard", ("cv", "cv-label"))
def test_the_cv_guard_keeps_per_label_thresholds_that_clearly_help(guard):
    from trainable.metrics import choose_thresholds

    probs, targets = _different_calibration()
    grid = np.array([0.2, 0.45, 0.7])
    global_t, per_label = choose_thresholds(probs, targets, 0.45, 40, guard=guard, grid=grid)
    assert global_t in (0.2, 0.7) and per_label.tolist() == [0.7, 0.2]
    assert skm.f1_score(targets, probs >= per_label, average="micro") > 0.97
    # a margin larger than any gain micro F1 can show sends them back to the global threshold
    _, strict = choose_thresholds(probs, targets, 0.45, 40, guard=guard, margin=1.0, grid=grid)
    assert strict.tolist() == [global_t] * 2


def test_the_cv_guard_is_deterministic():
    from trainable.metrics import choose_thresholds, cv_predictions

    probs, targets = _same_calibration(seed=3)
    fast = dict(folds=3, grid=np.array([0.3, 0.5, 0.7]))
    np.random.seed(1)
    first = choose_thresholds(probs, targets, 0.5, 40, guard="cv", **fast)
    folds_a = cv_predictions(probs, targets, 0.5, 40, **fast)
    np.random.seed(2)  # the global random state plays no part: the folds come from a seeded generator
    second = choose_thresholds(probs, targets, 0.5, 40, guard="cv", **fast)
    folds_b = cv_predictions(probs, targets, 0.5, 40, **fast)
    assert first[0] == second[0] and first[1].tolist() == second[1].tolist()
    assert all((a == b).all() for a, b in zip(folds_a, folds_b))
    # another fold seed gives other out-of-fold predictions: the fixed seed is what makes it repeatable
    other = cv_predictions(probs, targets, 0.5, 40, seed=1, **fast)
    assert any((a != b).any() for a, b in zip(folds_a, other))
    with pytest.raises(ValueError, match="guard"):
        choose_thresholds(probs, targets, guard="holdout")


# ---- issue 22 item 8: the figure promotion compares with the baseline ----------------------------


@pytest.mark.parametrize("data, kept", ((_same_calibration, False), (_different_calibration, True)))
def test_cv_micro_f1_is_the_guards_out_of_fold_figure_of_the_thresholds_chosen(data, kept):
    """The per-label rule's pooled out-of-fold micro F1 when the guard kept its thresholds, the global rule's when
    it did not; on thresholds chosen on these images it sits below their in-sample figure."""
    from trainable.metrics import choose_thresholds, cv_micro_f1, cv_predictions

    probs, targets = data()
    fast = dict(grid=COARSE_GRID, folds=5)
    global_t, thresholds = choose_thresholds(probs, targets, 0.5, 40, **fast)
    assert (thresholds != global_t).any() == kept
    global_pred, own_pred = cv_predictions(probs, targets, 0.5, 40, **fast)
    expected = skm.f1_score(targets, own_pred if kept else global_pred, average="micro")
    assert cv_micro_f1(probs, targets, global_t, thresholds, 0.5, 40, **fast) == pytest.approx(expected)


def test_cv_micro_f1_does_not_count_the_optimism_of_a_threshold_chosen_on_the_same_images():
    """Issue 22 item 8: a global threshold re-chosen on weak scores looks better on the images it was chosen on
    than out of fold; the cross-validated figure is the out-of-fold one."""
    from trainable.metrics import choose_thresholds, cv_micro_f1

    probs, targets = _same_calibration(seed=1)
    global_t, thresholds = choose_thresholds(probs, targets, 0.5, 40, grid=COARSE_GRID)
    assert (thresholds == global_t).all()  # the guard fell back to the global threshold
    in_sample = skm.f1_score(targets, probs >= global_t, average="micro")
    estimate = cv_micro_f1(probs, targets, global_t, thresholds, 0.5, 40, grid=COARSE_GRID)
    assert estimate < in_sample - 0.005
