"""One trial without Ray or Tune: the recipe behind `labeltune train` (the way to debug a single trial).

    run = LocalTraining(cfg, data_dir, out, resume=False, skip_bad_images=False, tracker_uri=None, track=True)
    final = run.fit(echo)                  # one line per epoch, a tqdm bar inside each (a terminal only)
    run.finish(final, baselines, echo)     # plots, the MLflow run's baselines and artifacts

The checkpoint of every epoch is copied to OUT/checkpoint.pt, the best epoch's to OUT/best.pt, and
the epochs so far to OUT/metrics.json, so `--resume` continues where a run stopped.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

from trainable import store
from trainable.config import best_score, better
from trainable.errors import LabeltuneError

BEST_FILE = "best.pt"
HISTORY_FILE = "metrics.json"


def load_decoded(data_dir: str, color: str, skip_bad_images: bool):
    """(dataset, decoded images) of a folder in the course layout, in `color`."""
    from trainable import data as data_mod

    dataset = data_mod.load(data_dir, skip_bad_images=skip_bad_images)
    return dataset, data_mod.decode(dataset, color)


def write_plots(out: Path, history: list[dict], metrics: dict, labels: list[str], prefix: str) -> list[Path]:
    """curves.png (when there is a history), the per-label F1 bars and the confusion grid of `prefix`."""
    from trainable import plots

    written = []
    if history:
        written.append(plots.plot_curves(history, out / "curves.png"))
    written.append(plots.plot_label_f1(metrics, labels, out / f"{prefix}_label_f1.png", prefix=prefix))
    written.append(plots.plot_confusion_grid(metrics, labels, out / f"{prefix}_confusion.png", prefix=prefix))
    return written


class LocalTraining:
    """One `labeltune train`: the data, the Gym, the epochs so far, the best of them, its MLflow run."""

    def __init__(self, cfg, data_dir: str, out: str | Path, resume: bool, skip_bad_images: bool,
                 tracking_uri: str | None, track: bool) -> None:
        from trainable import checkpoint as ckpt_io
        from trainable.gym import CHECKPOINT_FILE, Gym
        from trainable.metrics import PRIMARY_METRIC

        self.cfg, self.out = cfg, Path(out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.dataset, images = load_decoded(data_dir, cfg.color, skip_bad_images)
        start = ckpt_io.load(self.out / CHECKPOINT_FILE) if resume else None
        self.gym = Gym(cfg, images, self.dataset.targets, self.dataset.labels,
                       data_fingerprint=self.dataset.fingerprint, checkpoint=start)
        history_path = self.out / HISTORY_FILE
        self.history: list[dict] = (json.loads(history_path.read_text())["history"]
                                    if resume and history_path.exists() else [])
        self.best = best_score(h[PRIMARY_METRIC] for h in self.history)
        self.tracker = None
        if track:
            from search.tracking.local_run import LocalRun

            self.tracker = LocalRun(cfg, self.dataset, tracking_uri)
        self._bar = None

    @property
    def n_train(self) -> int:
        return len(self.gym.splits["train"])

    def fit(self, echo: Callable[[str], None]) -> dict:
        """Train the remaining epochs, echoing one line per epoch; the last epoch's metrics."""
        echo(f"{self.cfg.model} on {len(self.gym.splits['all'])} images ({self.n_train} train, "
             f"{len(self.gym.splits['val'])} val) on {self.gym.device}, epochs {self.gym.epoch + 1}..{self.cfg.epochs}")
        self._new_bar(self.gym.epoch + 1)
        try:
            self.gym.fit(lambda metrics, ckpt_dir: self._report(metrics, ckpt_dir, echo), on_batch=self._on_batch)
        except LabeltuneError:  # an empty split (found before the first epoch) or a diverged loss
            if self.tracker:
                self.tracker.finish("FAILED", [])
            raise
        finally:
            self._bar.close()
        if not self.history:
            raise LabeltuneError(f"nothing to train: the checkpoint is at epoch {self.gym.epoch} "
                                 f"and --epochs is {self.cfg.epochs}")
        return self.history[-1]

    def finish(self, final: dict, baselines: dict) -> list[Path]:
        """The plots of the last epoch; the MLflow run gets the baselines and the artifacts, and ends FINISHED."""
        artifacts = write_plots(self.out, self.history, final, self.dataset.labels, "val")
        if self.tracker:
            self.tracker.log_baselines(baselines)
            self.tracker.finish("FINISHED", artifacts + [self.out / HISTORY_FILE])
        return artifacts

    def _on_batch(self, n: int, loss) -> None:
        self._bar.update(n)
        self._bar.set_postfix(loss=f"{float(loss):.4f}")

    def _new_bar(self, epoch: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=self.n_train, desc=f"epoch {epoch}/{self.cfg.epochs}", unit="img", leave=False,
                         disable=None)  # a terminal only, never a piped log

    def _report(self, metrics: dict, ckpt_dir: Path, echo: Callable[[str], None]) -> None:
        """The Gym's per-epoch report: keep the checkpoint (and the best), the history, the line, the MLflow step."""
        from trainable.gym import CHECKPOINT_FILE
        from trainable.metrics import PRIMARY_METRIC

        self._bar.close()
        self.history.append(metrics)
        shutil.copy2(ckpt_dir / CHECKPOINT_FILE, self.out / CHECKPOINT_FILE)
        if better(metrics[PRIMARY_METRIC], self.best):
            self.best = metrics[PRIMARY_METRIC]
            shutil.copy2(ckpt_dir / CHECKPOINT_FILE, self.out / BEST_FILE)
        store.write_json(self.out / HISTORY_FILE, {"config": self.cfg.to_dict(), "labels": self.dataset.labels,
                                                   "history": self.history})
        echo(f"epoch {metrics['epoch']}/{self.cfg.epochs}  train/loss {metrics['train/loss']:.4f}  "
             f"val/loss {metrics['val/loss']:.4f}  {PRIMARY_METRIC} {metrics[PRIMARY_METRIC]:.4f}  "
             f"val/macro_f1 {metrics['val/macro_f1']:.4f}  {metrics['img_per_s']:.0f} img/s")
        if self.tracker:
            self.tracker.log_epoch(metrics)
        if metrics["epoch"] < self.cfg.epochs:
            self._new_bar(metrics["epoch"] + 1)
