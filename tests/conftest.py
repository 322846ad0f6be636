"""Shared fixtures: one local Ray per test session, tiny synthetic data, a template MLflow store.

Costs measured on 2 cores: `ray.init` 4-10 s, a new MLflow sqlite store ~5 s, importing
torch + ray.tune + mlflow ~7 s per process. So Ray starts once (its address is exported
for CLI subprocesses), and each test copies a migrated MLflow database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own decode cache and LABELTUNE_HOME; nothing lands in the repo or ~."""
    monkeypatch.setenv("LABELTUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "1")
    monkeypatch.setenv("RAY_DEDUP_LOGS", "0")


@pytest.fixture(autouse=True, scope="session")
def _nothing_lands_in_the_checkout():
    """MLflow's default store is ./mlflow.db: a client built from unset global URIs writes it into the checkout."""
    before = (REPO / "mlflow.db").exists()
    yield
    if not before and (REPO / "mlflow.db").exists():
        pytest.fail(f"a test made {REPO / 'mlflow.db'} (an MLflow call without the store's URI)")


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory):
    """A local Ray head started once for the session; CLI subprocesses join it with --address."""
    import ray

    ctx = ray.init(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False,
                   log_to_driver=False, configure_logging=False)
    address = ctx.address_info["address"]
    os.environ["LABELTUNE_TEST_RAY_ADDRESS"] = address
    yield address
    ray.shutdown()


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A tiny synthetic dataset in the course layout (160 labelled images + 20 test images)."""
    from trainable import synth

    out = tmp_path_factory.mktemp("synth") / "data"
    synth.write_dataset(out, n=160, test=20, seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory) -> Path:
    """An MLflow sqlite store migrated once; tests copy it (a fresh one costs ~5 s)."""
    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    import mlflow

    mlflow.MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def labeltune_home(tmp_path, monkeypatch, _mlflow_template) -> Path:
    """$LABELTUNE_HOME for one test, with a ready MLflow store under mlruns/."""
    home = tmp_path / "home"
    (home / "mlruns").mkdir(parents=True)
    shutil.copy(_mlflow_template, home / "mlruns" / "mlflow.db")
    monkeypatch.setenv("LABELTUNE_HOME", str(home))
    return home


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run `labeltune ARGS` as a user would, in a subprocess; returns the completed process.

    MLflow's URIs come from LABELTUNE_HOME unless `env` names them: an in-process MLflow call of an
    earlier test must not redirect a later subprocess's store.
    """
    inherited = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    full_env = {**inherited, **(env or {})}
    proc = subprocess.run([str(BIN / "labeltune"), *args], capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"labeltune {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc
