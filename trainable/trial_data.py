"""The data every trial of a search shares, loaded once on the driver (no Ray here).

    dataset, data = load_trial_data("data", limit=0, skip_bad_images=False)   # data: TrialData

The search puts `data` in Ray's object store once (trainable/trial.py make_trainable);
promotion and the benchmarks load the very same images and targets with the same call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class TrialData:
    """What every trial of a search shares: decoded once on the driver, put in the object store once."""

    images: np.ndarray
    """uint8 N x C x 128 x 128"""
    targets: np.ndarray
    """uint8 N x L"""
    labels: list[str]
    fingerprint: str


def load_trial_data(data_dir: str, limit: int, skip_bad_images: bool,
                    check: Callable[[int], None] | None = None) -> tuple:
    """(dataset, TrialData): the dataset loaded and decoded once on the driver (the decode cache makes it instant
    the second time), cut to its first `limit` images when `limit`. `check(n_images)` runs between reading the
    folder and decoding (search/memory.py refuses data too big for the node there, before any decoding).

    Always RGB: gray trials convert on the device, so one array serves every trial.
    """
    from trainable import data as data_mod

    dataset = data_mod.load(data_dir, skip_bad_images=skip_bad_images)
    if check is not None:
        check(min(limit, len(dataset)) if limit else len(dataset))
    images = data_mod.decode(dataset, "rgb")
    if limit:
        images, targets = images[:limit], dataset.targets[:limit]
    else:
        targets = dataset.targets
    return dataset, TrialData(np.ascontiguousarray(images), np.ascontiguousarray(targets), dataset.labels, dataset.fingerprint)
