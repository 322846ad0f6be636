"""Promote a search's best trial (or its top K as an ensemble) to a model people can use.

    labeltune promote --search NAME [--ensemble K] [--allow-below-baseline]

1. the best trial ranked over all its epochs (`scope="all"`: an ASHA-stopped trial is
   not judged by its last epoch) and that trial's BEST checkpoint, not its last; with
   `--ensemble K` the best checkpoints of the top K distinct trials, whose sigmoid
   outputs are averaged;
2. the images, split and data options the trials used, taken from the search record
   (`--limit`, `--skip-bad-images`), so no validation image was a training image;
3. thresholds chosen on the validation split (`trainable.metrics.choose_thresholds`: the
   global one re-chosen, a threshold of its own for each label with enough positives);
4. the no-learning baselines (`trainable.baselines`) on the same split: the alias moves
   only to a model that beats the best baseline (`trainable.baselines.beats_baseline`) on
   validation micro-F1 at the chosen thresholds, cross-validated inside val because they
   were chosen on those images (`trainable.metrics.cv_micro_f1`; the decision never reads
   test); otherwise the version is registered without the alias and promote exits 1, unless
   `--allow-below-baseline`;
5. registered in the MLflow Model Registry as an `mlflow.pyfunc` model whose artifact is
   labeltune's own checkpoint file (labels and thresholds inside) and whose predict
   returns label probabilities; the alias (default `champion`) points at the new version;
6. a model card (markdown) logged with the model.

Each promotion writes its checkpoint and card into a folder of its own,
`runs/NAME/promoted/<YYYYmmdd-HHMMSS>/` (`new_promotion_dir`): MLflow copies them into the
registered version when it is logged, and a later promotion, `--no-register` included,
leaves the local copies of earlier versions as they were. (Searches promoted before this
layout have `promoted/checkpoint.pt` and `promoted/model_card.md`; nothing reads them back.)
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from search.record import SearchRecord, search_dir
from trainable import checkpoint as ckpt_io
from trainable import store
from trainable.baselines import beats_baseline
from trainable.baselines import PREFIX as BASELINE_PREFIX
from trainable.errors import LabeltuneError
from trainable.gym import CHECKPOINT_FILE
from trainable.metrics import CV_FOLDS, CV_METRIC, MIN_LABEL_POSITIVES, PRIMARY_METRIC, PRIMARY_MODE, keep_micro_f1  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
"""MLflow aliases: letters, digits, '_' and '-' ('latest' and 'v<N>' are reserved)"""
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$")
"""registered model names that survive a `models:/NAME@ALIAS` URI"""
POLICIES = ("trial", "global", "per-label")
"""threshold policies the card compares: the trial's own, the global one re-chosen on val, per label"""


class PromotionError(LabeltuneError, RuntimeError):
    """The search cannot be promoted (not found, no checkpoint, registry unreachable...)."""


