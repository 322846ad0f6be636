"""`labeltune ui`: the MLflow UI on the project's store, bound to 127.0.0.1 unless told.

It prints the link to the latest search's trials (their saved runs view: sorted by the primary metric, the
searched params as columns; search/tracking/runs.py) and its parent run, then becomes `python -m mlflow ui`
(exec) with the registry on the same store and the child's known noise filtered: Starlette's deprecation
of its WSGI middleware (UI_WARNING_FILTERS, through PYTHONWARNINGS, which the uvicorn workers inherit).
"""

from __future__ import annotations

from pathlib import Path

import click

UI_WARNING_FILTERS = ("ignore:starlette.middleware.wsgi is deprecated:UserWarning",)
"""PYTHONWARNINGS entries for the UI's processes: MLflow 3.17's server imports Starlette's deprecated WSGI
middleware (a StarletteDeprecationWarning, a UserWarning) at start"""


@click.command()
@click.option("--port", default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to bind (0.0.0.0 exposes it to the network)")
@click.option("--workers", default=1, show_default=True, help="web worker processes (MLflow's default of 4 is slow to start on small machines)")
@click.option("--tracking-uri", default=None, help="the store to show [default: $MLFLOW_TRACKING_URI, else sqlite under $LABELTUNE_HOME/mlruns]")
def ui(port, host, workers, tracking_uri):
    """Start the MLflow UI on the project's store."""
    import os
    import sys

    from trainable import store

    uri = store.tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    for line in ui_links(uri, host, port):
        click.echo(line)
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # no background job runners for a UI
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), *UI_WARNING_FILTERS]))
    args = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--registry-store-uri", uri,
            "--host", host, "--port", str(port), "--workers", str(workers)]
    os.execv(sys.executable, args)


def ui_links(uri: str, host: str, port: int) -> list[str]:
    """What `labeltune ui` prints: the UI's address, then the latest search's links, else the experiment's runs."""
    import mlflow

    from search.tracking.names import EXPERIMENT, SEARCH_TAG
    from search.tracking.runs import latest_search, open_experiment, runs_view_url, search_links, ui_address

    address = ui_address(uri, host, port)
    experiment_id = open_experiment(EXPERIMENT, uri)  # so that the link below opens an experiment that exists
    latest = latest_search(mlflow.MlflowClient(uri), experiment_id)
    lines = [f"MLflow UI for {uri}: {address}"]
    if latest is not None:
        lines += search_links(uri, latest.data.tags[SEARCH_TAG], address)
    if len(lines) == 1:
        url = runs_view_url(address, experiment_id)
        lines.append(f"MLflow: the runs of experiment {EXPERIMENT}, best first: {url}")
    return lines
