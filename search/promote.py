"""Promote a search's best trial to a model people can use, in one command.

    labeltune promote --search NAME

1. the best trial ranked over all its epochs (`scope="all"`: an ASHA-stopped trial is
   not judged by its last epoch) and that trial's BEST checkpoint, not its last;
2. one decision threshold per label tuned on the validation split;
3. the held-out test split scored with the global and with the per-label thresholds;
4. registered in the MLflow Model Registry as an `mlflow.pyfunc` model whose artifact is
   labeltune's own checkpoint file (labels and thresholds inside) and whose predict
   returns label probabilities; the alias (default `champion`) points at the new version;
5. a model card (markdown) logged with the model and saved beside the search.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from trainable import checkpoint as ckpt_io
from trainable import store
from trainable.gym import CHECKPOINT_FILE
from trainable.metrics import PRIMARY_METRIC, PRIMARY_MODE

log = logging.getLogger(__name__)


class PromotionError(RuntimeError):
    """The search cannot be promoted (not found, no checkpoint, registry unreachable...)."""


@dataclass
class Promotion:
    search: str
    trial_id: str
    checkpoint: Path
    """the promoted checkpoint file (per-label thresholds inside)"""
    source_checkpoint: Path
    epoch: int
    val_score: float
    thresholds: dict[str, float]
    test_global: dict
    test_per_label: dict
    card: Path
    model_name: str = ""
    version: str = ""
    alias: str = ""
    run_id: str = ""
    parent_run_id: str = ""
    trial_run_id: str = ""


def best_checkpoint(search_path: Path, metric: str = PRIMARY_METRIC, mode: str = PRIMARY_MODE):
    """(trial result, best checkpoint folder, its metrics) of the best trial over all epochs."""
    from ray.tune import ExperimentAnalysis, ResultGrid

    try:
        grid = ResultGrid(ExperimentAnalysis(str(search_path), default_metric=metric, default_mode=mode))
        best = grid.get_best_result(metric, mode, scope="all")
    except Exception as exc:  # Ray raises several types for an empty or unreadable experiment
        raise PromotionError(f"{search_path}: no finished trial to promote ({str(exc).splitlines()[0]})") from exc
    checkpoint = best.get_best_checkpoint(metric, mode)
    if checkpoint is None:
        raise PromotionError(f"{search_path}: the best trial {best.path} kept no checkpoint")
    metrics = next(m for c, m in best.best_checkpoints if c.path == checkpoint.path)
    return best, Path(checkpoint.path), metrics


def promote(search: str, metric: str = PRIMARY_METRIC, alias: str = "champion", model_name: str = "labeltune",
            tracking_uri: str | None = None, storage: str | None = None, card_path: str | None = None,
            register: bool = True) -> Promotion:
    from search.tuner import read_record, search_dir
    from trainable.config import TrainConfig
    from trainable.data import decode, load
    from trainable.gym import Gym
    from trainable.metrics import tune_thresholds

    path = search_dir(search, storage)
    record = read_record(path)
    result, ckpt_dir, ckpt_metrics = best_checkpoint(path, metric)
    ckpt = ckpt_io.load(ckpt_dir / CHECKPOINT_FILE)

    # Thresholds on val, scores on test, with the search's own split (split_seed in the config).
    dataset = load(record["data"])
    if dataset.fingerprint != record["data_fingerprint"]:
        raise PromotionError(f"the data in {record['data']} changed since search {search} ran; "
                             f"its validation and test splits would not be the ones it was scored on")
    cfg = TrainConfig.from_dict({**ckpt["config"], "pretrained": False, "device": "auto"})
    images = decode(dataset, cfg.color)
    gym = Gym(cfg, images, dataset.targets, dataset.labels, data_fingerprint=dataset.fingerprint, checkpoint=ckpt)
    val = gym.evaluate("val")
    collector = gym.last_collector
    thresholds = tune_thresholds(collector.probs, collector.targets, default=cfg.threshold)
    thresholds = keep_micro_f1(collector.probs, collector.targets, thresholds, cfg.threshold)
    val_tuned = gym.evaluate("val", threshold=thresholds)
    test_global = gym.evaluate("test")
    test_tuned = gym.evaluate("test", threshold=thresholds)

    out_dir = path / "promoted"
    out_dir.mkdir(parents=True, exist_ok=True)
    promoted = ckpt_io.save(
        out_dir / CHECKPOINT_FILE, model_state=ckpt["model_state"], optimizer_state={}, epoch=ckpt["epoch"],
        config=ckpt["config"], labels=ckpt["labels"], thresholds=[float(t) for t in thresholds],
        metrics={**ckpt["metrics"], **{k: v for k, v in test_tuned.items()}},
        data_fingerprint=ckpt["data_fingerprint"],
    )
    promotion = Promotion(
        search=search, trial_id=str(result.metrics.get("trial_id", Path(result.path).name)), checkpoint=promoted, source_checkpoint=ckpt_dir / CHECKPOINT_FILE,
        epoch=int(ckpt["epoch"]), val_score=float(ckpt_metrics[metric]),
        thresholds=dict(zip(dataset.labels, map(float, thresholds))),
        test_global=test_global, test_per_label=test_tuned, card=Path(card_path or out_dir / "model_card.md").resolve(),
    )
    lineage = {"val_global": val, "val_per_label": val_tuned}
    card = functools.partial(write_card, promotion, record, dataset, result, lineage)
    if register:
        register_model(promotion, record, model_name, alias, tracking_uri, card)
    else:
        card()
    return promotion


def keep_micro_f1(probs: np.ndarray, targets: np.ndarray, tuned: np.ndarray, default: float) -> np.ndarray:
    """Fall back to the global threshold, label by label, while the tuned ones lower validation micro F1.

    Maximising each label's F1 can still lower micro F1 (a rare label that trades a few false
    negatives for many false positives); reverting the most harmful label first keeps every
    label's F1 at least the global one's and micro F1 at least the global one's.
    """
    from sklearn.metrics import f1_score

    def micro(thresholds: np.ndarray) -> float:
        return f1_score(targets, probs >= thresholds, average="micro", zero_division=0)

    thresholds = np.asarray(tuned, dtype=np.float64).copy()
    floor = micro(np.full_like(thresholds, default))
    while micro(thresholds) < floor:
        changed = [i for i in range(len(thresholds)) if thresholds[i] != default]
        reverted = {i: np.where(np.arange(len(thresholds)) == i, default, thresholds) for i in changed}
        worst = max(changed, key=lambda i: micro(reverted[i]))
        thresholds = reverted[worst]
    return thresholds


def register_model(promotion: Promotion, record: dict, model_name: str, alias: str, tracking_uri: str | None,
                   write_card: Callable[[], None]) -> None:
    """Log the pyfunc model (checkpoint + model card) in a promotion run under the search's parent, set the alias."""
    import mlflow

    from search.pyfunc import LabeltuneModel
    from search.tracking import find_search_runs

    uri = store.tracking_uri(tracking_uri or record.get("tracking_uri"))
    experiment_id = store.open_experiment("labeltune", uri)
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    parent, children = find_search_runs(uri, promotion.search)
    trial_run = next((c for c in children if c.data.tags.get("labeltune.trial_id") == promotion.trial_id), None)
    tags = {"labeltune.search": promotion.search, "labeltune.role": "promotion",
            "labeltune.trial_id": promotion.trial_id, "labeltune.checkpoint": str(promotion.source_checkpoint)}
    if parent is not None:
        tags["mlflow.parentRunId"] = parent.info.run_id
    if trial_run is not None:
        tags["labeltune.trial_run_id"] = trial_run.info.run_id
    promotion.parent_run_id = parent.info.run_id if parent is not None else ""
    promotion.trial_run_id = trial_run.info.run_id if trial_run is not None else ""
    # The card travels inside the registered model, so it names the version it is about to get.
    versions = client.search_model_versions(f"name = '{model_name}'") if client.search_registered_models(
        f"name = '{model_name}'") else []
    promotion.model_name, promotion.alias = model_name, alias
    promotion.version = str(max((int(v.version) for v in versions), default=0) + 1)
    warnings.filterwarnings("ignore", module="mlflow")  # type-hint and cloudpickle advice for pyfunc authors
    with store.mlflow_uris(uri), mlflow.start_run(experiment_id=experiment_id, run_name=f"promote-{promotion.search}", tags=tags) as run:
        mlflow.log_metrics({k: float(v) for k, v in promotion.test_per_label.items() if _is_number(v)})
        mlflow.log_metrics({f"global_threshold/{k}": float(v) for k, v in promotion.test_global.items() if _is_number(v)})
        mlflow.log_dict(promotion.thresholds, "thresholds.json")
        promotion.run_id = run.info.run_id
        write_card()
        info = mlflow.pyfunc.log_model(
            name="model", python_model=LabeltuneModel(), registered_model_name=model_name,
            artifacts={"checkpoint": str(promotion.checkpoint), "model_card": str(promotion.card)},
            pip_requirements=["labeltune"],
        )
        mlflow.log_artifact(str(promotion.card), "model")
    version = str(info.registered_model_version)
    if version != promotion.version:  # another promotion registered in between: fix the copy on disk
        promotion.version = version
        write_card()
    client.set_registered_model_alias(model_name, alias, version)
    client.set_model_version_tag(model_name, version, "labeltune.search", promotion.search)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def write_card(promotion: Promotion, record: dict, dataset, result, lineage: dict) -> None:
    """The model card: data, space, budget, best config, per-label test figures, lineage."""
    from search.catalog import trial_results

    counts = dataset.targets.sum(axis=0)
    results = trial_results(Path(record["storage"]) / record["name"])
    trial_epochs = sum(len(rows) for rows in results.values())
    cfg = result.config
    test_g, test_t = promotion.test_global, promotion.test_per_label
    lines = [
        f"# Model card: {promotion.model_name or 'labeltune'} v{promotion.version or '-'} (@{promotion.alias or '-'})",
        "", f"Promoted {time.strftime('%Y-%m-%d %H:%M')} from search `{promotion.search}`, trial `{promotion.trial_id}`, "
        f"epoch {promotion.epoch} (best {PRIMARY_METRIC} {promotion.val_score:.4f} over all its epochs).",
        "", "## Data", "",
        f"- folder: `{record['data']}`", f"- fingerprint: `{record['data_fingerprint']}`",
        f"- images: {len(dataset.targets)}, unlabelled: {int((dataset.targets.sum(axis=1) == 0).sum())}",
        f"- split_seed: {record['split_seed']} (train/val/test {cfg.get('split_fractions', [0.8, 0.1, 0.1])})",
        "", "| label | images |", "|---|---|", *[f"| {l} | {int(c)} |" for l, c in zip(dataset.labels, counts)],
        "", "## Search", "",
        f"- space: `{record['space_source']}` (fingerprint `{record['space_fingerprint']}`)",
        f"- space definition: `{json.dumps(record['space'], sort_keys=True)}`",
        f"- budget used: {len(results)} trials, {trial_epochs} trial-epochs, wall time "
        f"{record.get('wall_s', 0):.0f} s (budget {record['options']['trials']} trials x {record['options']['epochs']} epochs)",
        "", "## Best config", "", "| parameter | value |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(cfg.items())],
        "", "## Test split", "",
        "| thresholds | micro F1 | macro F1 | micro P | micro R | exact match | mAP |", "|---|---|---|---|---|---|---|",
        *[f"| {name} | {m['test/micro_f1']:.4f} | {m['test/macro_f1']:.4f} | {m['test/micro_precision']:.4f} | "
          f"{m['test/micro_recall']:.4f} | {m['test/exact_match']:.4f} | {m['test/map']:.4f} |"
          for name, m in (("global", test_g), ("per-label", test_t))],
        "", "| label | threshold | precision | recall | F1 (per-label) | F1 (global) |", "|---|---|---|---|---|---|",
    ]
    for label in dataset.labels:
        tp, fp, fn = (test_t[f"test/{c}/{label}"] for c in ("tp", "fp", "fn"))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        lines.append(f"| {label} | {promotion.thresholds[label]:.2f} | {precision:.3f} | {recall:.3f} | "
                     f"{test_t[f'test/f1/{label}']:.3f} | {test_g[f'test/f1/{label}']:.3f} |")
    lines += [
        "", f"Validation micro F1: {lineage['val_global']['val/micro_f1']:.4f} with the global threshold, "
        f"{lineage['val_per_label']['val/micro_f1']:.4f} with the per-label thresholds.",
        "", "## Lineage", "",
        f"- search run: `{promotion.parent_run_id or '-'}`",
        f"- trial run: `{promotion.trial_run_id or '-'}`",
        f"- promotion run: `{promotion.run_id or '-'}`",
        f"- source checkpoint: `{promotion.source_checkpoint}`",
        f"- promoted checkpoint: `{promotion.checkpoint}`",
        f"- registered: `models:/{promotion.model_name}@{promotion.alias}` (version {promotion.version})"
        if promotion.version else "- registered: no",
        "",
    ]
    promotion.card.parent.mkdir(parents=True, exist_ok=True)
    promotion.card.write_text("\n".join(lines))


def resolve_registered(ref: str, tracking_uri: str | None = None) -> Path:
    """`NAME@ALIAS` (or `NAME/VERSION`) -> the checkpoint file inside that registered model's artifacts."""
    import mlflow

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
            with store.mlflow_uris(uri):
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{version.name}/{version.version}", dst_path=str(target),
                    tracking_uri=uri, registry_uri=uri)
    except Exception as exc:  # MlflowException for an unknown alias, others for a broken store
        raise PromotionError(f"{model_uri}: not found in the registry at {uri} ({str(exc).splitlines()[0]})") from exc
    found = sorted(target.rglob(CHECKPOINT_FILE))
    if not found:
        raise PromotionError(f"{model_uri}: the registered model holds no {CHECKPOINT_FILE}")
    return found[0]