@dataclass
class Member:
    """One promoted trial: its best checkpoint and its own scores."""

    trial_id: str
    checkpoint: Path
    epoch: int
    val_score: float
    """its best PRIMARY_METRIC over all epochs, as the search ranked it"""
    config: dict
    scores: dict = field(default_factory=dict)
    """val/test micro and macro F1 at its own threshold (recomputed here)"""


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
    """test metrics at the global threshold re-chosen on val"""
    test_per_label: dict
    """test metrics at the promoted (per-label) thresholds"""
    card: Path
    global_threshold: float = 0.5
    val: dict = field(default_factory=dict)
    """policy (POLICIES) -> val metrics"""
    test: dict = field(default_factory=dict)
    """policy (POLICIES) -> test metrics"""
    baselines: dict = field(default_factory=dict)
    """baseline/val/... and baseline/test/... (trainable.baselines)"""
    baseline_rule: str = ""
    members: list[Member] = field(default_factory=list)
    n_images: int = 0
    val_cv_micro_f1: float = float("nan")
    """validation micro-F1 at the promoted thresholds, cross-validated inside val (`trainable.metrics.cv_micro_f1`):
    the thresholds were chosen on val, so this, not `val_micro_f1`, is compared with the baseline"""
    allowed_below_baseline: bool = False
    alias_set: bool = False
    """the alias now points at the registered version"""
    model_name: str = ""
    version: str = ""
    alias: str = ""
    run_id: str = ""
    parent_run_id: str = ""
    trial_run_id: str = ""

    @property
    def val_micro_f1(self) -> float:
        """validation micro-F1 at the promoted thresholds, in sample (they were chosen on these images)"""
        return float(self.val["per-label"]["val/micro_f1"])

    @property
    def baseline_val_micro_f1(self) -> float:
        return float(self.baselines[f"{BASELINE_PREFIX}val/micro_f1"])

    @property
    def below_baseline(self) -> bool:
        """the cross-validated validation micro-F1 does not beat the best baseline's: the alias is not moved
        (unless allowed)"""
        return not beats_baseline(self.val_cv_micro_f1, self.baseline_val_micro_f1)

    def baseline_line(self) -> str:
        """Why the alias did not move: both numbers, what was registered, and what to try."""
        alias = f"@{self.alias or 'champion'}"
        if self.version:
            outcome = (f"version {self.version} is registered without {alias}: search longer, add pretrained "
                       f"efficientnet_lite0 to the space, or pass --allow-below-baseline")
        else:
            outcome = (f"nothing was registered (--no-register): search longer or add pretrained efficientnet_lite0 "
                       f"to the space; without --no-register, promote registers it without {alias}, or with "
                       f"{alias} given --allow-below-baseline")
        return f"{self.decision_line()} ({self.baseline_rule}); {outcome}"

    def decision_line(self) -> str:
        """The figure that decides next to the baseline's (the card, the version description, promote's messages)."""
        verdict = "does not beat" if self.below_baseline else "beats"
        return (f"validation micro-F1 {self.val_cv_micro_f1:.4f} (cross-validated inside val, the figure that decides; "
                f"{self.val_micro_f1:.4f} on the val images the thresholds were chosen on) {verdict} the no-learning "
                f"baseline's {self.baseline_val_micro_f1:.4f}")


def check_names(alias: str, model_name: str) -> None:
    """Refuse an alias or model name the registry would reject, before anything is written."""
    if not ALIAS_PATTERN.match(alias) or alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise PromotionError(f"--alias {alias!r}: use letters, digits, '_' and '-' (not 'latest' or 'v<N>')")
    if not MODEL_NAME_PATTERN.match(model_name):
        raise PromotionError(f"--model-name {model_name!r}: use letters, digits, '_', '.' and '-', "
                             f"starting with a letter or digit")


def check_metric(search_path: Path, metric: str) -> None:
    """Refuse a metric that no trial of the search reported, naming a few they did (read from the trials'
    result files, before Ray or any data). A search without results passes: ranking then says so."""
    from search.catalog import trial_results

    reported = {key for rows in trial_results(search_path).values() for row in rows for key, value in row.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)}
    if not reported or metric in reported:
        return
    figures = sorted(key for key in reported if key.startswith("val/") and key.count("/") == 1)
    examples = ([PRIMARY_METRIC] if PRIMARY_METRIC in figures else []) + [f for f in figures if f != PRIMARY_METRIC]
    raise PromotionError(f"--metric {metric!r}: no trial of search {Path(search_path).name} reported it; "
                         f"rank by one they did, e.g. {', '.join(examples[:6] or sorted(reported)[:6])}")


