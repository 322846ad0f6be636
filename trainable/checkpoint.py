"""Self-describing checkpoint files (`checkpoint.pt`) of trial epochs that need weights, the record every trial epoch
leaves (`epoch.json`), and ensembles.

    save(dir / CHECKPOINT_FILE, model_state=model.state_dict(), optimizer_state=opt.state_dict(),
         epoch=3, config=cfg.to_dict(), labels=labels, thresholds=[0.5] * len(labels),
         metrics=metrics, data_fingerprint=dataset.fingerprint)
    ckpt = load(path)                       # a dict; load(folder) reads folder/checkpoint.pt
    check_labels(ckpt, dataset.labels, where="data/ (annotations)")

The file is a dict of tensors and plain Python values only, so `torch.load(path,
weights_only=True)` reads it: no pickled class can run code on load. `save` turns numpy
scalars into Python numbers, numpy arrays into tensors, Paths into strings and moves
tensors to the CPU, and writes atomically (a temporary file in the same folder, then
os.replace), so a trial killed mid-save leaves the previous file intact.

Two kinds of checkpoint, told apart by `kind(ckpt)`:

- "single" (one model; no `kind` key): the KEYS below, `format_version` 1. Every
  checkpoint written so far is one, and `save` still writes exactly this layout, so an
  older labeltune keeps reading new single checkpoints.
- "ensemble" (K models whose sigmoid outputs are averaged): `format_version` 2,
  `kind: "ensemble"`, `members` (a list of member dicts, MEMBER_KEYS: each member's own
  model_state, config, labels, thresholds, metrics, epoch, data_fingerprint; no optimizer
  state), and the ensemble's own `labels`, `thresholds`, `metrics`, `data_fingerprint`
  (ENSEMBLE_KEYS). There is deliberately no top-level model_state or config: code that
  needs one model cannot pick up a member by accident; it calls `require_single` (the
  Gym does), and prediction goes through `trainable.ensemble.load_predictor`.

    save_ensemble(path, members=[load(a), load(b)], thresholds=t, metrics=m, data_fingerprint=fp)

`format_version` is the layout a reader must know. Version 2 brought `kind` and the
ensemble layout; an ensemble is written as 2 so that a labeltune that reads only 1 refuses
it with a version message instead of failing on missing keys. `load` reads 1 (single
only) and 2 (`kind` absent = single, or ensemble) and refuses anything else.

A trial's epochs (trainable/trial.py): every folder a trial reports holds RECORD_FILE, the
epoch's `EpochRecord` (its number, metrics, and whether weights are beside it; JSON, a few
KB), and CHECKPOINT_FILE only when the epoch writes weights. The rule (`needs_weights`):

- an epoch writes weights when it beats the trial's best PRIMARY_METRIC so far
  (`config.better`: a tie or a NaN does not), when it is one of ASHA's rung epochs (where the
  search may stop the trial), or when it is the last epoch (cfg.epochs); every other epoch
  writes only its record;
- the optimizer state (twice the weights' size for Adam and AdamW) goes only into the rung and
  last epochs' checkpoints (`needs_optimizer`): a resume continues from the latest of those, so a
  best-so-far epoch between two rungs holds the weights alone (promotion needs nothing more).

So the best epoch of a trial always has weights (the first epoch to reach the best score beat
every epoch before it), and so has the epoch a trial ends at when ASHA stops it or it runs to
the end; a trial's latest rung or last epoch holds the optimizer state too. `save_record` / `load_record` read and write the record; a folder of an older
labeltune (CHECKPOINT_FILE only) is read as a weights record from its checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import zipfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainable import store
from trainable.config import better
from trainable.errors import LabeltuneError, first_line

FORMAT_VERSION = 1
"""the layout `save` writes (a single checkpoint); bumped when that layout changes"""
ENSEMBLE_FORMAT_VERSION = 2
"""the layout `save_ensemble` writes: the first version with `kind` and ensembles"""
READ_VERSIONS = (FORMAT_VERSION, ENSEMBLE_FORMAT_VERSION)
"""the format versions `load` reads; it refuses others"""
KINDS = ("single", "ensemble")
"""the values of `kind(ckpt)`; a checkpoint without a `kind` key is single"""
CHECKPOINT_FILE = "checkpoint.pt"
"""the file name inside a checkpoint folder (a trial's, a promoted model's, `labeltune train --out`'s)"""
KEYS = (
    "format_version", "model_state", "optimizer_state", "epoch", "config", "labels", "thresholds",
    "metrics", "data_fingerprint",
)
"""the keys of every single checkpoint dict"""
ENSEMBLE_KEYS = ("format_version", "kind", "members", "labels", "thresholds", "metrics", "data_fingerprint")
"""the keys of every ensemble checkpoint dict"""
MEMBER_KEYS = ("model_state", "epoch", "config", "labels", "thresholds", "metrics", "data_fingerprint")
"""the keys of each member dict of an ensemble (a single checkpoint less its optimizer state)"""
RECORD_FILE = "epoch.json"
"""in every folder a trial reports: the epoch's EpochRecord; CHECKPOINT_FILE is beside it when the epoch wrote weights"""
RECORD_VERSION = 1
"""the layout of RECORD_FILE that `save_record` writes and `load_record` reads"""


class CheckpointError(LabeltuneError):
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
    return _write(path, ckpt)


def save_ensemble(path: str | os.PathLike, members: list[dict], thresholds: list[float], metrics: dict,
                  data_fingerprint: str) -> Path:
    """Write an ensemble of `members` (single checkpoint dicts as `load` returns them) atomically to `path`.

    `thresholds` are the ensemble's per-label thresholds (on the averaged probabilities), `metrics`
    and `data_fingerprint` the ensemble's own. Members keep their own config, labels, thresholds,
    metrics, epoch and fingerprint; their optimizer state is dropped.
    """
    path = Path(path)
    members = list(members)
    if not members:
        raise CheckpointError(f"{path}: an ensemble needs at least one member checkpoint, got none")
    for i, member in enumerate(members):
        if not isinstance(member, dict) or kind(member) != "single":
            raise CheckpointError(f"{path}: ensemble member {i} is not a single checkpoint dict "
                                  f"(members are checkpoints as checkpoint.load returns them)")
        missing = [k for k in MEMBER_KEYS if k not in member]
        if missing:
            raise CheckpointError(f"{path}: ensemble member {i} lacks {', '.join(missing)}")
    labels = [str(label) for label in members[0]["labels"]]
    differing = [i for i, m in enumerate(members) if [str(label) for label in m["labels"]] != labels]
    if differing:
        names = "; ".join(f"{_member_name(i, members[i])}: {', '.join(map(str, members[i]['labels']))}"
                          for i in [0, *differing])
        raise CheckpointError(f"{path}: ensemble members were trained on different labels ({names})")
    if len(thresholds) != len(labels):
        raise CheckpointError(f"{path}: {len(thresholds)} thresholds for {len(labels)} labels")
    ckpt = {
        "format_version": ENSEMBLE_FORMAT_VERSION,
        "kind": "ensemble",
        "members": [
            {
                "model_state": _plain(m["model_state"], f"members[{i}].model_state"),
                "epoch": int(m["epoch"]),
                "config": _plain(m["config"], f"members[{i}].config"),
                "labels": [str(label) for label in m["labels"]],
                "thresholds": [float(t) for t in np.asarray(m["thresholds"], dtype=np.float64).ravel()],
                "metrics": _plain(m["metrics"], f"members[{i}].metrics"),
                "data_fingerprint": str(m["data_fingerprint"]),
            }
            for i, m in enumerate(members)
        ],
        "labels": labels,
        "thresholds": [float(t) for t in np.asarray(thresholds, dtype=np.float64).ravel()],
        "metrics": _plain(metrics, "metrics"),
        "data_fingerprint": str(data_fingerprint),
    }
    return _write(path, ckpt)


def _member_name(i: int, member: dict) -> str:
    """`member 2 (cnn3bn, epoch 7)`: the list position names a member in errors."""
    return f"member {i} ({dict(member['config']).get('model', '?')}, epoch {member['epoch']})"


def _write(path: Path, ckpt: dict) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a crash leaves the old file or the new one

    return store.write_atomic(path, write)


def load(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by `save` or `save_ensemble` (a folder means folder/checkpoint.pt), tensors on the CPU."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    # torch.save writes a zip: a file cut short has no central directory, and torch's error would say "Invalid argument"
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a labeltune checkpoint (not a complete torch file: cut short, or another "
                              f"kind of file); use another checkpoint of the trial, or train it again")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only met a class: a whole pickled model, or someone else's file
        raise CheckpointError(f"{path}: not a labeltune checkpoint (it pickles Python objects, not only tensors and "
                              f"plain values, and weights-only loading runs no pickled code)") from exc
    except Exception as exc:  # torch raises zip and runtime errors alike for a damaged file
        reason = re.sub(r"\x1b\[[0-9;]*m", "", first_line(exc))  # torch's messages carry terminal colour codes
        raise CheckpointError(f"{path}: not a labeltune checkpoint ({type(exc).__name__}: {reason})") from exc
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path}: not a labeltune checkpoint (no format_version)")
    version = ckpt["format_version"]
    if version not in READ_VERSIONS:
        raise CheckpointError(
            f"{path}: checkpoint format_version {version!r} is not supported; "
            f"this labeltune reads format_version {' and '.join(map(str, READ_VERSIONS))}"
        )
    what = ckpt.get("kind", "single")
    if what not in KINDS or (what != "single" and version < ENSEMBLE_FORMAT_VERSION):
        raise CheckpointError(f"{path}: checkpoint kind {what!r} is not one of {', '.join(KINDS)} "
                              f"in format_version {version}")
    missing = [k for k in (KEYS if what == "single" else ENSEMBLE_KEYS) if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not a labeltune checkpoint (missing {', '.join(missing)})")
    _check_values(ckpt, f"{path}:", with_model=what == "single")
    if what == "ensemble":
        members = ckpt["members"]
        if not isinstance(members, list) or not members:
            raise CheckpointError(f"{path}: ensemble checkpoint without members")
        for i, member in enumerate(members):
            missing = [k for k in MEMBER_KEYS if k not in member] if isinstance(member, dict) else list(MEMBER_KEYS)
            if missing:
                raise CheckpointError(f"{path}: ensemble member {i} is missing {', '.join(missing)}")
            _check_values(member, f"{path}: ensemble member {i}:", with_model=True)
    return ckpt


def _check_values(ckpt: dict, where: str, with_model: bool) -> None:
    """Refuse a checkpoint (or member) dict whose values are not of the kinds `save` writes: the damage would
    otherwise surface as a TypeError deep in the model or the metrics."""
    problems = []
    if not isinstance(ckpt["labels"], list) or not all(isinstance(label, str) for label in ckpt["labels"]):
        problems.append("labels is not a list of names")
    elif (not isinstance(ckpt["thresholds"], list) or len(ckpt["thresholds"]) != len(ckpt["labels"])
          or not all(isinstance(t, (int, float)) for t in ckpt["thresholds"])):
        problems.append(f"thresholds is not {len(ckpt['labels'])} numbers, one per label")
    for key, kinds in (("metrics", dict), ("data_fingerprint", str), *((("config", dict), ("epoch", int)) if with_model
                                                                       else ())):
        if not isinstance(ckpt[key], kinds):
            problems.append(f"{key} is not a {kinds.__name__}")
    if with_model and (not isinstance(ckpt["model_state"], dict)
                       or not all(isinstance(v, torch.Tensor) for v in ckpt["model_state"].values())):
        problems.append("model_state is not a dict of tensors")
    if problems:
        raise CheckpointError(f"{where} a damaged labeltune checkpoint ({'; '.join(problems)}); use another "
                              f"checkpoint of the trial, or train it again")


def load_model_state(model: torch.nn.Module, ckpt: dict, where: str = "the checkpoint") -> None:
    """`model.load_state_dict(ckpt["model_state"])`, a state of another architecture refused in one line.

    torch's own error lists every missing and unexpected key over many lines; this names the
    first few and how many, and what the checkpoint says it holds (`where` names the file).
    """
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as exc:
        config = ckpt.get("config") or {}
        expected, given = model.state_dict(), ckpt["model_state"]
        missing = [k for k in expected if k not in given]
        unexpected = [k for k in given if k not in expected]
        shapes = [k for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k].shape)]
        parts = [f"{label} {len(keys)} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shape", shapes)) if keys]
        raise CheckpointError(f"{where}: its model_state does not fit the model its config names "
                              f"({config.get('model', '?')}, width {config.get('width', '?')}): "
                              f"{'; '.join(parts) or first_line(exc)}; the file is damaged or from another labeltune"
                              ) from exc


