"""`labeltune ui`: the MLflow UI on the project's store, bound to 127.0.0.1 unless told."""

from __future__ import annotations

from pathlib import Path

import click


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
    # Experiment pages open on GenAI traces in MLflow 3.17; the runs table is the machine-learning view.
    click.echo(f"MLflow UI for {uri}: http://{host}:{port}/#/experiments "
               f"(then an experiment's Runs tab, or append /<id>/runs?workflowType=machine_learning)")
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # no background job runners for a UI
    args = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port),
            "--workers", str(workers)]
    os.execv(sys.executable, args)