def new_promotion_dir(search_path: Path) -> Path:
    """A new folder `promoted/<YYYYmmdd-HHMMSS>[-N]/` for one promotion's checkpoint and card, so that no
    promotion overwrites the files an earlier registered version was made from."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in itertools.count(1):
        folder = Path(search_path) / "promoted" / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:  # two promotions within a second
            continue


def ranked_checkpoints(search_path: Path, metric: str = PRIMARY_METRIC, mode: str = PRIMARY_MODE,
                       k: int = 1) -> list[tuple]:
    """The top k distinct trials by their best epoch: (trial result, best checkpoint folder, its metrics)."""
    from ray.tune import ExperimentAnalysis, ResultGrid

    check_metric(search_path, metric)
    try:
        grid = ResultGrid(ExperimentAnalysis(str(search_path), default_metric=metric, default_mode=mode))
        grid.get_best_result(metric, mode, scope="all")  # raises for an empty or unreadable experiment
    except Exception as exc:  # Ray raises several types for an empty or unreadable experiment
        raise PromotionError(f"{search_path}: no finished trial to promote ({str(exc).splitlines()[0]})") from exc
    sign = 1.0 if mode == "max" else -1.0
    ranked = []
    for result in grid:
        checkpoint = result.get_best_checkpoint(metric, mode) if result.best_checkpoints else None
        if checkpoint is None:
            continue
        metrics = next(m for c, m in result.best_checkpoints if c.path == checkpoint.path)
        value = metrics.get(metric)
        if value is None or value != value:  # NaN never ranks
            continue
        ranked.append((sign * float(value), result, Path(checkpoint.path), metrics))
    # The better score first; on a tie the smaller trial id, as the search's summary and MLflow rank (search.outcome)
    ranked.sort(key=lambda row: (-row[0], str(row[1].metrics.get("trial_id", Path(row[1].path).name))))
    if not ranked:
        raise PromotionError(f"{search_path}: no trial kept a checkpoint with {metric}")
    return [row[1:] for row in ranked[:k]]


def best_checkpoint(search_path: Path, metric: str = PRIMARY_METRIC, mode: str = PRIMARY_MODE):
    """(trial result, best checkpoint folder, its metrics) of the best trial over all epochs."""
    return ranked_checkpoints(search_path, metric, mode, k=1)[0]


def promote(search: str, metric: str = PRIMARY_METRIC, alias: str = "champion", model_name: str = "labeltune",
            tracking_uri: str | None = None, storage: str | None = None, card_path: str | None = None,
            register: bool = True, ensemble: int = 1, allow_below_baseline: bool = False) -> Promotion:
    from trainable.trial_data import load_trial_data
    from trainable.baselines import for_splits
    from trainable.config import TrainConfig
    from trainable.gym import Gym
    from trainable.metrics import choose_thresholds, cv_micro_f1

    check_names(alias, model_name)
    if ensemble < 1:
        raise PromotionError(f"--ensemble {ensemble}: give a number of trials >= 1")
    path = search_dir(search, storage)
    record = SearchRecord.read(path)
    ranked = ranked_checkpoints(path, metric, k=ensemble)
    if len(ranked) < ensemble:
        raise PromotionError(f"--ensemble {ensemble}: search {search} has only {len(ranked)} trials with a checkpoint")

    # The very images the trials saw (the record's --limit and --skip-bad-images), split by the same seed.
    options = record.options
    dataset, data = load_trial_data(record.data, options.get("limit", 0), options.get("skip_bad_images", False))
    if dataset.fingerprint != record.data_fingerprint:
        raise PromotionError(f"the data in {record.data} changed since search {search} ran; "
                             f"its validation and test splits would not be the ones it was scored on")

    members, checkpoints, outputs, gym = [], [], [], None
    for result, ckpt_dir, ckpt_metrics in ranked:
        ckpt = ckpt_io.load(ckpt_dir / CHECKPOINT_FILE)
        cfg = TrainConfig.from_dict({**ckpt["config"], "pretrained": False, "device": "auto"})
        gym = Gym(cfg, data.images, data.targets, data.labels, data_fingerprint=data.fingerprint, checkpoint=ckpt)
        val_probs, val_targets, _ = gym.outputs("val")
        test_probs, test_targets, _ = gym.outputs("test")
        member = Member(str(result.metrics.get("trial_id", Path(result.path).name)), ckpt_dir / CHECKPOINT_FILE,
                        int(ckpt["epoch"]), float(ckpt_metrics[metric]), dict(result.config))
        for split, probs, split_targets in (("val", val_probs, val_targets), ("test", test_probs, test_targets)):
            figures = _score(data.labels, probs, split_targets, cfg.threshold, split)
            member.scores.update({k: figures[k] for k in (f"{split}/micro_f1", f"{split}/macro_f1")})
        members.append(member)
        checkpoints.append(ckpt)
        outputs.append((val_probs, test_probs))
    splits = gym.splits  # every trial of a search shares split_seed and split_fractions
    targets = np.asarray(data.targets)
    val_targets, test_targets = targets[splits["val"]], targets[splits["test"]]
    val_probs = np.mean([o[0] for o in outputs], axis=0)
    test_probs = np.mean([o[1] for o in outputs], axis=0)

    trial_threshold = float(checkpoints[0]["config"].get("threshold", 0.5))
    global_t, per_label = choose_thresholds(val_probs, val_targets, default=trial_threshold)
    val_cv = cv_micro_f1(val_probs, val_targets, global_t, per_label, default=trial_threshold)
    policy_thresholds = {"trial": trial_threshold, "global": global_t, "per-label": per_label}
    scored = {}
    for split, probs, split_targets in (("val", val_probs, val_targets), ("test", test_probs, test_targets)):
        for policy, thresholds in policy_thresholds.items():
            scored.setdefault(split, {})[policy] = _score(data.labels, probs, split_targets, thresholds, split)
    base, baseline_figures = for_splits(targets, splits, data.labels)

    out_dir = new_promotion_dir(path)
    promoted_metrics = {**scored["test"]["per-label"], **scored["val"]["per-label"], **baseline_figures,
                        CV_METRIC: val_cv}
    thresholds_list = [float(t) for t in per_label]
    if ensemble == 1:
        ckpt = checkpoints[0]
        promoted = ckpt_io.save(
            out_dir / CHECKPOINT_FILE, model_state=ckpt["model_state"], optimizer_state={}, epoch=ckpt["epoch"],
            config=ckpt["config"], labels=ckpt["labels"], thresholds=thresholds_list,
            metrics={**ckpt["metrics"], **promoted_metrics}, data_fingerprint=ckpt["data_fingerprint"],
        )
    else:
        promoted = ckpt_io.save_ensemble(out_dir / CHECKPOINT_FILE, checkpoints,
                                         thresholds=thresholds_list, metrics=promoted_metrics,
                                         data_fingerprint=dataset.fingerprint)
    best = members[0]
    promotion = Promotion(
        search=search, trial_id=best.trial_id, checkpoint=promoted, source_checkpoint=best.checkpoint,
        epoch=best.epoch, val_score=best.val_score, thresholds=dict(zip(data.labels, thresholds_list)),
        test_global=scored["test"]["global"], test_per_label=scored["test"]["per-label"],
        card=Path(card_path or out_dir / "model_card.md").resolve(), global_threshold=global_t,
        val=scored["val"], test=scored["test"], baselines=baseline_figures, baseline_rule=base.describe(),
        members=members, n_images=len(targets), val_cv_micro_f1=val_cv, allowed_below_baseline=allow_below_baseline,
    )
    card = functools.partial(write_card, promotion, record, dataset, data.targets, ranked[0][0])
    if register:
        register_model(promotion, record, model_name, alias, tracking_uri, card,
                       move_alias=allow_below_baseline or not promotion.below_baseline)
    else:
        card()
    return promotion


def _score(labels: list[str], probs: np.ndarray, targets: np.ndarray, threshold, split: str) -> dict:
    """Every metric of one split's outputs at `threshold` (a number or one per label)."""
    from trainable.metrics import MetricsCollector

    collector = MetricsCollector(labels, threshold=threshold, prefix=split)
    collector.update(probs, targets)
    return collector.compute()


