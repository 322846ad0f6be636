"""Baselines that need no learning: what a model must beat before anyone should use it.

    base = Baselines.fit(targets[train_idx], targets[val_idx], labels)
    base.metrics(targets[test_idx], "test")   # {"baseline/test/micro_f1": ..., "baseline/test/map": ...}

Two rules, both read off the train split only:
- thresholded figures (micro/macro F1, exact match, precision, recall, hamming): predict the
  k most frequent train labels for every image. k is chosen on the validation split, for each
  headline figure separately (`K_METRICS`), so each baseline figure is the best such rule can do;
  k = 0 ("predict nothing") is a candidate, and for exact match it is often the best one
  (half the course images carry no label). Thresholding the label prior predicts exactly
  such a top-k set, so this covers "prior >= t" for every t.
- threshold-free figures (mAP, loss): the label prior (train positive rate per label) as
  constant probabilities; the loss is its binary cross-entropy, comparable with `bce` runs.

This module is the only place that computes baselines; train, eval, the search summary,
promotion, the model card and MLflow (`baseline/...` metrics) all call it. `beats_baseline`
is the only place that decides whether a model beats them (`BEATS_BASELINE_RULE` says how).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import log_loss

from trainable.metrics import CV_FOLDS, MetricsCollector
from trainable.errors import LabeltuneError

PREFIX = "baseline/"
"""every baseline metric key is `baseline/<split>/<metric>`"""
K_METRICS = ("micro_f1", "macro_f1", "exact_match")
"""the thresholded figures whose k is chosen on val; the other thresholded figures use micro_f1's k"""
THRESHOLD_FREE = ("map", "loss")
"""figures computed from the prior probabilities, not from a top-k rule"""
EPS = 1e-4
"""the prior is clipped to [EPS, 1 - EPS] so the log loss of a label never seen stays finite"""


class BaselineError(LabeltuneError, ValueError):
    """Baselines cannot be computed (an empty split)."""


@dataclass
class Baselines:
    labels: list[str]
    prior: np.ndarray
    """train positive rate per label, float64 L"""
    k: dict[str, int]
    """metric -> number of most frequent labels predicted for every image (chosen on val)"""

    @classmethod
    def fit(cls, train_targets: np.ndarray, val_targets: np.ndarray, labels: list[str]) -> "Baselines":
        """The label prior from train; for each of K_METRICS the k (0..L) that scores best on val."""
        train, val = np.asarray(train_targets) > 0, np.asarray(val_targets) > 0
        for name, t in (("train", train), ("val", val)):
            if t.ndim != 2 or t.shape[1] != len(labels) or len(t) == 0:
                raise BaselineError(f"baselines: the {name} split is empty or not N x {len(labels)} "
                                    f"(shape {t.shape}): nothing to compute a baseline from")
        prior = train.mean(axis=0).astype(np.float64)
        base = cls(list(labels), prior, {})
        scores = {m: [] for m in K_METRICS}
        for k in range(len(labels) + 1):
            figures = base._collector(val, k, "val").compute()
            for m in K_METRICS:
                scores[m].append(figures[f"val/{m}"])
        base.k = {m: int(np.argmax(s)) for m, s in scores.items()}  # argmax: the smallest k among ties
        return base

    def order(self) -> np.ndarray:
        """Label indices from the most to the least frequent in train (stable for ties)."""
        return np.argsort(-self.prior, kind="stable")

    def top(self, k: int) -> list[str]:
        """The k most frequent train labels."""
        return [self.labels[j] for j in self.order()[:k]]

    def _collector(self, targets: np.ndarray, k: int, prefix: str) -> MetricsCollector:
        # Constant prior probabilities; a threshold that only the k most frequent labels reach.
        n = len(targets)
        threshold = np.full(len(self.labels), 2.0)
        threshold[self.order()[:k]] = 0.0
        collector = MetricsCollector(self.labels, threshold=threshold, prefix=prefix)
        collector.update(np.broadcast_to(self.prior, (n, len(self.labels))), targets)
        return collector

    def metrics(self, targets: np.ndarray, split: str) -> dict[str, float]:
        """The baseline figures on one split: `baseline/<split>/<metric>` -> value."""
        targets = np.asarray(targets) > 0
        if len(targets) == 0:
            raise BaselineError(f"baselines: the {split} split is empty")
        out: dict[str, float] = {}
        by_k = {k: self._collector(targets, k, split).compute() for k in set(self.k.values())}
        main = by_k[self.k["micro_f1"]]
        for name in ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "macro_precision",
                     "macro_recall", "exact_match", "hamming_acc"):
            source = by_k[self.k[name]] if name in self.k else main
            out[f"{PREFIX}{split}/{name}"] = source[f"{split}/{name}"]
        out[f"{PREFIX}{split}/map"] = main[f"{split}/map"]  # AP of a constant score = the label's positive rate
        probs = np.clip(np.broadcast_to(self.prior, targets.shape), EPS, 1 - EPS)
        out[f"{PREFIX}{split}/loss"] = float(log_loss(targets.ravel(), probs.ravel(), labels=[0, 1]))
        for name, k in self.k.items():
            out[f"{PREFIX}k/{name}"] = float(k)
        return out

    def describe(self) -> str:
        """One line saying what the micro-F1 baseline predicts."""
        k = self.k["micro_f1"]
        if k == 0:
            return "predict no label"
        return f"predict {', '.join(self.top(k))} for every image"

    def to_dict(self) -> dict:
        """Plain values for a search record or a checkpoint."""
        return {"labels": self.labels, "prior": [float(p) for p in self.prior], "k": dict(self.k)}

    @classmethod
    def from_dict(cls, values: dict) -> "Baselines":
        return cls(list(values["labels"]), np.asarray(values["prior"], dtype=np.float64),
                   {str(m): int(k) for m, k in values["k"].items()})


