"""The searches under $LABELTUNE_HOME/runs, read from their files without importing Ray.

Status: `finished`, `running` (its driver is alive), or `interrupted` (the record says
running but no driver finished it: resume it with `labeltune search --resume NAME`).
"""

from __future__ import annotations

import json
from pathlib import Path

from trainable import store
from trainable.metrics import PRIMARY_METRIC

RECORD = "labeltune_search.json"


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


def list_searches(storage: str | None = None) -> list[dict]:
    root = Path(storage).resolve() if storage else store.runs_dir()
    rows = []
    for record_file in sorted(root.glob(f"*/{RECORD}")):
        record = json.loads(record_file.read_text())
        results = trial_results(record_file.parent)
        scores = [r[PRIMARY_METRIC] for rows_ in results.values() for r in rows_ if PRIMARY_METRIC in r]
        status = record.get("status", "?")
        if status == "running" and not _driver_alive(record):
            status = "interrupted"
        rows.append({
            "name": record["name"], "status": status, "trials": record["options"]["trials"],
            "trials_done": sum(1 for rows_ in results.values() if rows_),
            "best": max(scores) if scores else None, "started": record.get("started", ""),
        })
    return rows


def _driver_alive(record: dict) -> bool:
    import os
    import socket

    pid = record.get("driver_pid")
    if not pid or record.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
