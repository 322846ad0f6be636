"""The search report on the search's parent run: what mattered on its first screen, the whole report beside it.

    log_to_run(client, parent_run_id, search_folder)     # at every search's end (search/run.py)

On the parent run:
    description (MLflow's `mlflow.note.content` tag, the run page's first screen): the best trial
        against the no-learning baseline, the overview chart, and what each model, optimizer and loss
        scored (search/report_text.py note_markdown), above REPORT_END; what the description held
        below it (the tracker's, written when the parent run opened) is kept;
    OVERVIEW_ARTIFACT, at the artifacts' top: the best score so far against trial-epochs, each
        trial's best by model, optimizer and loss, and against log10(lr) (search/report.py plot_overview);
    ARTIFACT_DIR/: report.md and its figures;
    ARTIFACT_DIR/IMPORTANCE_TABLE, once importance is computed (30 trials and more): a table, not metrics,
        so that the experiment keeps its short list of columns (issue 25: <= 40 keys over all runs).
Everything is read from the search folder (record, result.json rows, kept study), none of it
from MLflow, so the note does not depend on how the tracker names its keys.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from search.report import SearchReport, analyse
from search.report_text import REPORT_FILE, note_markdown, write_report
from trainable import store

log = logging.getLogger(__name__)


ARTIFACT_DIR = "report"
"""where the report's files go on the parent run"""
OVERVIEW_ARTIFACT = "overview.png"
"""the overview chart's name at the top of the parent run's artifacts"""
NOTE_LIMIT = 8000
"""the longest tag value MLflow 3.17 stores (mlflow.utils.validation.MAX_TAG_VAL_LENGTH)"""
IMPORTANCE_TABLE = "importance.csv"
"""beside report.md: PED-ANOVA importance per parameter and the number of trials it was computed on"""
REPORT_END = "_(above: the search report, rewritten each time the search ends)_"
"""the line that ends the report's part of the parent run's description; what follows it is kept"""


def log_to_run(client, run_id: str, path: Path) -> SearchReport:
    """Analyse search folder `path`, write its report, log the files, the description and the importance table
    on `run_id`."""
    report = analyse(path)
    written = write_report(path, report)
    for file in (written, *report.figures.values()):
        client.log_artifact(run_id, str(file), artifact_path=ARTIFACT_DIR)
    with tempfile.TemporaryDirectory() as folder:  # the same PNG under the name the note gives
        overview = Path(folder) / OVERVIEW_ARTIFACT
        shutil.copyfile(report.figures["overview"], overview)
        client.log_artifact(run_id, str(overview))
    earlier = client.get_run(run_id).data.tags.get(MLFLOW_RUN_NOTE, "")
    client.set_tag(run_id, MLFLOW_RUN_NOTE, run_note(report, run_id, earlier))
    if report.importance.values:
        table = path / IMPORTANCE_TABLE
        rows = [f"{name},{value:.6g},{report.importance.trials}" for name, value in report.importance.values.items()]
        store.write_text(table, "\n".join(["param,importance,trials", *rows]) + "\n")
        client.log_artifact(run_id, str(table), artifact_path=ARTIFACT_DIR)
    log.info("search report of %s logged on run %s (%s)", report.record.name, run_id, written)
    return report


def run_note(report: SearchReport, run_id: str, earlier: str = "") -> str:
    """The parent run's description: the report (the overview chart inside), REPORT_END, then the part of the
    `earlier` description that is not an earlier report; the report cut so that the whole fits NOTE_LIMIT.

    The chart's address is the tracking server's own artifact route, relative to the UI's page
    (checked in MLflow 3.17.2's UI: it renders the image inside the description, at its own size,
    once "Show more" opens the description; it strips width attributes).
    """
    full = f"{ARTIFACT_DIR}/{REPORT_FILE}"
    note = note_markdown(report, chart=OVERVIEW_ARTIFACT, full=full,
                         chart_url=f"get-artifact?path={OVERVIEW_ARTIFACT}&run_uuid={run_id}")
    kept = earlier.split(REPORT_END, 1)[1] if REPORT_END in earlier else earlier
    tail = f"\n{REPORT_END}\n\n{kept.strip()}\n"[:NOTE_LIMIT // 2]  # the tracker's few lines, never the report's room
    if len(note) + len(tail) > NOTE_LIMIT:
        cut = f"\n\n… (cut to fit MLflow's {NOTE_LIMIT} characters: the whole report is `{full}`)\n"
        note = note[:NOTE_LIMIT - len(tail) - len(cut)] + cut
    return note + tail
