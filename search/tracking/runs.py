"""The MLflow store: where it is, whether it answers, and finding a search's runs in it.

    check_store(uri)                              # before starting: TrackingUnavailable names the URI
    experiment_id = open_experiment(EXPERIMENT, uri)
    parent, children = find_search_runs(uri, "search-0612")
    with mlflow_uris(uri): mlflow.pyfunc.load_model("models:/labeltune@champion")

The store's URI itself comes from `trainable.store.tracking_uri` (a path under
$LABELTUNE_HOME, no MLflow needed to name it).
"""

from __future__ import annotations

import contextlib
import numbers
import os
import socket
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import mlflow

from search.tracking.names import CURVE_METRICS, EXPERIMENT, ROLE_PARENT, ROLE_TAG, ROLE_TRIAL, SEARCH_TAG, TRIAL_TAG
from trainable import store
from trainable.errors import LabeltuneError, first_line
from trainable.config import PRIMARY_SIGN
from trainable.metrics import PRIMARY_METRIC


class TrackingUnavailable(LabeltuneError):
    """The MLflow store cannot be reached or written; the message names the URI."""


@contextlib.contextmanager
def mlflow_uris(uri: str):
    """Point MLflow's global tracking and registry URIs at `uri` for a block, then restore them.

    Only for MLflow calls that build their own clients from the globals (`models:/` URIs,
    the fluent run API). MLflow mirrors the globals into os.environ, which child processes
    would inherit, so the environment is restored too.
    """
    import mlflow

    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_env["MLFLOW_TRACKING_URI"])
        mlflow.set_registry_uri(saved_env["MLFLOW_REGISTRY_URI"])
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def open_experiment(name: str, uri: str | None = None):
    """Point MLflow at the store and return the experiment id, creating it with an absolute artifact location.
    """
    import mlflow

    uri = store.tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri[len("sqlite:///"):]).parent / "artifacts" / name).as_uri()
    return client.create_experiment(name, artifact_location=location)




def check_store(tracking_uri: str, timeout_s: float = 10) -> None:
    """Raise TrackingUnavailable (one line, naming the URI) unless the MLflow store answers and can be written.

    http(s): GET <uri>/health with a timeout first, so a server that is down fails in
    seconds rather than after MLflow's minutes of retries. sqlite: the folder must be
    creatable and writable and the database not locked (a write transaction is opened and
    rolled back). Then MLflow itself must read the store (a wrong schema, a non-MLflow file).
    """
    uri = tracking_uri
    if uri.startswith(("http://", "https://")):
        _check_http(uri, timeout_s)
    elif uri.startswith("sqlite:///"):
        _check_sqlite(uri, Path(uri[len("sqlite:///"):]), timeout_s)
    # MLflow retries an HTTP request for minutes by default: one try, bounded, for this check only.
    saved = {key: os.environ.get(key) for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, int(timeout_s)))
    try:
        mlflow.MlflowClient(uri).search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - any failure here means the store is unusable; say so with the URI
        raise TrackingUnavailable(f"MLflow store {uri} is not usable: {type(e).__name__}: {first_line(str(e))}") from e
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _check_http(uri: str, timeout_s: float) -> None:
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            pass
    except urllib.error.HTTPError:
        return  # something answers; whether it is an MLflow server is the next check's question
    except (urllib.error.URLError, OSError, socket.timeout) as e:
        reason = getattr(e, "reason", e)
        raise TrackingUnavailable(
            f"MLflow tracking server {uri} is unreachable ({reason}); start it or pass another --tracking-uri") from e


def _check_sqlite(uri: str, path: Path, timeout_s: float) -> None:
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrackingUnavailable(f"MLflow store {uri}: cannot create folder {folder}: {e.strerror or e}") from e
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TrackingUnavailable(f"MLflow store {uri}: folder {folder} is not writable")
    if not path.exists():
        return  # MLflow creates the database (next check)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=timeout_s)
        try:
            conn.execute("BEGIN IMMEDIATE")  # takes the write lock: fails on a locked or read-only database
            conn.rollback()
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise TrackingUnavailable(f"MLflow store {uri} cannot be written: {e}") from e


def find_search_runs(tracking_uri: str, search_name: str, experiment: str = EXPERIMENT) -> tuple[Any, list]:
    """(parent run or None, child runs sorted by trial id) of the search called `search_name`."""
    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None, []
    parents = search_runs(client, [exp.experiment_id], parent_filter(search_name))
    parent = min(parents, key=lambda run: run.info.start_time or 0) if parents else None
    children = search_runs(client, [exp.experiment_id], child_filter(search_name))
    return parent, sorted(children, key=lambda run: run.data.tags.get(TRIAL_TAG, ""))


def search_runs(client: mlflow.MlflowClient, experiment_ids: list, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _quote(value: str) -> str:
    """A string literal for MLflow's filter syntax."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"a search name or trial id cannot hold both quote characters: {value!r}")


def parent_filter(search_name: str) -> str:
    return f"tags.`{SEARCH_TAG}` = {_quote(search_name)} and tags.`{ROLE_TAG}` = '{ROLE_PARENT}'"


def child_filter(search_name: str, trial_id: str | None = None) -> str:
    text = f"tags.`{SEARCH_TAG}` = {_quote(search_name)} and tags.`{ROLE_TAG}` = '{ROLE_TRIAL}'"
    if trial_id is not None:
        text += f" and tags.`{TRIAL_TAG}` = {_quote(trial_id)}"
    return text


def epoch_history(client: mlflow.MlflowClient, run_id: str) -> list[dict]:
    """One dict per logged step: CURVE_METRICS, PRIMARY_METRIC, epoch (= step); a step logged twice keeps its latest."""
    rows: dict[int, dict] = {}
    for key in dict.fromkeys((*CURVE_METRICS, PRIMARY_METRIC)):
        for metric in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp):
            rows.setdefault(metric.step, {"epoch": metric.step})[key] = metric.value
    return [rows[step] for step in sorted(rows)]


def best_row(history: list[dict]) -> dict | None:
    """The first epoch with the best PRIMARY_METRIC (NaN never wins), as promote ranks a trial; None without one."""
    sign = PRIMARY_SIGN
    rows = [row for row in history if PRIMARY_METRIC in row and row[PRIMARY_METRIC] == row[PRIMARY_METRIC]]
    return max(rows, key=lambda row: sign * row[PRIMARY_METRIC], default=None)


def is_number(value: Any) -> bool:
    """A real number worth logging as a metric (not a bool, numpy's included)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"