def for_splits(targets: np.ndarray, splits: dict[str, np.ndarray], labels: list[str]) -> tuple[Baselines, dict]:
    """Fit on splits['train'] (k on 'val') and score every split given: (baselines, metrics of val and test)."""
    targets = np.asarray(targets)
    base = Baselines.fit(targets[splits["train"]], targets[splits["val"]], labels)
    figures: dict[str, float] = {}
    for split in ("val", "test"):
        if split in splits and len(splits[split]):
            figures.update(base.metrics(targets[splits[split]], split))
    return base, figures


BEATS_BASELINE_RULE = (f"promote moves the alias only when the model's validation micro-F1 at the thresholds it "
                       f"chooses on val, estimated by {CV_FOLDS}-fold cross-validation inside val, beats the best "
                       f"no-learning baseline's validation micro-F1")
"""the rule `beats_baseline` applies, in one sentence for the search summary and promote's messages"""


def beats_baseline(val_micro_f1: float, baseline_val_micro_f1: float) -> bool:
    """The one test of "beats the no-learning baseline": validation micro-F1 strictly above the baseline's.

    `val_micro_f1` is the model's at the thresholds it will be used with; thresholds chosen on
    these very val images give an optimistic in-sample figure, so promotion passes the
    cross-validated estimate (`trainable.metrics.cv_micro_f1`). Test figures never decide.
    A NaN never beats anything.
    """
    return bool(float(val_micro_f1) > float(baseline_val_micro_f1))


def compare_line(model_value: float, metrics: dict, split: str, metric: str = "micro_f1") -> str:
    """`val/micro_f1 0.8123 (baseline 0.3150, +0.4973)`: a model figure next to its baseline."""
    key = f"{PREFIX}{split}/{metric}"
    if key not in metrics:
        return f"{split}/{metric} {model_value:.4f}"
    base = metrics[key]
    return f"{split}/{metric} {model_value:.4f} (baseline {base:.4f}, {model_value - base:+.4f})"
