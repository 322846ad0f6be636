"""Where things live: $LABELTUNE_HOME, the MLflow store under it, and searches' folders.

    $LABELTUNE_HOME/mlruns/mlflow.db   the MLflow tracking store (sqlite) + artifacts
    $LABELTUNE_HOME/runs/<search>/     Tune's storage for one search
    $LABELTUNE_CACHE/                  decoded image arrays, downloaded registered models

Files that other processes read while they change (records, checkpoints, predictions, caches)
are written with `write_atomic`: a reader sees the old file or the new one, never half of one.
`MLFLOW_TRACKING_URI` or an explicit `--tracking-uri` override the store. Every path
is absolute: Ray trial processes chdir into their trial folder.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable


def home() -> Path:
    """$LABELTUNE_HOME, or the current directory when unset."""
    return Path(os.environ.get("LABELTUNE_HOME") or os.getcwd()).resolve()


def cache_dir() -> Path:
    """$LABELTUNE_CACHE (default ~/.cache/labeltune): decoded images, downloaded registered models."""
    return Path(os.environ.get("LABELTUNE_CACHE") or Path.home() / ".cache" / "labeltune")


def mlruns_dir() -> Path:
    return home() / "mlruns"


def runs_dir() -> Path:
    return home() / "runs"


def tracking_uri(explicit: str | None = None) -> str:
    """The MLflow tracking URI: explicit > $MLFLOW_TRACKING_URI > sqlite under $LABELTUNE_HOME/mlruns."""
    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{mlruns_dir() / 'mlflow.db'}"


def write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """write(tmp) into a temporary file next to path, then rename it over path (creating its folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own per writer (not mkstemp: its 0600 mode would stick to the final file).
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, value: Any) -> Path:
    """Indented, sorted JSON; values JSON lacks (paths, dates) are written as strings."""
    return write_text(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")
