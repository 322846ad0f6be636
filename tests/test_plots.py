"""Each plot writes a real PNG from the metric dicts a trial reports."""

from __future__ import annotations

import numpy as np
import pytest

from trainable.metrics import MetricsCollector
from trainable.plots import plot_confusion_grid, plot_curves, plot_label_f1

LABELS = ["baby", "bird", "car", "clouds", "dog", "female", "flower", "male", "night", "people", "portrait",
          "river", "sea", "tree"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def metrics():
    rng = np.random.default_rng(0)
    targets = (rng.random((50, len(LABELS))) < 0.2).astype(np.uint8)
    collector = MetricsCollector(LABELS)
    collector.update(rng.random(targets.shape), targets, loss=0.4)
    return collector.compute()


def _assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_plot_curves(tmp_path, metrics):
    history = [dict(metrics, epoch=e, **{"train/loss": 1.0 / e}) for e in (1, 2, 3)]
    history.append({"epoch": 4, "train/loss": 0.2})  # an epoch without validation is skipped, not a crash
    path = plot_curves(history, tmp_path / "plots" / "curves.png")
    assert path == tmp_path / "plots" / "curves.png"
    _assert_png(path)


def test_plot_label_f1(tmp_path, metrics):
    _assert_png(plot_label_f1(metrics, LABELS, tmp_path / "f1.png"))


def test_plot_confusion_grid(tmp_path, metrics):
    _assert_png(plot_confusion_grid(metrics, LABELS, tmp_path / "confusion.png"))
    test_metrics = {k.replace("val/", "test/", 1): v for k, v in metrics.items()}
    _assert_png(plot_confusion_grid(test_metrics, LABELS[:3], tmp_path / "test.png", prefix="test"))
