"""Promotion in the MLflow registry: the promotion run, the pyfunc model with labeltune's checkpoint and card inside,
the version's description, tags and alias; and NAME@ALIAS back to a checkpoint.

    register_model(promotion, record, "labeltune", "champion", uri, write_card)   # `labeltune promote`
    path = resolve_registered("labeltune@champion")                               # `labeltune pred --registered`
    path, version = registered_checkpoint("labeltune@champion"); resolved_line("labeltune@champion", version)

The promotion run lives in PROMOTION_EXPERIMENT, not among the trials it would outrank (its val figure comes from
thresholds chosen on val) and whose table its figures would fill: it is tagged with the search, the trial and the
search's parent run (SEARCH_RUN_TAG), the parent with it (PROMOTION_RUN_TAG), and it is the registered version's
source run. It holds `registered_metrics` (a few keys) and the whole score table as PROMOTION_TABLE.
"""

from __future__ import annotations

import csv
import logging
import tempfile
from pathlib import Path
from typing import Callable

import mlflow

from search.console import library_quiet
from search.promotion import Promotion, PromotionError
from search.record import SearchRecord
import search.tracking.names as names
from search.tracking.columns import baseline_metrics
from search.tracking.runs import find_search_runs, is_number, mlflow_uris, open_experiment
from trainable import store
from trainable.baselines import PREFIX as BASELINE_PREFIX
from trainable.gym import CHECKPOINT_FILE
from trainable.metrics import CV_METRIC

log = logging.getLogger(__name__)


def register_model(promotion: Promotion, record: SearchRecord, model_name: str, alias: str, tracking_uri: str | None,
                   write_card: Callable[[], None], move_alias: bool = True) -> None:
    """Log the pyfunc model (checkpoint + model card) in a promotion run (PROMOTION_EXPERIMENT) linked to the search's
    parent run; set the alias when `move_alias` (a model below its baseline is registered, but the alias stays where
    it was)."""
    uri = store.tracking_uri(tracking_uri or record.tracking_uri)
    experiment_id = open_experiment(names.PROMOTION_EXPERIMENT, uri)
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    parent, children = find_search_runs(uri, promotion.search)
    tags = lineage_tags(promotion, parent, children, uri)
    # The card travels inside the registered model, so it names the version it is about to get.
    promotion.model_name, promotion.alias, promotion.alias_set = model_name, alias, move_alias
    promotion.version = next_version(client, model_name)
    version = log_and_register(promotion, uri, experiment_id, tags, write_card)
    if parent is not None:
        client.set_tag(parent.info.run_id, names.PROMOTION_RUN_TAG, promotion.run_id)
    if version != promotion.version:  # another promotion registered in between: fix the copy on disk
        promotion.version = version
        write_card()
    describe_version(client, promotion, record)


def lineage_tags(promotion: Promotion, parent, children: list, uri: str) -> dict[str, str]:
    """The promotion run's tags: the search, the trial, its source checkpoint, the search's parent run (SEARCH_RUN_TAG:
    no mlflow.parentRunId, which would nest it among the trials) and the trial's run (`find_search_runs`: both ids go
    on the promotion too, for the card's lineage; a search the store does not know is a warning), and an ensemble's
    members."""
    trial_run = next((c for c in children if c.data.tags.get(names.TRIAL_TAG) == promotion.trial_id), None)
    tags = {names.SEARCH_TAG: promotion.search, names.ROLE_TAG: names.ROLE_PROMOTION,
            names.TRIAL_TAG: promotion.trial_id, names.CHECKPOINT_TAG: str(promotion.source_checkpoint)}
    if parent is not None:
        tags[names.SEARCH_RUN_TAG] = parent.info.run_id
    if trial_run is not None:
        tags[names.TRIAL_RUN_TAG] = trial_run.info.run_id
    promotion.parent_run_id = parent.info.run_id if parent is not None else ""
    promotion.trial_run_id = trial_run.info.run_id if trial_run is not None else ""
    if parent is None:
        log.warning("search %s has no runs in the MLflow store %s: the card's lineage stays empty "
                    "(was the search run with --no-track, or against another store?)", promotion.search, uri)
    if len(promotion.members) > 1:
        tags[names.ENSEMBLE_TAG] = ",".join(m.trial_id for m in promotion.members)
    return tags


