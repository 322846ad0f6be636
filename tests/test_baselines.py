"""The no-learning baselines (trainable.baselines), checked against scikit-learn on hand-made targets."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, log_loss

from trainable.baselines import BaselineError, Baselines, for_splits

LABELS = ["a", "b", "c", "d"]


def targets_with(rates: list[float], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, len(rates))) < np.asarray(rates)).astype(np.uint8)


def test_top_k_is_chosen_on_val_for_each_figure_and_matches_sklearn():
    train = targets_with([0.6, 0.3, 0.05, 0.02], 400, 0)
    val = targets_with([0.6, 0.3, 0.05, 0.02], 200, 1)
    base = Baselines.fit(train, val, LABELS)
    assert base.top(2) == ["a", "b"]
    # every k scored by sklearn on val: the chosen one is the best
    for metric, score in (("micro_f1", lambda t, p: f1_score(t, p, average="micro", zero_division=0)),
                          ("macro_f1", lambda t, p: f1_score(t, p, average="macro", zero_division=0)),
                          ("exact_match", accuracy_score)):
        scores = []
        for k in range(len(LABELS) + 1):
            pred = np.zeros_like(val)
            pred[:, [LABELS.index(label) for label in base.top(k)]] = 1
            scores.append(score(val, pred))
        assert base.k[metric] == int(np.argmax(scores)), metric
        figures = base.metrics(val, "val")
        assert figures[f"baseline/val/{metric}"] == pytest.approx(max(scores))
    assert base.k["micro_f1"] in (1, 2)  # 'a' alone or 'a'+'b' (close at 60 % and 30 %), never the rare ones


def test_predicting_nothing_wins_exact_match_when_most_images_have_no_label():
    train = targets_with([0.1, 0.05, 0.02, 0.01], 500, 2)
    val = targets_with([0.1, 0.05, 0.02, 0.01], 300, 3)
    base = Baselines.fit(train, val, LABELS)
    assert base.k["exact_match"] == 0
    assert base.metrics(val, "val")["baseline/val/exact_match"] == pytest.approx((val.sum(1) == 0).mean())


def test_threshold_free_baselines_are_the_train_prior():
    train = targets_with([0.5, 0.2, 0.1, 0.0], 300, 4)   # 'd' never seen in train: the prior is clipped, not 0
    test = targets_with([0.5, 0.2, 0.1, 0.05], 200, 5)
    base = Baselines.fit(train, train, LABELS)
    figures = base.metrics(test, "test")
    prior = np.clip(train.mean(0), 1e-4, 1 - 1e-4)
    assert figures["baseline/test/loss"] == pytest.approx(
        log_loss(test.ravel(), np.tile(prior, (len(test), 1)).ravel()))
    aps = [average_precision_score(test[:, j], np.full(len(test), prior[j])) for j in range(4) if test[:, j].any()]
    assert figures["baseline/test/map"] == pytest.approx(np.mean(aps))
    assert np.isfinite(figures["baseline/test/loss"])


def test_for_splits_fits_on_train_only_and_scores_val_and_test():
    targets = np.zeros((100, 4), dtype=np.uint8)
    train, val, test = np.arange(0, 60), np.arange(60, 80), np.arange(80, 100)
    targets[train, 0] = 1          # train: 'a' everywhere
    targets[val, 1] = 1            # val and test: 'b' everywhere; a rule read off val or test would predict 'b'
    targets[test, 1] = 1
    base, figures = for_splits(targets, {"train": train, "val": val, "test": test}, LABELS)
    assert base.prior.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert base.top(1) == ["a"]
    # val picks k = 2 (a, b); the order comes from train, so 'a' is predicted too and costs precision
    assert base.k["micro_f1"] == 2 and base.top(2) == ["a", "b"]
    assert figures["baseline/test/micro_f1"] == pytest.approx(2 / 3)


def test_an_empty_split_is_an_error_that_names_it():
    with pytest.raises(BaselineError, match="val split is empty"):
        Baselines.fit(np.ones((5, 4)), np.zeros((0, 4)), LABELS)
    base = Baselines.fit(np.ones((5, 4)), np.ones((5, 4)), LABELS)
    with pytest.raises(BaselineError, match="test split is empty"):
        base.metrics(np.zeros((0, 4)), "test")


# ---- issue 22 item 8: one function decides "beats the baseline" ------------------------------------


def test_beats_baseline_is_strictly_above_the_baselines_val_micro_f1_and_nan_never_beats():
    from trainable.baselines import BEATS_BASELINE_RULE, beats_baseline

    assert beats_baseline(0.2668, 0.2667)
    assert not beats_baseline(0.2667, 0.2667)  # a tie is not a win: "predict nothing" ties a model that learned nothing
    assert not beats_baseline(0.2500, 0.2667)
    assert not beats_baseline(float("nan"), 0.2667)
    assert "cross-validation inside val" in BEATS_BASELINE_RULE and "validation micro-F1" in BEATS_BASELINE_RULE