def register_model(promotion: Promotion, record: SearchRecord, model_name: str, alias: str, tracking_uri: str | None,
                   write_card: Callable[[], None], move_alias: bool = True) -> None:
    """Log the pyfunc model (checkpoint + model card) in a promotion run under the search's parent; set the alias
    when `move_alias` (a model below its baseline is registered, but the alias stays where it was)."""
    import mlflow

    from search.console import library_quiet

    with library_quiet():  # defining a PythonModel without type hints warns once, at import
        from search.pyfunc import LabeltuneModel, signature
    from search.tracking import find_search_runs, is_number

    uri = store.tracking_uri(tracking_uri or record.tracking_uri)
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
    if parent is None:
        log.warning("search %s has no runs in the MLflow store %s: the card's lineage stays empty "
                    "(was the search run with --no-track, or against another store?)", promotion.search, uri)
    if len(promotion.members) > 1:
        tags["labeltune.ensemble"] = ",".join(m.trial_id for m in promotion.members)
    # The card travels inside the registered model, so it names the version it is about to get.
    versions = client.search_model_versions(f"name = '{model_name}'") if client.search_registered_models(
        f"name = '{model_name}'") else []
    promotion.model_name, promotion.alias, promotion.alias_set = model_name, alias, move_alias
    promotion.version = str(max((int(v.version) for v in versions), default=0) + 1)
    metrics = {
        **{k: float(v) for k, v in promotion.test_per_label.items() if is_number(v)},
        **{f"global_threshold/{k}": float(v) for k, v in promotion.test_global.items() if is_number(v)},
        **{k: float(v) for k, v in promotion.val["per-label"].items() if is_number(v) and k.count("/") == 1},
        CV_METRIC: promotion.val_cv_micro_f1,
        **{k: float(v) for k, v in promotion.baselines.items()},
    }
    with store.mlflow_uris(uri), mlflow.start_run(experiment_id=experiment_id, run_name=f"promote-{promotion.search}", tags=tags) as run:
        mlflow.log_dict(promotion.thresholds, "thresholds.json")
        promotion.run_id = run.info.run_id
        write_card()
        with library_quiet():  # "Successfully registered model", type-hint and cloudpickle advice
            info = mlflow.pyfunc.log_model(
                name="model", python_model=LabeltuneModel(), registered_model_name=model_name,
                artifacts={"checkpoint": str(promotion.checkpoint), "model_card": str(promotion.card)},
                signature=signature(list(promotion.thresholds)),  # no input_example: MLflow would load the model to check it
                pip_requirements=["labeltune"],
            )
        mlflow.log_artifact(str(promotion.card), "model")
        # On the promotion run (the version's run_id) and on its logged model (MLflow 3's model page).
        mlflow.log_metrics(metrics, model_id=info.model_id)
    version = str(info.registered_model_version)
    if version != promotion.version:  # another promotion registered in between: fix the copy on disk
        promotion.version = version
        write_card()
    client.update_model_version(model_name, version, description=version_description(promotion))
    version_tags = {
        "labeltune.search": promotion.search,
        "labeltune.trial": ",".join(m.trial_id for m in promotion.members) or promotion.trial_id,
        "labeltune.data_fingerprint": record.data_fingerprint,
        "labeltune.beats_baseline": str(not promotion.below_baseline).lower(),
    }
    for key, value in version_tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    if move_alias:
        client.set_registered_model_alias(model_name, alias, version)


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


