"""A model registered by an earlier labeltune still loads and predicts the same.

`tests/data/registered_store/` is an MLflow store made at commit 98a2200 (before the MLflow
code moved into `search/tracking/`): `labeltune data synth --n 300 --test 20 --seed 0`, a
2-trial `quick` search of cnn4 at width 0.25 and 32 px, 1 epoch, and `labeltune promote
--allow-below-baseline`, all under LABELTUNE_HOME=/tmp/fx/store. `expected.npz` holds 4
random uint8 images and the probabilities `mlflow.pyfunc.load_model("models:/labeltune@champion")`
gave for them then. The registered model's `python_model.pkl` pickles `search.pyfunc.LabeltuneModel`
by reference, so that name must keep importing.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).resolve().parent / "data" / "registered_store"
MADE_AT = "/tmp/fx/store"
"""the LABELTUNE_HOME the store was made under; its absolute paths are rewritten to the copy's"""


def _move_store(home: Path) -> str:
    """Copy the fixture store under `home` and point every absolute path inside it at the copy."""
    shutil.copytree(FIXTURE / "mlruns", home / "mlruns")
    db = home / "mlruns" / "mlflow.db"
    with sqlite3.connect(db) as con:
        for table, column in [("runs", "artifact_uri"), ("tags", "value"), ("datasets", "dataset_source"),
                              ("logged_models", "artifact_location"), ("experiments", "artifact_location"),
                              ("model_versions", "storage_location"), ("model_versions", "source")]:
            con.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (MADE_AT, str(home)))
    return f"sqlite:///{db}"


@pytest.fixture
def old_store(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("LABELTUNE_HOME", str(tmp_path))
    monkeypatch.setenv("LABELTUNE_CACHE", str(tmp_path / "cache"))
    return _move_store(tmp_path)


def test_a_model_registered_before_the_move_loads_as_pyfunc_and_predicts_as_then(old_store):
    import mlflow

    from search.tracking.runs import mlflow_uris

    expected = np.load(FIXTURE / "expected.npz")
    with mlflow_uris(old_store):
        model = mlflow.pyfunc.load_model("models:/labeltune@champion")
    probs = model.predict(expected["images"])
    assert list(probs.columns) == list(expected["labels"])
    np.testing.assert_allclose(probs.to_numpy(), expected["probs"], rtol=1e-5, atol=1e-6)


def test_pred_resolves_the_old_champion_to_a_checkpoint_that_loads_safely(old_store):
    from search.tracking.registry import resolve_registered
    from trainable import checkpoint as ckpt_io
    from trainable.ensemble import load_predictor

    path = resolve_registered("labeltune@champion", old_store)
    predictor = load_predictor(ckpt_io.load(path), device="cpu")  # torch.load(..., weights_only=True) inside
    expected = np.load(FIXTURE / "expected.npz")
    np.testing.assert_allclose(predictor.probabilities(expected["images"]), expected["probs"], rtol=1e-5, atol=1e-6)