def kind(ckpt: dict) -> str:
    """'single' or 'ensemble' (a checkpoint without a `kind` key is single)."""
    return ckpt.get("kind", "single")


def require_single(ckpt: dict, needed_by: str) -> None:
    """Raise CheckpointError unless `ckpt` is a single checkpoint; `needed_by` says what needs one."""
    if kind(ckpt) != "single":
        raise CheckpointError(
            f"this is an {kind(ckpt)} checkpoint of {len(ckpt.get('members', []))} members; "
            f"{needed_by} needs a single model's checkpoint"
        )


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


# ---- a trial's epochs: which write weights, and the record every epoch leaves -----------


def needs_weights(epoch: int, score: float, best: float, rungs: Collection[int], last: int) -> bool:
    """Whether a trial's epoch `epoch` (PRIMARY_METRIC `score`) writes weights and optimizer state, or only its record.

    `best`: the best score of the trial's earlier epochs (config.WORST_SCORE before the first); `rungs`: ASHA's rung
    epochs; `last`: the trial's last epoch (cfg.epochs). See the module docstring for the rule.
    """
    return epoch == last or epoch in rungs or better(score, best)


def needs_optimizer(epoch: int, rungs: Collection[int], last: int) -> bool:
    """Whether a weights checkpoint of epoch `epoch` also holds the optimizer state: the rung and last epochs, from
    which a resume continues (module docstring)."""
    return epoch == last or epoch in rungs


