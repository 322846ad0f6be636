"""The searches under $LABELTUNE_HOME/runs, read from their files without importing Ray.

Status: `finished`, `running` (its driver is alive), or `interrupted` (the record says
running but no driver finished it: resume it with `labeltune search --resume NAME`), or
`damaged` (its record cannot be read; the row's `problem` says why and what to do). A
readable search whose kept Optuna study is damaged keeps its status, with a `problem`.
One damaged search never hides the others.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from search.options import SearchError
from search.outcome import started
from search.record import RECORD, SearchRecord, damaged_study, storage_root, study_problem  # noqa: F401  (RECORD)
from trainable.config import PRIMARY_METRIC

STUDY_READERS = "labeltune report, search --warm-start and search --resume read it"
"""what a damaged study's line in `labeltune searches` says needs it"""


def trial_results(search_path: Path) -> dict[str, list[dict]]:
    """trial folder name -> the results it reported (Tune's result.json, one JSON object a line)."""
    out = {}
    for result_file in sorted(Path(search_path).glob("*/result.json")):
        rows = []
        try:
            text = result_file.read_text(errors="replace")  # a damaged byte spoils its line, not the file
        except OSError:
            text = ""
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a killed driver
            if isinstance(row, dict):
                rows.append(row)
        out[result_file.parent.name] = rows
    return out


def tune_trial_ids(search_path: Path) -> set[str] | None:
    """The Tune trial ids Tune's latest saved state holds, or None without a readable state.

    A driver killed between two of Tune's snapshots can leave a trial (its folder, its Optuna
    trial) that no snapshot names: an orphan that a resume never continues and promote never
    sees. The state file is Tune's own format, so anything unexpected in it gives None.
    """
    states = sorted(Path(search_path).glob("experiment_state-*.json"))
    if not states:
        return None
    try:
        trial_data = json.loads(states[-1].read_text())["trial_data"]
        return {str(json.loads(t[0])["trial_id"]) for t in trial_data}
    except (OSError, ValueError, LookupError, TypeError):
        return None


def tune_trial_folders(search_path: Path) -> set[str] | None:
    """The trial folders (`trial_<id>`) Tune's latest saved state holds, or None (count the folders instead)."""
    ids = tune_trial_ids(search_path)
    return None if ids is None else {f"trial_{trial_id}" for trial_id in ids}


def list_searches(storage: str | None = None) -> list[dict]:
    """A row per search folder with a record: name, status, trials, trials_done, best, started, problem.

    `problem` is '' or one line naming the damaged file (the record: status `damaged`, nothing
    else read; the kept study: the search's own status) and what to do.
    """
    rows = []
    for record_file in sorted(storage_root(storage).glob(f"*/{RECORD}")):
        try:
            record = SearchRecord.read(record_file.parent)
        except SearchError as exc:
            rows.append({"name": record_file.parent.name, "status": "damaged", "trials": None, "trials_done": None,
                         "best": None, "started": "", "problem": str(exc)})
            continue
        results = trial_results(record_file.parent)
        status = record.status
        if status == "running" and not _driver_alive(record):
            status = "interrupted"
        # A running search's trials are newer than its last snapshot; a stopped one's orphans are not trials.
        known = tune_trial_folders(record_file.parent) if status != "running" else None
        if known is not None:
            results = {trial: rows_ for trial, rows_ in results.items() if trial in known}
        scores = [r[PRIMARY_METRIC] for rows_ in results.values() for r in rows_
                  if isinstance(r.get(PRIMARY_METRIC), (int, float)) and math.isfinite(r[PRIMARY_METRIC])]
        problem = study_problem(record_file.parent, record.name)
        note = str(damaged_study(record_file.parent, problem, STUDY_READERS)) if problem else ""
        if not note and status == "interrupted" and record.status == "running":  # a killed driver
            note = _leftovers(record)
        done = sum(1 for rows_ in results.values() if rows_)
        if record.status in ("finished", "interrupted") and record.counts:  # the outcomes its driver decided
            done = started(record.counts)
        rows.append({
            "name": record.name, "status": status, "trials": record.options.get("trials"),
            "trials_done": done, "best": max(scores) if scores else None, "started": record.started,
            "problem": note,
        })
    return rows


def _leftovers(record: SearchRecord) -> str:
    """One line naming the processes a killed driver's own local Ray left running, and how to end them; or ''."""
    if not record.ray_session:
        return ""
    from search import leftovers

    found = leftovers.find_leftovers(record.ray_session)
    return f"search {record.name}: {leftovers.describe(found)} (or resume it: that ends them)" if found else ""


def _driver_alive(record: SearchRecord) -> bool:
    import os
    import socket

    pid = record.driver_pid
    if not pid or record.host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
