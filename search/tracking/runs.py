"""The MLflow store: where it is, whether it answers, finding a search's runs in it, and the UI's links to them.

    check_store(uri)                              # before starting: TrackingUnavailable names the URI
    experiment_id = open_experiment(EXPERIMENT, uri)
    parent, children = find_search_runs(uri, "search-0612")
    with mlflow_uris(uri): mlflow.pyfunc.load_model("models:/labeltune@champion")
    save_view(client, experiment_id, "search-0612", ["model", "optimizer", "log10_lr"])
    runs_view_url(ui_address(uri), experiment_id, "search-0612", saved=True)

The store's URI itself comes from `trainable.store.tracking_uri` (a path under
$LABELTUNE_HOME, no MLflow needed to name it).

What MLflow 3.17.2's UI reads from a URL (its bundle, mlflow/server/js/build/static/js, checked in headless
Chromium with a fresh profile):
- `workflowType` = `machine_learning` | `genai`: the URL wins over the browser's storage (`mlflow.workflowType`,
  GenAI by default), so every link names it; the experiment's `mlflow.experimentKind` tag does not change the
  landing page. `#/experiments/<id>` without a tab redirects and keeps only startTimeLabel, startTime, endTime,
  workflowType and workspace: links go to `#/experiments/<id>/runs`.
- the search facets `searchFilter` (MLflow's filter syntax), `orderByKey` (`metrics.`best/val/micro_f1``),
  `orderByAsc` (`true`/`false`), `startTime`, `lifecycleFilter`, `modelVersionFilter`, `datasetsFilter`
  (base64 JSON), and `isPreview`.
- NOT the columns: `selectedColumns`, `columnOrder` and the rest of the table's state (runsExpanded, groupBy,
  compareRunCharts, hideEmptyCharts, ...) live in the browser's storage, never in the URL. A saved view carries
  them: the experiment tag `mlflow.sharedViewState.<key>` holding `{"name", "createdAt", "updatedAt",
  "state": <JSON text of facets and table state>}`, opened by `#/experiments/<id>/runs?viewStateShareKey=<key>`.
  A URL that also names a facet ignores the view. The UI lists the views, refuses to save a 41st per experiment
  and any envelope over 20,000 characters; `save_view` keeps labeltune's newest VIEWS_KEPT.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import numbers
import os
import re
import socket
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlencode
from typing import Any

import mlflow

from search.tracking.names import (BEST_EPOCH, BEST_PREFIX, CURVE_METRICS, EXPERIMENT, EXPERIMENT_KIND, EXPERIMENT_KIND_TAG,
                                   ROLE_PARENT, ROLE_TAG, ROLE_TRIAL, SEARCH_TAG, TRIAL_TAG, VIEW_TAG_PREFIX)
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

    The experiment is tagged EXPERIMENT_KIND (model training, for the UI's side navigation) unless it says a kind.
    """
    import mlflow

    uri = store.tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if EXPERIMENT_KIND_TAG not in experiment.tags:  # made by an earlier labeltune
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return experiment.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri[len("sqlite:///"):]).parent / "artifacts" / name).as_uri()
    return client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})




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


# ---- links into the MLflow UI (what its URLs can say: the module docstring) --------------------------------

UI_PORT = 5000
"""`labeltune ui`'s (and `mlflow ui`'s) default port"""
ML_WORKFLOW = {"workflowType": "machine_learning"}
"""the URL parameter that opens the runs table, not MLflow's GenAI overview"""
PRIMARY_ORDER = f"metrics.`{BEST_PREFIX}{PRIMARY_METRIC}`"
"""the runs table's sort key: a trial's best epoch, as promotion ranks it"""
VIEW_FIRST_PARAMS = ("model", "optimizer", "log10_lr", "loss", "batch_size")
"""the params a search's saved view shows first, when the search varies them"""
VIEW_KEY_PREFIX = "labeltune-"
VIEWS_KEPT = 30
"""labeltune's saved views kept per experiment, the newest (the UI saves no 41st view, the users' included)"""


def ui_address(tracking_uri: str, host: str = "127.0.0.1", port: int = UI_PORT) -> str:
    """Where the MLflow UI of `tracking_uri` answers: an http(s) tracking server serves its own, a local store
    `labeltune ui --host HOST --port PORT` (0.0.0.0 binds every interface; a browser on this machine uses 127.0.0.1)."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def view_key(search_name: str) -> str:
    """The key of a search's saved view (URL-safe: the search name, or a hash of a name that is not)."""
    if re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", search_name):
        return VIEW_KEY_PREFIX + search_name
    return VIEW_KEY_PREFIX + hashlib.sha256(search_name.encode()).hexdigest()[:16]