@dataclass(frozen=True)
class EpochRecord:
    """What every epoch a trial reports leaves in its folder (RECORD_FILE), with or without weights."""

    epoch: int
    metrics: dict
    """the epoch's metrics, as reported (no time/ keys)"""
    weights: bool
    """CHECKPOINT_FILE (the model's weights) is beside the record"""
    optimizer: bool = False
    """that checkpoint holds the optimizer state too: a resume can continue from it"""


def _json_plain(value: Any) -> Any:
    """numpy and torch numbers and arrays as JSON values (json.dumps' `default`)."""
    if isinstance(value, (np.generic, torch.Tensor)) and value.ndim == 0:
        return value.item()
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.tolist()
    raise TypeError(f"cannot store a {type(value).__name__} in an epoch record")


def save_record(folder: str | os.PathLike, record: EpochRecord) -> Path:
    """Write `record` atomically as folder/RECORD_FILE (NaN and infinities as JSON's NaN, Infinity) and return it."""
    value = {"format_version": RECORD_VERSION, "epoch": int(record.epoch), "weights": bool(record.weights),
             "optimizer": bool(record.optimizer), "metrics": record.metrics}
    return store.write_text(Path(folder) / RECORD_FILE, json.dumps(value, default=_json_plain) + "\n")


def load_record(folder: str | os.PathLike) -> EpochRecord:
    """The EpochRecord of a reported folder; CheckpointError when it is missing, damaged, or cut short by a kill
    (its record says weights and CHECKPOINT_FILE is not a whole file). A folder an older labeltune wrote (no record,
    a checkpoint) is read from its checkpoint."""
    folder = Path(folder)
    path = folder / RECORD_FILE
    if not path.is_file():
        ckpt = load(folder / CHECKPOINT_FILE)  # raises when there is none either
        return EpochRecord(int(ckpt["epoch"]), dict(ckpt["metrics"]), True, bool(ckpt["optimizer_state"]))
    try:
        value = json.loads(path.read_text())
        record = EpochRecord(int(value["epoch"]), dict(value["metrics"]), bool(value["weights"]),
                             bool(value["optimizer"]))
        version = value["format_version"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a labeltune epoch record ({type(exc).__name__}: {first_line(exc)})") from exc
    if version != RECORD_VERSION:
        raise CheckpointError(f"{path}: epoch record format_version {version!r} is not supported; this labeltune reads "
                              f"{RECORD_VERSION}")
    if record.weights and not zipfile.is_zipfile(folder / CHECKPOINT_FILE):  # torch.save writes a zip: a whole one
        raise CheckpointError(f"{folder}: the epoch's {CHECKPOINT_FILE} is missing or cut short")
    return record


def record_score(record: EpochRecord, metric: str) -> float:
    """The record's `metric` as a float, NaN when it has none."""
    value = record.metrics.get(metric)
    return float(value) if isinstance(value, (int, float)) else math.nan