def write_card(promotion: Promotion, record: SearchRecord, dataset, targets: np.ndarray, result) -> None:
    """The model card: the verdict against the baselines first, then data, search, config, thresholds, lineage."""
    from search.catalog import trial_results

    counts = np.asarray(targets).sum(axis=0)
    results = trial_results(record.path)
    trial_epochs = sum(len(rows) for rows in results.values())
    cfg = result.config
    test_g, test_t = promotion.test_global, promotion.test_per_label
    base = promotion.baselines
    alias = f"@{promotion.alias}" if promotion.alias_set else "no alias"
    kind = f"ensemble of {len(promotion.members)} trials" if len(promotion.members) > 1 else f"trial `{promotion.trial_id}`"
    verdict = (f"**Test micro-F1 {test_t['test/micro_f1']:.4f}** against {base[BASELINE_PREFIX + 'test/micro_f1']:.4f} "
               f"for the best no-learning baseline ({promotion.baseline_rule}); {promotion.decision_line()}.")
    lines = [
        f"# Model card: {promotion.model_name or 'labeltune'} v{promotion.version or '-'} ({alias})", "", verdict, "",
    ]
    if promotion.below_baseline:
        lines += [("**Warning: this model does not beat the no-learning baseline on the validation split "
                   "(cross-validated).** "
                   + ("It was promoted with --allow-below-baseline." if promotion.allowed_below_baseline
                      else "The alias was not moved to it.")), ""]
    lines += [
        "| figure | model (per-label thresholds) | baseline | baseline rule |", "|---|---|---|---|",
        *[f"| {split} {name} | {scores[f'{split}/{name}']:.4f} | {base[f'{BASELINE_PREFIX}{split}/{name}']:.4f} | "
          f"{rule} |"
          for split, scores in (("val", promotion.val["per-label"]), ("test", test_t))
          for name, rule in (("micro_f1", f"top {int(base[BASELINE_PREFIX + 'k/micro_f1'])} labels"),
                             ("macro_f1", f"top {int(base[BASELINE_PREFIX + 'k/macro_f1'])} labels"),
                             ("exact_match", f"top {int(base[BASELINE_PREFIX + 'k/exact_match'])} labels"),
                             ("map", "label prior"))],
        "",
        f"Promoted {time.strftime('%Y-%m-%d %H:%M')} from search `{promotion.search}`, {kind}; best trial "
        f"`{promotion.trial_id}` at epoch {promotion.epoch} (best {PRIMARY_METRIC} {promotion.val_score:.4f} over all "
        f"its epochs).",
        "", "## Data", "",
        f"- folder: `{record.data}`", f"- fingerprint: `{record.data_fingerprint}`",
        f"- images: {len(targets)}, unlabelled: {int((np.asarray(targets).sum(axis=1) == 0).sum())}",
        f"- split_seed: {record.split_seed} (train/val/test {cfg.get('split_fractions', [0.8, 0.1, 0.1])})",
        "", "| label | images |", "|---|---|", *[f"| {l} | {int(c)} |" for l, c in zip(dataset.labels, counts)],
        "", "## Search", "",
        f"- space: `{record.space_source}` (fingerprint `{record.space_fingerprint}`)",
        f"- space definition: `{json.dumps(record.space, sort_keys=True)}`",
        f"- budget used: {len(results)} trials, {trial_epochs} trial-epochs, wall time "
        f"{record.wall_s:.0f} s (budget {record.options['trials']} trials x {record.options['epochs']} epochs)",
    ]
    if record.warm_start:
        lines.append("- warm start (finished trials of earlier searches in the study before its first suggestion): "
                     + ", ".join(f"{k} ({v['added']} added, {v['skipped']} outside this space)"
                                 for k, v in record.warm_start.items()))
    if record.stop_reason:
        lines.append(f"- ended before its budget: {record.stop_reason}")
    if len(promotion.members) > 1:
        lines += ["", "## Ensemble members (mean of their sigmoid outputs)", "",
                  "| trial | model | epoch | val micro F1 | test micro F1 | val macro F1 | test macro F1 |",
                  "|---|---|---|---|---|---|---|",
                  *[f"| {m.trial_id} | {m.config.get('model', '-')} | {m.epoch} | {m.scores['val/micro_f1']:.4f} | "
                    f"{m.scores['test/micro_f1']:.4f} | {m.scores['val/macro_f1']:.4f} | {m.scores['test/macro_f1']:.4f} |"
                    for m in promotion.members]]
    lines += [
        "", "## Best config", "", "| parameter | value |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(cfg.items())],
        "", "## Threshold policies", "",
        "Chosen on the validation split, scored on both; the model carries the per-label ones. A label gets a "
        f"threshold of its own only with at least {MIN_LABEL_POSITIVES} validation positives, and the labels keep "
        f"theirs only when a {CV_FOLDS}-fold cross-validation inside the validation split says they beat the "
        f"global threshold (else every label gets the global one).", "",
        "| thresholds | val micro F1 | test micro F1 | test macro F1 | test micro P | test micro R | test exact match | test mAP |",
        "|---|---|---|---|---|---|---|---|",
        *[f"| {name} | {promotion.val[policy]['val/micro_f1']:.4f} | {m['test/micro_f1']:.4f} | {m['test/macro_f1']:.4f} | "
          f"{m['test/micro_precision']:.4f} | {m['test/micro_recall']:.4f} | {m['test/exact_match']:.4f} | {m['test/map']:.4f} |"
          for policy, name in (("trial", f"trial's own ({_trial_threshold(promotion):.2f})"),
                               ("global", f"global, re-chosen on val ({promotion.global_threshold:.2f})"),
                               ("per-label", "per-label"))
          for m in (promotion.test[policy],)],
        "", "## Test split, per label", "",
        "| label | threshold | precision | recall | F1 (per-label) | F1 (global) |", "|---|---|---|---|---|---|",
    ]
    for label in dataset.labels:
        tp, fp, fn = (test_t[f"test/{c}/{label}"] for c in ("tp", "fp", "fn"))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        lines.append(f"| {label} | {promotion.thresholds[label]:.2f} | {precision:.3f} | {recall:.3f} | "
                     f"{test_t[f'test/f1/{label}']:.3f} | {test_g[f'test/f1/{label}']:.3f} |")
    lines += [
        "", f"Validation micro F1: {promotion.val['global']['val/micro_f1']:.4f} with the global threshold, "
        f"{promotion.val['per-label']['val/micro_f1']:.4f} with the per-label thresholds.",
        "", "## Lineage", "",
        f"- search run: `{promotion.parent_run_id or '-'}`",
        f"- trial run: `{promotion.trial_run_id or '-'}`",
        f"- promotion run: `{promotion.run_id or '-'}`",
        f"- source checkpoint: `{promotion.source_checkpoint}`",
        *[f"- member checkpoint: `{m.checkpoint}`" for m in promotion.members[1:]],
        f"- promoted checkpoint: `{promotion.checkpoint}`",
        (f"- registered: `models:/{promotion.model_name}@{promotion.alias}` (version {promotion.version})"
         if promotion.alias_set else f"- registered: `models:/{promotion.model_name}/{promotion.version}` (no alias)")
        if promotion.version else "- registered: no",
        "",
    ]
    promotion.card.parent.mkdir(parents=True, exist_ok=True)
    promotion.card.write_text("\n".join(lines))


def _trial_threshold(promotion: Promotion) -> float:
    return float(promotion.members[0].config.get("threshold", 0.5)) if promotion.members else 0.5


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