def runs_view_url(ui: str, experiment_id: str, search_name: str | None = None, saved: bool = False) -> str:
    """The runs table of an experiment, sorted by the best primary metric, descending.

    `search_name`: only that search's trials; `saved`: through the search's saved view (`save_view`), which also
    picks the columns (a URL alone cannot: the module docstring).
    """
    if saved:
        query = {"viewStateShareKey": view_key(search_name), **ML_WORKFLOW}  # a facet beside it would void the view
    else:
        query = {**ML_WORKFLOW, **({"searchFilter": child_filter(search_name)} if search_name else {}),
                 "orderByKey": PRIMARY_ORDER, "orderByAsc": "false"}
    return f"{ui}/#/experiments/{experiment_id}/runs?{urlencode(query, quote_via=quote)}"


def run_url(ui: str, experiment_id: str, run_id: str) -> str:
    """The page of one run (its metrics, params, artifacts)."""
    return f"{ui}/#/experiments/{experiment_id}/runs/{run_id}"


def model_version_url(ui: str, model_name: str, version: str) -> str:
    """The registry's page of one version of a registered model."""
    return f"{ui}/#/models/{quote(model_name, safe='')}/versions/{version}"


def view_columns(params: list[str]) -> list[str]:
    """The columns of a search's saved view: the best primary metric and its epoch, then the searched params
    (VIEW_FIRST_PARAMS first; `lr` and `weight_decay` as their log10 twins only)."""
    shown = [p for p in params if f"log10_{p}" not in params]
    ordered = [p for p in VIEW_FIRST_PARAMS if p in shown] + [p for p in shown if p not in VIEW_FIRST_PARAMS]
    return [f"metrics.`{BEST_PREFIX}{PRIMARY_METRIC}`", f"metrics.`{BEST_EPOCH}`", *(f"params.`{p}`" for p in ordered)]


def save_view(client: mlflow.MlflowClient, experiment_id: str, search_name: str, params: list[str]) -> str:
    """Save the runs view of a search's trials (filtered, sorted, `view_columns(params)`) as an experiment tag MLflow's
    UI opens by `runs_view_url(..., saved=True)`; returns its key. Older labeltune views beyond VIEWS_KEPT go."""
    columns = view_columns(params)
    state = {"searchFilter": child_filter(search_name), "orderByKey": PRIMARY_ORDER, "orderByAsc": False,
             "selectedColumns": columns, "columnOrder": ["attributes.`Run Name`", *columns]}
    now = int(time.time() * 1000)
    key = view_key(search_name)
    envelope = {"name": f"labeltune {search_name}: trials by {BEST_PREFIX}{PRIMARY_METRIC}", "createdAt": now,
                "updatedAt": now, "state": json.dumps(state)}
    client.set_experiment_tag(experiment_id, VIEW_TAG_PREFIX + key, json.dumps(envelope))
    _prune_views(client, experiment_id)
    return key


def _prune_views(client: mlflow.MlflowClient, experiment_id: str) -> None:
    def updated(value: str) -> float:
        try:
            return float(json.loads(value).get("updatedAt", 0))
        except (ValueError, AttributeError):
            return 0.0

    tags = client.get_experiment(experiment_id).tags
    ours = sorted((k for k in tags if k.startswith(VIEW_TAG_PREFIX + VIEW_KEY_PREFIX)), key=lambda k: updated(tags[k]))
    for key in ours[:max(0, len(ours) - VIEWS_KEPT)]:
        client.delete_experiment_tag(experiment_id, key)


def latest_search(client: mlflow.MlflowClient, experiment_id: str):
    """The parent run of the search started last in the experiment, or None."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{ROLE_TAG}` = '{ROLE_PARENT}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def search_links(tracking_uri: str, search_name: str, ui: str | None = None,
                 experiment: str = EXPERIMENT) -> list[str]:
    """Lines naming the UI's links to a search: its trials' runs view, best first, and its parent run ([] when the
    store holds no such search). `ui`: the UI's address [default: `ui_address(tracking_uri)`, and for a local store
    the lines say that `labeltune ui` serves it]."""
    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    parents = search_runs(client, [exp.experiment_id], parent_filter(search_name)) if exp is not None else []
    if not parents:
        return []
    parent = min(parents, key=lambda run: run.info.start_time or 0)
    local = not tracking_uri.startswith(("http://", "https://"))
    where = " (with `labeltune ui` running)" if ui is None and local else ""
    ui = ui or ui_address(tracking_uri)
    saved = VIEW_TAG_PREFIX + view_key(search_name) in exp.tags
    return [f"MLflow{where}: the trials of {search_name}, best first: "
            f"{runs_view_url(ui, exp.experiment_id, search_name, saved=saved)}",
            f"MLflow: the search's run: {run_url(ui, exp.experiment_id, parent.info.run_id)}"]
