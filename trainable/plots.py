"""PNG figures of a trial: learning curves, per-label F1 bars, per-label confusion matrices.

    plot_curves(history, out / "curves.png")                  # history: the epoch metric dicts
    plot_label_f1(metrics, labels, out / "label_f1.png")
    plot_confusion_grid(metrics, labels, out / "confusion.png")

They read the metric dicts of trainable.metrics (keys `<prefix>/f1/<label>`,
`<prefix>/tp/<label>`, ...), so the driver can draw them from what Tune reported without
the model. Drawn on matplotlib's Agg canvas through Figure objects (no pyplot state),
so they work headless and from threads; matplotlib is imported only when a plot is made.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure of width x height inches on its own Agg canvas: no pyplot, no global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | os.PathLike) -> Path:
    """Write `fig` as a PNG to `path` (its folder created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_curves(history: list[dict], path: str | os.PathLike) -> Path:
    """Loss (train/loss, val/loss) and F1 (val/micro_f1, val/macro_f1) against the epoch; absent keys are skipped."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(10, 4)
    ax_loss, ax_f1 = fig.subplots(1, 2)
    for ax, keys, ylabel, title in (
        (ax_loss, ("train/loss", "val/loss"), "loss (mean per image)", "Loss"),
        (ax_f1, ("val/micro_f1", "val/macro_f1"), "F1", "Validation F1"),
    ):
        for key in keys:
            points = [(row.get("epoch", i + 1), row[key]) for i, row in enumerate(history) if key in row]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", label=key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend()
    ax_f1.set_ylim(0, 1)
    return save_figure(fig, path)


def plot_label_f1(metrics: dict, labels: list[str], path: str | os.PathLike, prefix: str = "val") -> Path:
    """Horizontal bars of each label's F1, with the micro and macro F1 as vertical lines."""
    f1 = [float(metrics.get(f"{prefix}/f1/{label}", 0.0)) for label in labels]
    fig = new_figure(7, 1.0 + 0.35 * len(labels))
    ax = fig.subplots()
    ys = range(len(labels))
    ax.barh(ys, f1, color="tab:blue")
    for y, value in zip(ys, f1):
        ax.text(min(value + 0.01, 0.9), y, f"{value:.2f}", va="center", fontsize=8)
    for key, style in (("micro_f1", "--"), ("macro_f1", ":")):
        if f"{prefix}/{key}" in metrics:
            ax.axvline(metrics[f"{prefix}/{key}"], color="black", linestyle=style,
                       label=f"{key} {metrics[f'{prefix}/{key}']:.3f}")
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.set_ylabel("label")
    ax.set_title(f"F1 per label ({prefix})")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    return save_figure(fig, path)


def plot_confusion_grid(metrics: dict, labels: list[str], path: str | os.PathLike, prefix: str = "val") -> Path:
    """One 2x2 confusion matrix per label (rows: true 0/1, columns: predicted 0/1) from `<prefix>/tp|fp|fn|tn/<label>`."""
    cols = max(1, math.ceil(math.sqrt(len(labels))))
    rows = max(1, math.ceil(len(labels) / cols))
    fig = new_figure(2.6 * cols, 2.6 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, label in zip(axes, labels):
        counts = [[int(metrics.get(f"{prefix}/{k}/{label}", 0)) for k in row] for row in (("tn", "fp"), ("fn", "tp"))]
        total = max(1, sum(map(sum, counts)))
        ax.imshow([[c / total for c in row] for row in counts], cmap="Blues", vmin=0, vmax=1)
        for i in range(2):
            for j in range(2):
                share = counts[i][j] / total
                ax.text(j, i, str(counts[i][j]), ha="center", va="center",
                        color="white" if share > 0.5 else "black")
        ax.set_title(label)
        ax.set_xticks([0, 1], ["0", "1"])
        ax.set_yticks([0, 1], ["0", "1"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    for ax in axes[len(labels):]:
        ax.axis("off")
    fig.suptitle(f"Confusion matrix per label ({prefix})")
    return save_figure(fig, path)
