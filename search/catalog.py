"""The searches under $LABELTUNE_HOME/runs, read from their files without importing Ray.

Status: `finished`, `running` (its driver is alive), or `interrupted` (the record says
running but no driver finished it: resume it with `labeltune search --resume NAME`).
"""

from __future__ import annotations

import json
from pathlib import Path

from search.record import RECORD, SearchRecord, storage_root  # noqa: F401  (RECORD re-exported)
from trainable.config import PRIMARY_METRIC


def trial_results(search_path: Path) -> dict[str, list[dict]]:
    """trial folder name -> the results it reported (Tune's result.json, one JSON object a line)."""
    out = {}
    for result_file in sorted(Path(search_path).glob("*/result.json")):
        rows = []
        for line in result_file.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a killed driver
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
    rows = []
    for record_file in sorted(storage_root(storage).glob(f"*/{RECORD}")):
        record = SearchRecord.read(record_file.parent)
        results = trial_results(record_file.parent)
        status = record.status
        if status == "running" and not _driver_alive(record):
            status = "interrupted"
        # A running search's trials are newer than its last snapshot; a stopped one's orphans are not trials.
        known = tune_trial_folders(record_file.parent) if status != "running" else None
        if known is not None:
            results = {trial: rows_ for trial, rows_ in results.items() if trial in known}
        scores = [r[PRIMARY_METRIC] for rows_ in results.values() for r in rows_ if PRIMARY_METRIC in r]
        rows.append({
            "name": record.name, "status": status, "trials": record.options["trials"],
            "trials_done": sum(1 for rows_ in results.values() if rows_),
            "best": max(scores) if scores else None, "started": record.started,
        })
    return rows


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
