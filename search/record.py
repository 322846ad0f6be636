"""The search record: `<storage>/<name>/labeltune_search.json`, what a search was started with.

    record = SearchRecord.read(search_dir("search-20261128-101500"))
    record.data, record.split_seed, record.options["limit"], record.status
    record.status = "finished"; record.write()

Resume, promote, `labeltune searches` and the cluster jobs find a search by its name
through this file: the data folder and fingerprint, split_seed, the space and its
fingerprint, the options, the baselines, status and budget used. This module is the one
that knows where the file lives and how it is read and written; every other module holds
a SearchRecord. Standard library only (`labeltune searches` reads records without Ray).

It also knows where the kept Optuna study lives (`optuna.db`) and reads it for the others:
`load_kept_study(path, name)` opens it, or refuses a damaged or foreign file in one line
(Optuna imported inside, so report and warm start read it without Ray), after
`study_problem` (standard library) has checked the file.

Format versions: 1 = records written before the file carried a version (the same keys);
2 = `format_version` added. A newer version is refused with a message that says so.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.options import SearchError
from trainable import store
from trainable.errors import first_line

RECORD = "labeltune_search.json"
STUDY_FILE = "optuna.db"
"""the search's Optuna study (search/study.py), beside the record"""
TUNE_TRIAL_ATTR = "tune_trial_id"
"""the user attribute that names an Optuna trial's Tune trial"""
WARM_FROM = "warm_start_from"
"""user attribute of a warm-start trial: the --warm-start search that brought it"""
WARM_ORIGIN = "warm_start_origin"
"""user attribute of a warm-start trial: [search, trial number] where it first ran (a copy of a copy keeps it)"""
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
    counts: dict[str, int] = field(default_factory=dict)
    """trials per outcome when a driver last ended (search/outcome.py OUTCOMES); {} before"""
    best_trial: str = ""
    """the Tune trial id of the best trial (by its best epoch), '' before a driver ended"""
    ray_session: dict[str, Any] | None = None
    """the local Ray the driver started itself (search/leftovers.py), None when it joined a cluster"""
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
        restore = f"restore it from a backup (without it no labeltune command finds the search {Path(path).name})"
        try:
            values = json.loads(record_file.read_text())
            if not isinstance(values, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise SearchError(f"{record_file}: unreadable search record ({first_line(exc)}): {restore}") from exc
        version = values.get("format_version", 1)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise SearchError(f"{record_file}: format_version {version!r} was written by a newer labeltune "
                              f"(this one reads up to {FORMAT_VERSION}): upgrade labeltune")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        if "name" not in values:
            raise SearchError(f"{record_file}: not a search record (no name): {restore}")
        wrong = [f"{f.name} is {_json_kind(values[f.name])}, not {_json_kinds(f.type)}" for f in dataclasses.fields(cls)
                 if f.name in values and f.name != "extra" and not _json_fits(values[f.name], f.type)]
        if wrong:
            raise SearchError(f"{record_file}: damaged search record ({'; '.join(wrong)}): {restore}")
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


_JSON_TYPES = {"str": ((str,), "a string"), "int": ((int,), "an integer"), "float": ((int, float), "a number"),
               "bool": ((bool,), "a boolean"), "None": ((type(None),), "null"), "list": ((list,), "a list"),
               "dict": ((dict,), "an object")}
"""a SearchRecord annotation's outer type (`dict` of `dict[str, float]`) -> (the JSON values it takes, in words)"""


def _json_outer(annotation: str) -> list[str]:
    return [part.strip().split("[")[0] for part in annotation.split("|")]


def _json_fits(value: Any, annotation: str) -> bool:
    """Whether a JSON value fits a field annotated `annotation` (`str | None`, `list[str]`, ...): outer types only."""
    return isinstance(value, tuple(t for outer in _json_outer(annotation) for t in _JSON_TYPES[outer][0]))


def _json_kinds(annotation: str) -> str:
    return " or ".join(_JSON_TYPES[outer][1] for outer in _json_outer(annotation))


def _json_kind(value: Any) -> str:
    """A JSON value's type in words."""
    if isinstance(value, bool):
        return "a boolean"
    return next((words for types, words in _JSON_TYPES.values() if isinstance(value, types)), type(value).__name__)


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


SQLITE_HEADER = b"SQLite format 3\x00"
"""the first 16 bytes of every sqlite database file"""
OPTUNA_TABLES = frozenset({"studies", "trials", "version_info"})
"""tables every Optuna RDB storage has (Optuna 5's schema); a sqlite file without them is not a study"""


def study_problem(search_path: Path, study_name: str) -> str | None:
    """Why search folder `search_path`'s kept study cannot be read, in a few words; None when it can (or is absent).

    Standard library only (`labeltune searches` asks it of every search): sqlite reads the file
    (it writes nothing, but rolls back a killed writer's journal as any reader does) and checks
    its pages (`PRAGMA quick_check`), Optuna's tables and the study's name.
    Never hand a file Optuna's RDBStorage before this says None: it creates its tables in any
    sqlite file it is given, and a damaged one ends in a long sqlalchemy traceback.
    """
    study_file = Path(search_path) / STUDY_FILE
    if not study_file.is_file():
        return None
    try:
        with open(study_file, "rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        return first_line(exc)
    if header != SQLITE_HEADER:
        return "not an SQLite database" if header else "an empty file"
    try:
        # Not mode=ro: a read-only connection cannot roll back the journal a killed writer left, and calls it an error.
        connection = sqlite3.connect(study_file, timeout=30)
        try:
            problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                return f"corrupt: {first_line(problems[0])}"
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if OPTUNA_TABLES - tables:
                return f"an SQLite file without Optuna's tables {', '.join(sorted(OPTUNA_TABLES - tables))}"
            names = [row[0] for row in connection.execute("SELECT study_name FROM studies ORDER BY study_id")]
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed", ...
        if "locked" in str(exc):
            return None  # busy, not damaged: a search writing it for over 30 s; Optuna waits on it in turn
        return first_line(exc)
    if study_name not in names:
        return f"no study named {study_name}; it holds {', '.join(names) or 'none'}"
    return None


def load_kept_study(search_path: Path, study_name: str, consequence: str = ""):
    """Search folder `search_path`'s kept Optuna study, or a one-line SearchError naming the file and what to do.

    A missing file, and one study_problem finds wrong, are refused before Optuna opens it;
    `consequence` (the caller's words: what deleting the file costs it) ends the message.
    Optuna is imported here only, so this module stays standard library only for its readers.
    """
    import optuna

    study_file = Path(search_path) / STUDY_FILE
    then = f"; {consequence}" if consequence else ""
    if not study_file.is_file():
        raise SearchError(f"{study_file}: no Optuna study kept here (the search ran before searches kept theirs, "
                          f"or the file was deleted){then}")

    problem = study_problem(search_path, study_name)
    if problem is not None:
        raise damaged_study(search_path, problem, consequence)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=study_name, storage=study_url(search_path))
    except Exception as exc:  # noqa: BLE001  (sqlalchemy's and Optuna's schema errors: the reason is in the message)
        if "locked" in str(exc):
            raise SearchError(f"{study_file}: locked by another process (a search writing it?): try again") from exc
        raise damaged_study(search_path, f"{type(exc).__name__}: {first_line(exc)}", consequence) from exc


def damaged_study(search_path: Path, problem: str, consequence: str = "") -> SearchError:
    """The one-line error for a kept study that cannot be read (`problem`: study_problem's words)."""
    return SearchError(f"{Path(search_path) / STUDY_FILE} is not a readable Optuna study ({problem}): restore it "
                       f"from a backup or delete it{f'; {consequence}' if consequence else ''}")
