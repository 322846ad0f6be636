"""The data every trial of a search shares, loaded once on the driver (no Ray here).

    dataset, data = load_trial_data("data", limit=0, skip_bad_images=False)   # data: TrialData
    dataset, data = load_trial_data("data", 0, False, form=("rgb", 32))      # every trial asks 32 px RGB

The search puts `data` in Ray's object store once (trainable/trial.py make_trainable);
promotion and the benchmarks load the very same images and targets with the same call.

With `form` (the one colour and size every trial of the search asks, search/memory.py shipped_form)
the images are converted once, as each trial's to_device_images would have converted them, and kept
beside the decode cache (`<fingerprint>-<color>-<size>-v1.npy`): a 32-px RGB array is 1/16 of the
decoded one in the object store, and no trial spends its start-up downsampling (41 s per trial at
200,000 images on one core, bench/results/scale_2026-12-07.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class TrialData:
    """What every trial of a search shares: decoded once on the driver, put in the object store once."""

    images: np.ndarray
    """uint8 N x C x S x S: RGB at 128 px, or the one colour and size every trial asks (`form`)"""
    targets: np.ndarray
    """uint8 N x L"""
    labels: list[str]
    fingerprint: str


def load_trial_data(data_dir: str, limit: int, skip_bad_images: bool,
                    check: Callable[[int], None] | None = None, form: tuple[str, int] | None = None) -> tuple:
    """(dataset, TrialData): the dataset loaded and decoded once on the driver (the decode cache makes it instant
    the second time), cut to its first `limit` images when `limit`. `check(n_images)` runs between reading the
    folder and decoding (search/memory.py refuses data too big for the node there, before any decoding).

    RGB at 128 px serves every trial (gray and smaller ones convert on the device); `form` = (color, size)
    ships the images already in the one colour and size every trial asks (module docstring).
    """
    from trainable import data as data_mod

    dataset = data_mod.load(data_dir, skip_bad_images=skip_bad_images)
    if check is not None:
        check(min(limit, len(dataset)) if limit else len(dataset))
    images = data_mod.decode(dataset, "rgb")
    if form is not None and form != ("rgb", data_mod.SIDE):
        images = converted(dataset, images, *form)
    if limit:
        images, targets = images[:limit], dataset.targets[:limit]
    else:
        targets = dataset.targets
    return dataset, TrialData(np.ascontiguousarray(images), np.ascontiguousarray(targets), dataset.labels, dataset.fingerprint)


def converted(dataset, images: np.ndarray, color: str, size: int) -> np.ndarray:
    """The decoded RGB `images` of `dataset` in `color` at `size` px, converted once and cached (memory-mapped)."""
    from trainable import data as data_mod
    from trainable.config import COLOR_MODES
    from trainable.gym import convert_into

    shape = (len(images), COLOR_MODES[color][1], size, size)
    path = data_mod.cache_path(dataset.fingerprint, f"{color}-{size}")

    def fill(out: np.ndarray) -> None:
        with data_mod.progress_bar(len(images), f"converting to {size} px {color}", True) as bar:
            convert_into(images, out, bar.update)

    return data_mod.cached_array(path, shape, fill, f"converted {len(images)} images to {size} px {color}")
