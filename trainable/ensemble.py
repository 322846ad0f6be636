"""Prediction from any checkpoint, single or ensemble, through one interface.

An ensemble checkpoint (`checkpoint.save_ensemble`) holds K trained members that may differ
in model, colour mode, image size and width; its prediction is the mean of the members'
sigmoid outputs, cut at the ensemble's own per-label thresholds. Callers do not branch:

    predictor = load_predictor(checkpoint.load(path), device="auto")
    images, kept = decode_files(paths, predictor.cfg.color)   # "rgb" for every ensemble
    probs, predictions = predictor.predict(images)            # N x L, 0/1 at predictor.thresholds

An ensemble takes RGB input whatever its members' colour modes: each member downsamples
and (gray members) converts to luma on the device, as trials of a search do with the one
RGB array it ships them. `evaluate_split` scores a predictor on a split of the members'
own train/val/test split (their split_seed and split_fractions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from trainable import checkpoint as ckpt_io
from trainable.config import ConfigError
from trainable.data import split as split_indices
from trainable.gym import Predictor, resolve_device
from trainable.metrics import MetricsCollector


@dataclass(frozen=True)
class EnsembleConfig:
    """What a caller of an EnsemblePredictor needs to know (the part of TrainConfig it reads)."""

    color: str = "rgb"
    """colour mode to decode images in: always rgb, each member converts to its own mode"""
    device: str = "auto"
    """auto | cpu | cuda, as given to load_predictor"""


class EnsemblePredictor:
    """K members loaded from an ensemble checkpoint: averaged probabilities and 0/1 predictions."""

    def __init__(self, checkpoint: dict, device: str = "auto") -> None:
        if ckpt_io.kind(checkpoint) != "ensemble":
            raise ckpt_io.CheckpointError("EnsemblePredictor needs an ensemble checkpoint; use load_predictor")
        self.cfg = EnsembleConfig(color="rgb", device=device)
        self.labels = list(checkpoint["labels"])
        self.thresholds = np.asarray(checkpoint["thresholds"], dtype=np.float32)
        self.device = resolve_device(device)
        self.members = [Predictor(member, device) for member in checkpoint["members"]]

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """uint8 N x 3 x 128 x 128 (RGB) -> N x L, the mean of the members' probabilities."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"an ensemble takes RGB images N x 3 x H x W (decode in predictor.cfg.color), "
                             f"got shape {tuple(images.shape)}")
        if len(images) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        total = np.zeros((len(images), len(self.labels)), np.float64)
        for member in self.members:
            total += member.probabilities(images)
        return (total / len(self.members)).astype(np.float32)

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, 0/1 predictions with the ensemble's per-label thresholds)."""
        probs = self.probabilities(images)
        return probs, (probs >= self.thresholds).astype(np.uint8)


def load_predictor(checkpoint: dict, device: str = "auto") -> Predictor | EnsemblePredictor:
    """A Predictor for a single checkpoint, an EnsemblePredictor for an ensemble (dicts as checkpoint.load returns)."""
    if ckpt_io.kind(checkpoint) == "ensemble":
        return EnsemblePredictor(checkpoint, device)
    return Predictor(checkpoint, device)


def splits(predictor: Predictor | EnsemblePredictor, n: int) -> dict[str, np.ndarray]:
    """The train/val/test/all index arrays of n images that the predictor's model(s) were trained with.

    Members must agree on split_fractions, split_seed and limit, or no split is theirs.
    """
    configs = [m.cfg for m in getattr(predictor, "members", [predictor])]
    settings = {(tuple(c.split_fractions), c.split_seed, c.limit) for c in configs}
    if len(settings) > 1:
        raise ckpt_io.CheckpointError(
            "the ensemble's members were trained on different splits "
            f"(split_fractions, split_seed, limit: {sorted(settings)}), so none of its splits is held out for all"
        )
    fractions, seed, limit = settings.pop()
    n = min(limit, n) if limit else n
    out = dict(zip(("train", "val", "test"), split_indices(n, fractions, seed)))
    out["all"] = np.arange(n)
    return out


def evaluate_split(predictor: Predictor | EnsemblePredictor, images: np.ndarray, targets: np.ndarray,
                   split: str = "val", threshold: float | np.ndarray | None = None) -> MetricsCollector:
    """A MetricsCollector over one split, filled with the predictor's probabilities.

    `collector.compute()` gives the metrics dict (thresholds: `threshold`, default the
    predictor's own), `collector.probs` the probabilities for threshold tuning. The loss is the
    binary cross-entropy of the (averaged) probabilities, whatever loss the members trained with.
    """
    indices = splits(predictor, len(targets))[split]
    if len(indices) == 0:
        raise ConfigError(f"the {split} split of {len(targets)} images is empty: nothing to score")
    probs = predictor.probabilities(np.asarray(images[indices]))
    split_targets = np.asarray(targets[indices], dtype=np.float32)
    eps = 1e-7  # BCE of a probability of exactly 0 or 1 is infinite
    loss = F.binary_cross_entropy(torch.from_numpy(probs).clamp(eps, 1 - eps), torch.from_numpy(split_targets))
    collector = MetricsCollector(predictor.labels, predictor.thresholds if threshold is None else threshold, prefix=split)
    collector.update(probs, split_targets, float(loss))
    return collector
