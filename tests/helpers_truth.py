"""One truth about a search: read what each store says about how it ended, and check that they agree.

    views = one_truth(search_path, tracking_uri)       # asserts; returns the agreed figures

The stores: the search record, `labeltune searches`, `labeltune report`'s analysis, the kept
Optuna study and the MLflow parent run. The fields: status, stop reason, the trials per
outcome (finished, stopped early, ended by the stop, failed, ...) and the best trial with
its value (its best epoch's PRIMARY_METRIC).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainable.metrics import PRIMARY_METRIC


def _study_view(search_path: Path, name: str) -> dict:
    from optuna.trial import TrialState

    from search.outcome import COMPLETED, OUTCOMES
    from search.record import TUNE_TRIAL_ATTR
    from search.study import WARM_FROM, kept_outcomes, load_kept_study

    kept = kept_outcomes(search_path, name)
    states = {t.user_attrs.get(TUNE_TRIAL_ATTR): t.state for t in load_kept_study(search_path, name).get_trials(
        deepcopy=False) if WARM_FROM not in t.user_attrs}
    counts = dict.fromkeys(OUTCOMES, 0)
    for trial_id, item in kept.items():
        counts[item["outcome"]] += 1
        expected = {**dict.fromkeys(COMPLETED, TrialState.COMPLETE), "failed": TrialState.FAIL,
                    "never_ran": TrialState.FAIL, "unfinished": TrialState.RUNNING}[item["outcome"]]
        assert states.get(trial_id) == expected, f"study trial {trial_id}: {item['outcome']} but {states.get(trial_id)}"
    # every other trial of the study: one only a killed driver knew, failed by the resume (study.fail_zombies)
    assert all(state == TrialState.FAIL for trial_id, state in states.items() if trial_id not in kept), states
    best_id = min((i for i in kept if kept[i]["best"] is not None), key=lambda i: (-kept[i]["best"], i), default="")
    return {"counts": counts, "best_trial": best_id, "best": kept[best_id]["best"] if best_id else None,
            "running": sum(state == TrialState.RUNNING for state in states.values())}


def _parent_view(tracking_uri: str, name: str) -> dict:
    from search.tracking.names import STOP_TAG
    from search.tracking.runs import find_search_runs

    parent, children = find_search_runs(tracking_uri, name)
    assert parent is not None, f"no MLflow parent run of {name}"
    tags = parent.data.tags
    best_child = [c for c in children if c.data.tags.get("labeltune.best") == "true"]
    return {"status": {"FINISHED": "finished", "KILLED": "interrupted"}.get(parent.info.status, parent.info.status),
            "stop_reason": tags.get(STOP_TAG, ""), "counts": json.loads(tags.get("labeltune.outcomes", "{}")),
            "best_trial": tags.get("labeltune.best_trial_id", ""), "best": parent.data.metrics.get(f"best/{PRIMARY_METRIC}"),
            "best_child": [c.data.tags["labeltune.trial_id"] for c in best_child],
            "children": {c.data.tags["labeltune.trial_id"]: c.info.status for c in children}}


def one_truth(search_path: Path, tracking_uri: str | None) -> dict:
    """Assert that the record, `searches`, the report, the kept study and the MLflow parent agree; return the figures."""
    from search.catalog import list_searches
    from search.outcome import started
    from search.record import SearchRecord

    record = SearchRecord.read(search_path)
    truth = {"status": record.status, "stop_reason": record.stop_reason, "counts": record.counts,
             "best_trial": record.best_trial, "best": record.best}
    assert record.counts, f"the record of {record.name} holds no outcome counts"

    (row,) = [r for r in list_searches(str(search_path.parent)) if r["name"] == record.name]
    assert (row["status"], row["trials_done"]) == (record.status, started(record.counts)), row
    assert row["best"] == pytest.approx(record.best), row

    study = _study_view(search_path, record.name)
    assert study["counts"] == record.counts, (study, truth)
    assert (study["best_trial"], study["best"]) == (record.best_trial, pytest.approx(record.best)), (study, truth)
    if record.status == "finished":
        assert study["running"] == 0, study

    from search.report import analyse

    report = analyse(search_path)
    assert report_counts(report) == record.counts, (report_counts(report), truth)

    if tracking_uri is not None:
        parent = _parent_view(tracking_uri, record.name)
        assert (parent["status"], parent["stop_reason"], parent["counts"]) == \
            (record.status, record.stop_reason, record.counts), (parent, truth)
        assert (parent["best_trial"], parent["best"]) == (record.best_trial, pytest.approx(record.best)), (parent, truth)
        assert parent["best_child"] == [record.best_trial], parent
        if record.status == "finished":
            assert "RUNNING" not in parent["children"].values() and "KILLED" not in parent["children"].values(), parent
    return truth


def report_counts(report) -> dict:
    """The outcome counts `labeltune report` shows (search/report.py's analysis)."""
    return dict(report.counts)
