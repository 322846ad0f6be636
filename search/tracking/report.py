"""The search report on the search's parent run: report.md and its figures as artifacts, importance as metrics."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mlflow.entities import Metric

from search.report import SearchReport, analyse
from search.report_text import write_report

log = logging.getLogger(__name__)


ARTIFACT_DIR = "report"
"""where the report's files go on the parent run"""


def log_to_run(client, run_id: str, path: Path) -> SearchReport:
    """Analyse search folder `path`, write its report, log the files and `importance/<param>` metrics on `run_id`.

    The metrics' step is the number of trials importance was computed on, so each resume adds a point.
    """
    report = analyse(path)
    written = write_report(path, report)
    for file in (written, *report.figures.values()):
        client.log_artifact(run_id, str(file), artifact_path=ARTIFACT_DIR)
    if report.importance.values:
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(f"importance/{name}", float(value), now, report.importance.trials)
                                          for name, value in report.importance.values.items()])
    log.info("search report of %s logged on run %s (%s)", report.record.name, run_id, written)
    return report
