"""One self-describing checkpoint file per trial epoch: `checkpoint.pt`.

    save(dir / CHECKPOINT_NAME, model_state=model.state_dict(), optimizer_state=opt.state_dict(),
         epoch=3, config=cfg.to_dict(), labels=labels, thresholds=[0.5] * len(labels),
         metrics=metrics, data_fingerprint=dataset.fingerprint)
    ckpt = load(path)                       # a dict; load(folder) reads folder/checkpoint.pt
    check_labels(ckpt, dataset.labels, where="data/ (annotations)")

The file is a dict of tensors and plain Python values only, so `torch.load(path,
weights_only=True)` reads it: no pickled class can run code on load. `save` turns numpy
scalars into Python numbers, numpy arrays into tensors, Paths into strings and moves
tensors to the CPU, and writes atomically (a temporary file in the same folder, then
os.replace), so a trial killed mid-save leaves the previous file intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainable import store

FORMAT_VERSION = 1
"""bumped when the layout of the dict changes; load refuses other versions"""
CHECKPOINT_NAME = "checkpoint.pt"
"""the file name inside a checkpoint folder"""
KEYS = (
    "format_version", "model_state", "optimizer_state", "epoch", "config", "labels", "thresholds",
    "metrics", "data_fingerprint",
)
"""the keys of every checkpoint dict"""


class CheckpointError(Exception):
    """A checkpoint that cannot be used: missing, unreadable, of another version, or for other labels."""


def _plain(value: Any, where: str) -> Any:
    """`value` as tensors and plain Python values, which weights_only loading accepts."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value).copy())
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device)):
        return value
    if isinstance(value, dict):
        return {_plain(k, where): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, list):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise CheckpointError(f"cannot store {where}: a {type(value).__name__} is not a tensor or plain value")


def save(path: str | os.PathLike, *, model_state: dict, optimizer_state: dict | None, epoch: int,
         config: dict, labels: list[str], thresholds: list[float], metrics: dict,
         data_fingerprint: str) -> Path:
    """Write the checkpoint atomically to `path` (parent folders created) and return it."""
    path = Path(path)
    if len(thresholds) != len(labels):
        raise CheckpointError(f"{path}: {len(thresholds)} thresholds for {len(labels)} labels")
    ckpt = {
        "format_version": FORMAT_VERSION,
        "model_state": _plain(model_state, "model_state"),
        "optimizer_state": _plain(optimizer_state, "optimizer_state"),
        "epoch": int(epoch),
        "config": _plain(config, "config"),
        "labels": [str(label) for label in labels],
        "thresholds": [float(t) for t in np.asarray(thresholds, dtype=np.float64).ravel()],
        "metrics": _plain(metrics, "metrics"),
        "data_fingerprint": str(data_fingerprint),
    }
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a crash leaves the old file or the new one

    return store.write_atomic(path, write)


def load(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by `save` (a folder means folder/checkpoint.pt), tensors on the CPU."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike for a foreign file
        lines = str(exc).strip().splitlines()
        raise CheckpointError(
            f"{path}: not a labeltune checkpoint ({type(exc).__name__}: {lines[0] if lines else ''})"
        ) from exc
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path}: not a labeltune checkpoint (no format_version)")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format_version {ckpt['format_version']!r} is not supported; "
            f"this labeltune reads format_version {FORMAT_VERSION}"
        )
    missing = [k for k in KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not a labeltune checkpoint (missing {', '.join(missing)})")
    return ckpt


def check_labels(ckpt: dict, labels: list[str], where: str) -> None:
    """Raise CheckpointError unless the checkpoint was trained on exactly `labels`, in that order."""
    saved, given = list(ckpt["labels"]), list(labels)
    if saved == given:
        return
    only_saved = [label for label in saved if label not in given]
    only_given = [label for label in given if label not in saved]
    parts = []
    if only_saved:
        parts.append(f"only in the checkpoint: {', '.join(only_saved)}")
    if only_given:
        parts.append(f"only in {where}: {', '.join(only_given)}")
    if not parts:
        parts.append(f"same labels in another order (checkpoint: {', '.join(saved)}; {where}: {', '.join(given)})")
    raise CheckpointError(f"the checkpoint's labels differ from those of {where}: " + "; ".join(parts))