def next_version(client, model_name: str) -> str:
    """The version the registry will give the next model registered as `model_name` ("1" for a new name)."""
    versions = client.search_model_versions(f"name = '{model_name}'") if client.search_registered_models(
        f"name = '{model_name}'") else []
    return str(max((int(v.version) for v in versions), default=0) + 1)


REGISTERED_FIGURES = ("micro_f1", "macro_f1", "map")
"""the test figures (at the promoted thresholds) logged as metrics; every figure is in PROMOTION_TABLE"""


def registered_metrics(promotion: Promotion) -> dict[str, float]:
    """The few figures logged on the promotion run and its model: test's REGISTERED_FIGURES at the per-label
    thresholds, test micro-F1 at the global one (`global_threshold/`), val micro-F1 in sample and cross-validated,
    and the no-learning baseline's val and test micro-F1 (names.baseline_metric)."""
    figures = {f"test/{name}": promotion.test_per_label.get(f"test/{name}") for name in REGISTERED_FIGURES}
    figures[f"{names.GLOBAL_THRESHOLD_PREFIX}test/micro_f1"] = promotion.test_global.get("test/micro_f1")
    figures["val/micro_f1"] = promotion.val.get("per-label", {}).get("val/micro_f1")
    figures[CV_METRIC] = promotion.val_cv_micro_f1
    figures.update(baseline_metrics(promotion.baselines))
    return {k: float(v) for k, v in figures.items() if is_number(v)}


def write_score_table(promotion: Promotion, path: Path) -> Path:
    """PROMOTION_TABLE: one row per figure (`micro_f1`, `f1/<label>`, `tp/<label>`...), one column per split and
    threshold policy (`val trial`, ..., `test per-label`), then the no-learning baseline's val and test figure."""
    columns: dict[str, dict[str, float]] = {}
    for split, scores in (("val", promotion.val), ("test", promotion.test)):
        for policy, figures in scores.items():
            columns[f"{split} {policy}"] = {k.partition("/")[2] or k: v for k, v in figures.items() if is_number(v)}
    for split in ("val", "test"):
        prefix = f"{BASELINE_PREFIX}{split}/"
        columns[f"{split} baseline"] = {k.removeprefix(prefix): v for k, v in promotion.baselines.items()
                                        if k.startswith(prefix)}
    rows = list(dict.fromkeys(name for figures in columns.values() for name in figures))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["figure", *columns])
        for name in rows:
            writer.writerow([name, *(columns[c].get(name, "") for c in columns)])
    return path


def log_and_register(promotion: Promotion, uri: str, experiment_id: str, tags: dict[str, str],
                     write_card: Callable[[], None]) -> str:
    """One promotion run (`tags`): the thresholds, the card (written once the run id is known), the pyfunc model
    registered as `promotion.model_name` with the checkpoint and card inside, the card beside it, and
    `registered_metrics` on the run and on the model; returns the version number the registry gave it."""
    with library_quiet():  # defining a PythonModel without type hints warns once, at import
        from search.tracking.pyfunc import LabeltuneModel, signature
    metrics = registered_metrics(promotion)
    with mlflow_uris(uri), mlflow.start_run(experiment_id=experiment_id, run_name=f"promote-{promotion.search}", tags=tags) as run:
        mlflow.log_dict(promotion.thresholds, "thresholds.json")
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_artifact(str(write_score_table(promotion, Path(tmp) / names.PROMOTION_TABLE)))
        promotion.run_id = run.info.run_id
        write_card()
        with library_quiet():  # "Successfully registered model", type-hint and cloudpickle advice
            info = mlflow.pyfunc.log_model(
                name="model", python_model=LabeltuneModel(), registered_model_name=promotion.model_name,
                artifacts={"checkpoint": str(promotion.checkpoint), "model_card": str(promotion.card)},
                signature=signature(list(promotion.thresholds)),  # no input_example: MLflow would load the model to check it
                pip_requirements=["labeltune"],
            )
        mlflow.log_artifact(str(promotion.card), "model")
        # On the promotion run (the version's run_id) and on its logged model (MLflow 3's model page).
        mlflow.log_metrics(metrics, model_id=info.model_id)
    return str(info.registered_model_version)


