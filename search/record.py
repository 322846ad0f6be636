"""The search record: `<storage>/<name>/labeltune_search.json`, what a search was started with.

    record = SearchRecord.read(search_dir("search-20261128-101500"))
    record.data, record.split_seed, record.options["limit"], record.status
    record.status = "finished"; record.write()

Resume, promote, `labeltune searches` and the cluster jobs find a search by its name
through this file: the data folder and fingerprint, split_seed, the space and its
fingerprint, the options, the baselines, status and budget used. This module is the one
that knows where the file lives and how it is read and written; every other module holds
a SearchRecord. Standard library only (`labeltune searches` reads records without Ray).

Format versions: 1 = records written before the file carried a version (the same keys);
2 = `format_version` added. A newer version is refused with a message that says so.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.options import SearchError
from trainable import store

RECORD = "labeltune_search.json"
STUDY_FILE = "optuna.db"
"""the search's Optuna study (search/study.py), beside the record"""
TUNE_TRIAL_ATTR = "tune_trial_id"
"""the user attribute that names an Optuna trial's Tune trial"""
FORMAT_VERSION = 2
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
"""a search name is one path component: letters, digits, '_', '.', '-'"""


@dataclass
class SearchRecord:
    name: str
    storage: str
    """the folder that holds the search's folder (absolute)"""
    data: str = ""
    """absolute path of the dataset folder"""
    data_fingerprint: str = ""
    labels: list[str] = field(default_factory=list)
    n_images: int = 0
    split_seed: int = 0
    space_source: str = ""
    """the --space the user gave (preset name or file)"""
    space: dict[str, Any] = field(default_factory=dict)
    """the space itself, as it was at the start (resume compares this, not the preset re-read)"""
    space_fingerprint: str = ""
    constants: dict[str, Any] = field(default_factory=dict)
    """values every trial shares (epochs, split_seed, seed)"""
    pretrained_models: list[str] = field(default_factory=list)
    """backbones whose ImageNet weights were here at the start: they train pretrained"""
    options: dict[str, Any] = field(default_factory=dict)
    """SearchOptions as a dict"""
    command: str = ""
    git_commit: str | None = None
    host: str = ""
    driver_pid: int | None = None
    started: str = ""
    status: str = "running"
    """running, finished or interrupted"""
    tracking_uri: str | None = None
    baseline_rule: str = ""
    baselines: dict[str, float] = field(default_factory=dict)
    """baseline/val/... and baseline/test/... of the search's split (trainable.baselines)"""
    finished: str | None = None
    best: float | None = None
    trials_done: int = 0
    wall_s: float = 0.0
    resumed: int = 0
    warm_start: dict[str, dict[str, int]] = field(default_factory=dict)
    """earlier searches whose finished trials seeded the study: name -> {"added": n, "skipped": m}"""
    stop_reason: str = ""
    """why the search ended before its budget (--target, --plateau), '' otherwise"""
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    """keys this version does not know, kept so that a rewrite loses nothing"""

    @property
    def path(self) -> Path:
        """The search's folder: Tune's state, the trials and this record."""
        return Path(self.storage) / self.name

    @classmethod
    def read(cls, path: str | Path) -> SearchRecord:
        """The record in search folder `path`; a missing, unreadable or newer file is a SearchError."""
        record_file = Path(path) / RECORD
        if not record_file.is_file():
            raise SearchError(f"{path}: no search found here (no {RECORD})")
        try:
            values = json.loads(record_file.read_text())
            if not isinstance(values, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise SearchError(f"{record_file}: unreadable search record ({exc})") from exc
        version = values.get("format_version", 1)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise SearchError(f"{record_file}: format_version {version!r} was written by a newer labeltune "
                              f"(this one reads up to {FORMAT_VERSION}): upgrade labeltune")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        if "name" not in values:
            raise SearchError(f"{record_file}: not a search record (no name)")
        values.setdefault("storage", str(Path(path).resolve().parent))
        record = cls(**{k: v for k, v in values.items() if k in known},
                     extra={k: v for k, v in values.items() if k not in known})
        record.format_version = FORMAT_VERSION  # a rewrite upgrades the file; version 1 has the same keys
        return record

    def write(self) -> Path:
        """Write the record atomically into its search folder."""
        values = dataclasses.asdict(self)
        values.update(values.pop("extra"))
        return store.write_json(self.path / RECORD, values)


def check_name(name: str) -> None:
    """Refuse a search name that is not a single safe folder name (it becomes runs/<name>/)."""
    if not NAME_PATTERN.match(name):
        raise SearchError(f"--name {name!r}: use up to 100 letters, digits, '_', '.' and '-', "
                          f"starting with a letter or digit (it names the folder runs/<name>)")


def storage_root(storage: str | None = None) -> Path:
    """The folder that holds the searches: --storage (a path) or $LABELTUNE_HOME/runs."""
    if storage and "://" in storage:
        # The record, resume and promotion read this folder with local file APIs: a URI would silently
        # land on the driver's disk. Clusters mount shared storage (NFS/EFS) and pass its path.
        raise SearchError(f"--storage {storage}: URIs are not supported yet; mount the shared storage on every "
                          f"node (NFS, EFS, s3fs) and pass the mounted path")
    return Path(storage).resolve() if storage else store.runs_dir()


def search_dir(name: str, storage: str | None = None) -> Path:
    """Where search `name` lives: `<storage>/<name>`, by default `$LABELTUNE_HOME/runs/<name>`."""
    check_name(name)
    return storage_root(storage) / name


def exists(path: Path) -> bool:
    """Whether search folder `path` holds a record."""
    return (Path(path) / RECORD).exists()


def study_url(search_path: Path) -> str:
    """The sqlite URL of search folder `search_path`'s Optuna study (study name = search name)."""
    return f"sqlite:///{Path(search_path).resolve() / STUDY_FILE}"