def version_tags(promotion: Promotion, record: SearchRecord) -> dict[str, str]:
    """The registered version's tags: its search, its trial(s), the data's fingerprint, whether it beats the baseline."""
    return {
        names.SEARCH_TAG: promotion.search,
        names.VERSION_TRIAL_TAG: ",".join(m.trial_id for m in promotion.members) or promotion.trial_id,
        names.FINGERPRINT_TAG: record.data_fingerprint,
        names.BEATS_BASELINE_TAG: str(not promotion.below_baseline).lower(),
    }


def describe_version(client, promotion: Promotion, record: SearchRecord) -> None:
    """Give the registered version (`promotion.model_name` and `.version`) its description and tags, and point
    `promotion.alias` at it when `promotion.alias_set`."""
    name, version = promotion.model_name, promotion.version
    client.update_model_version(name, version, description=version_description(promotion))
    for key, value in version_tags(promotion, record).items():
        client.set_model_version_tag(name, version, key, value)
    if promotion.alias_set:
        client.set_registered_model_alias(name, promotion.alias, version)


def version_description(promotion: Promotion) -> str:
    """The registered version's description: the card's headline (test and val micro-F1 against the baselines),
    then the search and the trial(s) it comes from."""
    base = promotion.baselines
    kind = (f"ensemble of trials {', '.join(m.trial_id for m in promotion.members)}" if len(promotion.members) > 1
            else f"trial {promotion.trial_id} at epoch {promotion.epoch}")
    if not promotion.below_baseline:
        verdict = ""
    elif promotion.alias_set:
        verdict = "; promoted with --allow-below-baseline"
    else:
        verdict = "; the alias was not moved"
    return (f"Test micro-F1 {promotion.test_per_label['test/micro_f1']:.4f} (per-label thresholds) against "
            f"{base[BASELINE_PREFIX + 'test/micro_f1']:.4f} for the best no-learning baseline "
            f"({promotion.baseline_rule}); {promotion.decision_line()}{verdict}. Search {promotion.search}, {kind}.")


def resolve_registered(ref: str, tracking_uri: str | None = None) -> Path:
    """`NAME@ALIAS` (or `NAME/VERSION`) -> the checkpoint file inside that registered model's artifacts."""
    return registered_checkpoint(ref, tracking_uri)[0]


def resolved_line(ref: str, version) -> str:
    """What `ref` resolved to, in one line: 'labeltune@champion: version 3 of labeltune, search s1, trial 0ecb96b5'."""
    tags = version.tags or {}
    return (f"{ref}: version {version.version} of {version.name}, search {tags.get(names.SEARCH_TAG, '?')}, "
            f"trial {tags.get(names.VERSION_TRIAL_TAG, '?')}")


def registered_checkpoint(ref: str, tracking_uri: str | None = None) -> tuple[Path, object]:
    """`NAME@ALIAS` (or `NAME/VERSION`) -> (the checkpoint file inside that registered model's artifacts, its
    ModelVersion)."""
    if "@" not in ref and "/" not in ref:
        raise PromotionError(f"{ref}: expected NAME@ALIAS (e.g. labeltune@champion) or NAME/VERSION")
    uri = store.tracking_uri(tracking_uri)
    model_uri = f"models:/{ref}"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    # MLflow resolves models:/ with clients built from the global URIs: unset, they make ./mlflow.db.
    try:
        if "@" in ref:
            version = client.get_model_version_by_alias(*ref.split("@", 1))
        else:
            version = client.get_model_version(*ref.split("/", 1))
        # One download per registered version, reused by later predictions.
        target = store.cache_dir() / "registry" / f"{version.name}-v{version.version}-{version.run_id}"
        if not any(target.rglob(CHECKPOINT_FILE)):
            target.mkdir(parents=True, exist_ok=True)
            with mlflow_uris(uri):
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{version.name}/{version.version}", dst_path=str(target),
                    tracking_uri=uri, registry_uri=uri)
    except Exception as exc:  # MlflowException for an unknown alias, others for a broken store
        raise PromotionError(f"{model_uri}: not found in the registry at {uri} ({str(exc).splitlines()[0]})") from exc
    found = sorted(target.rglob(CHECKPOINT_FILE))
    if not found:
        raise PromotionError(f"{model_uri}: the registered model holds no {CHECKPOINT_FILE}")
    return found[0], version
