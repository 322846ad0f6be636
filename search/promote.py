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

`promote()` is that recipe in named steps: `rank_trials`, `load_search_data` and `load_members`,
`score_members`, `choose_policy_thresholds`, `score_policies`, `save_promoted`, `register_model`
(whose own steps sit together at the bottom); `write_card` joins the card's sections (`card_*`).
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from search.promotion import Member, Promotion, PromotionError
from search.record import SearchRecord, search_dir
from trainable import checkpoint as ckpt_io
from trainable.baselines import PREFIX as BASELINE_PREFIX
from trainable.gym import CHECKPOINT_FILE
from trainable.metrics import CV_FOLDS, CV_METRIC, MIN_LABEL_POSITIVES, PRIMARY_METRIC, PRIMARY_MODE

log = logging.getLogger(__name__)

ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
"""MLflow aliases: letters, digits, '_' and '-' ('latest' and 'v<N>' are reserved)"""
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$")
"""registered model names that survive a `models:/NAME@ALIAS` URI"""


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


def read_results(search_path: Path, metric: str = PRIMARY_METRIC, mode: str = PRIMARY_MODE):
    """The search's trials as Tune reads them back (a ResultGrid), once `metric` is known to be one they reported;
    an empty or unreadable experiment is a PromotionError."""
    from ray.tune import ExperimentAnalysis, ResultGrid

    check_metric(search_path, metric)
    try:
        grid = ResultGrid(ExperimentAnalysis(str(search_path), default_metric=metric, default_mode=mode))
        grid.get_best_result(metric, mode, scope="all")  # raises for an empty or unreadable experiment
    except Exception as exc:  # Ray raises several types for an empty or unreadable experiment
        raise PromotionError(f"{search_path}: no finished trial to promote ({str(exc).splitlines()[0]})") from exc
    return grid


def rank_results(results, metric: str = PRIMARY_METRIC, mode: str = PRIMARY_MODE) -> list[tuple]:
    """Every trial result that kept a checkpoint with weights and `metric`, best first by that checkpoint:
    (trial result, its folder, its metrics). NaN never ranks; a tie goes to the smaller trial id."""
    sign = 1.0 if mode == "max" else -1.0
    ranked = []
    for result in results:
        best = best_weights(result, metric, sign)
        if best is not None:
            ranked.append((best[0], result, *best[1:]))
    # The better score first; on a tie the smaller trial id, as the search's summary and MLflow rank (search.outcome)
    ranked.sort(key=lambda row: (-row[0], _trial_id(row[1])))
    return [row[1:] for row in ranked]


def best_weights(result, metric: str, sign: float) -> tuple[float, Path, dict] | None:
    """(sign x score, folder, metrics) of the result's kept checkpoint that is best by `metric` and holds weights,
    the earliest of equal scores; None when there is none. Most epochs of a trial keep only their record
    (trainable/checkpoint.py needs_weights), so the best by a metric other than PRIMARY_METRIC may have none."""
    best = None
    kept = sorted(result.best_checkpoints or [], key=lambda pair: pair[1].get("training_iteration", 0))
    for checkpoint, metrics in kept:
        value = metrics.get(metric)
        if not isinstance(value, (int, float)) or value != value:  # NaN never ranks
            continue
        if (best is None or sign * value > best[0]) and (Path(checkpoint.path) / CHECKPOINT_FILE).is_file():
            best = (sign * float(value), Path(checkpoint.path), metrics)
    return best


def _trial_id(result) -> str:
    """A Tune result's trial id (its folder's name when it reported none)."""
    return str(result.metrics.get("trial_id", Path(result.path).name))


def ranked_checkpoints(search_path: Path, metric: str = PRIMARY_METRIC, mode: str = PRIMARY_MODE,
                       k: int = 1) -> list[tuple]:
    """The top k distinct trials by their best epoch: (trial result, best checkpoint folder, its metrics)."""
    ranked = rank_results(read_results(search_path, metric, mode), metric, mode)
    if not ranked:
        raise PromotionError(f"{search_path}: no trial kept a checkpoint with {metric}")
    return ranked[:k]


def best_checkpoint(search_path: Path, metric: str = PRIMARY_METRIC, mode: str = PRIMARY_MODE):
    """(trial result, best checkpoint folder, its metrics) of the best trial over all epochs."""
    return ranked_checkpoints(search_path, metric, mode, k=1)[0]


def promote(search: str, metric: str = PRIMARY_METRIC, alias: str = "champion", model_name: str = "labeltune",
            tracking_uri: str | None = None, storage: str | None = None, card_path: str | None = None,
            register: bool = True, ensemble: int = 1, allow_below_baseline: bool = False) -> Promotion:
    """Promote search `search` (see the module docstring): rank, load, score the members, choose thresholds, score
    the policies, save, register (or, with `register=False`, only write the card)."""
    from trainable.baselines import for_splits

    check_names(alias, model_name)
    if ensemble < 1:
        raise PromotionError(f"--ensemble {ensemble}: give a number of trials >= 1")
    path = search_dir(search, storage)
    record = SearchRecord.read(path)
    ranked = rank_trials(path, search, metric, ensemble)
    dataset, data = load_search_data(record, search)
    members, checkpoints = load_members(ranked, metric)
    probs, splits = score_members(members, checkpoints, data)  # every trial of a search shares its splits
    targets = {split: np.asarray(data.targets)[splits[split]] for split in ("val", "test")}
    policies, val_cv = choose_policy_thresholds(probs["val"], targets["val"], trial_threshold(checkpoints[0]))
    scored = score_policies(data.labels, probs, targets, policies)
    base, baseline_figures = for_splits(data.targets, splits, data.labels)

    out_dir = new_promotion_dir(path)
    thresholds = [float(t) for t in policies["per-label"]]
    promoted = save_promoted(out_dir / CHECKPOINT_FILE, checkpoints, thresholds,
                             promoted_metrics(scored, baseline_figures, val_cv), data.fingerprint)
    best = members[0]
    promotion = Promotion(
        search=search, trial_id=best.trial_id, checkpoint=promoted, source_checkpoint=best.checkpoint,
        epoch=best.epoch, val_score=best.val_score, thresholds=dict(zip(data.labels, thresholds)),
        test_global=scored["test"]["global"], test_per_label=scored["test"]["per-label"],
        card=Path(card_path or out_dir / "model_card.md").resolve(), global_threshold=policies["global"],
        val=scored["val"], test=scored["test"], baselines=baseline_figures, baseline_rule=base.describe(),
        members=members, n_images=len(data.targets), val_cv_micro_f1=val_cv,
        allowed_below_baseline=allow_below_baseline,
    )
    card = functools.partial(write_card, promotion, record, dataset, data.targets, ranked[0][0])
    if register:
        from search.tracking.registry import register_model  # MLflow only when registering

        register_model(promotion, record, model_name, alias, tracking_uri, card,
                       move_alias=allow_below_baseline or not promotion.below_baseline)
    else:
        card()
    return promotion


def rank_trials(search_path: Path, search: str, metric: str, ensemble: int) -> list[tuple]:
    """Step 1: the top `ensemble` distinct trials by their best epoch (`ranked_checkpoints`); a search with fewer
    trials that kept a checkpoint is a PromotionError."""
    ranked = ranked_checkpoints(search_path, metric, k=ensemble)
    if len(ranked) < ensemble:
        raise PromotionError(f"--ensemble {ensemble}: search {search} has only {len(ranked)} trials with a checkpoint")
    return ranked


def load_search_data(record: SearchRecord, search: str) -> tuple:
    """Step 2: (dataset, TrialData) of the very images the trials saw (the record's --limit and --skip-bad-images),
    which split by the trials' seed into the same splits; a data folder changed since the search is refused."""
    from search.memory import shipped_form
    from trainable.trial_data import load_trial_data

    options = record.options
    # in the form the trials were shipped (their space's one size and colour): the search's own cache, a hit
    dataset, data = load_trial_data(record.data, options.get("limit", 0), options.get("skip_bad_images", False),
                                    form=shipped_form(record.space))
    if dataset.fingerprint != record.data_fingerprint:
        raise PromotionError(f"the data in {record.data} changed since search {search} ran; "
                             f"its validation and test splits would not be the ones it was scored on")
    return dataset, data


def load_members(ranked: list[tuple], metric: str) -> tuple[list[Member], list[dict]]:
    """Step 2: each ranked trial's best checkpoint, read: (Members with the trial id, epoch, the `metric` it was
    ranked by and its Tune config; the checkpoint dicts, in the same order)."""
    members, checkpoints = [], []
    for result, ckpt_dir, ckpt_metrics in ranked:
        ckpt = ckpt_io.load(ckpt_dir / CHECKPOINT_FILE)
        members.append(Member(_trial_id(result), ckpt_dir / CHECKPOINT_FILE, int(ckpt["epoch"]),
                              float(ckpt_metrics[metric]), dict(result.config)))
        checkpoints.append(ckpt)
    return members, checkpoints


def score_members(members: list[Member], checkpoints: list[dict], data) -> tuple[dict, dict]:
    """Step 3: each member's sigmoid outputs on val and test, its own micro and macro F1 there at its own
    threshold (into `Member.scores`); returns (split -> the members' mean outputs N x L, the splits' indices)."""
    from trainable.config import TrainConfig
    from trainable.gym import Gym

    outputs, gym = {"val": [], "test": []}, None
    for member, ckpt in zip(members, checkpoints):
        cfg = TrainConfig.from_dict({**ckpt["config"], "pretrained": False, "device": "auto"})
        gym = Gym(cfg, data.images, data.targets, data.labels, data_fingerprint=data.fingerprint, checkpoint=ckpt)
        for split in outputs:
            probs, split_targets, _ = gym.outputs(split)
            figures = _score(data.labels, probs, split_targets, cfg.threshold, split)
            member.scores.update({k: figures[k] for k in (f"{split}/micro_f1", f"{split}/macro_f1")})
            outputs[split].append(probs)
    return {split: np.mean(probs, axis=0) for split, probs in outputs.items()}, gym.splits


def trial_threshold(checkpoint: dict) -> float:
    """The threshold the best trial trained with (the "trial" policy, and the default the others start from)."""
    return float(checkpoint["config"].get("threshold", 0.5))


def choose_policy_thresholds(val_probs: np.ndarray, val_targets: np.ndarray,
                             trial_t: float) -> tuple[dict, float]:
    """Step 4: (policy -> thresholds for each of POLICIES, the cross-validated val micro-F1 of the per-label ones).

    "trial" is `trial_t`; "global" and "per-label" are chosen on val by `trainable.metrics.choose_thresholds`,
    and `cv_micro_f1` scores them on val images they were not chosen on (the figure the baseline is compared with).
    """
    from trainable.metrics import choose_thresholds, cv_micro_f1

    global_t, per_label = choose_thresholds(val_probs, val_targets, default=trial_t)
    val_cv = cv_micro_f1(val_probs, val_targets, global_t, per_label, default=trial_t)
    return {"trial": trial_t, "global": global_t, "per-label": per_label}, val_cv


def score_policies(labels: list[str], probs: dict, targets: dict, policies: dict) -> dict:
    """Step 5: every metric of val and test at each policy's thresholds: split -> policy -> metrics."""
    return {split: {policy: _score(labels, probs[split], targets[split], thresholds, split)
                    for policy, thresholds in policies.items()}
            for split in ("val", "test")}


def promoted_metrics(scored: dict, baseline_figures: dict, val_cv: float) -> dict:
    """The figures the promoted checkpoint carries: test and val at the per-label thresholds, the baselines and
    the cross-validated val micro-F1."""
    return {**scored["test"]["per-label"], **scored["val"]["per-label"], **baseline_figures, CV_METRIC: val_cv}


def save_promoted(path: Path, checkpoints: list[dict], thresholds: list[float], metrics: dict,
                  data_fingerprint: str) -> Path:
    """Step 6: write the promoted checkpoint to `path`: the one member's model with `thresholds` and its metrics
    updated by `metrics` (no optimizer state), or an ensemble of several members; returns `path`."""
    if len(checkpoints) == 1:
        ckpt = checkpoints[0]
        return ckpt_io.save(
            path, model_state=ckpt["model_state"], optimizer_state={}, epoch=ckpt["epoch"],
            config=ckpt["config"], labels=ckpt["labels"], thresholds=thresholds,
            metrics={**ckpt["metrics"], **metrics}, data_fingerprint=ckpt["data_fingerprint"],
        )
    return ckpt_io.save_ensemble(path, checkpoints, thresholds=thresholds, metrics=metrics,
                                 data_fingerprint=data_fingerprint)


def _score(labels: list[str], probs: np.ndarray, targets: np.ndarray, threshold, split: str) -> dict:
    """Every metric of one split's outputs at `threshold` (a number or one per label)."""
    from trainable.metrics import MetricsCollector

    collector = MetricsCollector(labels, threshold=threshold, prefix=split)
    collector.update(probs, targets)
    return collector.compute()


def write_card(promotion: Promotion, record: SearchRecord, dataset, targets: np.ndarray, result) -> None:
    """The model card: the verdict against the baselines first, then data, search, config, thresholds, lineage."""
    cfg = result.config
    lines = [*card_headline(promotion), *card_figures(promotion), *card_data(record, dataset.labels, targets, cfg),
             *card_search(record), *card_ensemble(promotion), *card_config(cfg), *card_policies(promotion),
             *card_per_label(promotion, dataset.labels), *card_lineage(promotion)]
    promotion.card.parent.mkdir(parents=True, exist_ok=True)
    promotion.card.write_text("\n".join(lines))


def card_headline(promotion: Promotion) -> list[str]:
    """The card's title (model, version, alias) and its verdict: test micro-F1 against the baseline's, the
    cross-validated val figure that decides, and a warning when it does not beat the baseline."""
    base = promotion.baselines
    alias = f"@{promotion.alias}" if promotion.alias_set else "no alias"
    verdict = (f"**Test micro-F1 {promotion.test_per_label['test/micro_f1']:.4f}** against "
               f"{base[BASELINE_PREFIX + 'test/micro_f1']:.4f} for the best no-learning baseline "
               f"({promotion.baseline_rule}); {promotion.decision_line()}.")
    lines = [f"# Model card: {promotion.model_name or 'labeltune'} v{promotion.version or '-'} ({alias})", "",
             verdict, ""]
    if promotion.below_baseline:
        lines += [("**Warning: this model does not beat the no-learning baseline on the validation split "
                   "(cross-validated).** "
                   + ("It was promoted with --allow-below-baseline." if promotion.allowed_below_baseline
                      else "The alias was not moved to it.")), ""]
    return lines


def card_figures(promotion: Promotion) -> list[str]:
    """The model's val and test figures at the per-label thresholds next to the baseline's, then where it comes
    from (search, trial or ensemble, best epoch)."""
    base = promotion.baselines
    rules = {name: f"top {int(base[BASELINE_PREFIX + 'k/' + name])} labels"
             for name in ("micro_f1", "macro_f1", "exact_match")}
    rules["map"] = "label prior"
    kind = (f"ensemble of {len(promotion.members)} trials" if len(promotion.members) > 1
            else f"trial `{promotion.trial_id}`")
    return [
        "| figure | model (per-label thresholds) | baseline | baseline rule |", "|---|---|---|---|",
        *[f"| {split} {name} | {scores[f'{split}/{name}']:.4f} | {base[f'{BASELINE_PREFIX}{split}/{name}']:.4f} | "
          f"{rule} |"
          for split, scores in (("val", promotion.val["per-label"]), ("test", promotion.test_per_label))
          for name, rule in rules.items()],
        "",
        f"Promoted {time.strftime('%Y-%m-%d %H:%M')} from search `{promotion.search}`, {kind}; best trial "
        f"`{promotion.trial_id}` at epoch {promotion.epoch} (best {PRIMARY_METRIC} {promotion.val_score:.4f} over all "
        f"its epochs).",
    ]


def card_data(record: SearchRecord, labels: list[str], targets: np.ndarray, cfg: dict) -> list[str]:
    """## Data: the folder, its fingerprint, the images (unlabelled ones too), the split, the images per label."""
    targets = np.asarray(targets)
    return [
        "", "## Data", "",
        f"- folder: `{record.data}`", f"- fingerprint: `{record.data_fingerprint}`",
        f"- images: {len(targets)}, unlabelled: {int((targets.sum(axis=1) == 0).sum())}",
        f"- split_seed: {record.split_seed} (train/val/test {cfg.get('split_fractions', [0.8, 0.1, 0.1])})",
        "", "| label | images |", "|---|---|",
        *[f"| {label} | {int(count)} |" for label, count in zip(labels, targets.sum(axis=0))],
    ]


def card_search(record: SearchRecord) -> list[str]:
    """## Search: the space, the budget used (trials and trial-epochs read from the trials' results, wall time),
    the warm start and why it ended early, when it did."""
    from search.catalog import trial_results

    results = trial_results(record.path)
    trial_epochs = sum(len(rows) for rows in results.values())
    lines = [
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
    return lines


def card_ensemble(promotion: Promotion) -> list[str]:
    """## Ensemble members: each member's model, epoch and own val and test F1 (nothing for a single trial)."""
    if len(promotion.members) <= 1:
        return []
    return ["", "## Ensemble members (mean of their sigmoid outputs)", "",
            "| trial | model | epoch | val micro F1 | test micro F1 | val macro F1 | test macro F1 |",
            "|---|---|---|---|---|---|---|",
            *[f"| {m.trial_id} | {m.config.get('model', '-')} | {m.epoch} | {m.scores['val/micro_f1']:.4f} | "
              f"{m.scores['test/micro_f1']:.4f} | {m.scores['val/macro_f1']:.4f} | {m.scores['test/macro_f1']:.4f} |"
              for m in promotion.members]]


def card_config(cfg: dict) -> list[str]:
    """## Best config: every parameter of the best trial, sorted by name, as MLflow names them (the chosen
    optimizer's `lr_<optimizer>` as `lr`), floats at 4 significant figures (search/readable.py)."""
    from search.readable import readable_config

    return ["", "## Best config", "", "| parameter | value |", "|---|---|",
            *[f"| {k} | {v} |" for k, v in sorted(readable_config(cfg).items())]]


def card_policies(promotion: Promotion) -> list[str]:
    """## Threshold policies: how they were chosen, and val and test figures under each of POLICIES."""
    names = {"trial": f"trial's own ({_trial_threshold(promotion):.2f})",
             "global": f"global, re-chosen on val ({promotion.global_threshold:.2f})", "per-label": "per-label"}
    return [
        "", "## Threshold policies", "",
        "Chosen on the validation split, scored on both; the model carries the per-label ones. A label gets a "
        f"threshold of its own only with at least {MIN_LABEL_POSITIVES} validation positives, and the labels keep "
        f"theirs only when a {CV_FOLDS}-fold cross-validation inside the validation split says they beat the "
        f"global threshold (else every label gets the global one).", "",
        "| thresholds | val micro F1 | test micro F1 | test macro F1 | test micro P | test micro R | test exact match | test mAP |",
        "|---|---|---|---|---|---|---|---|",
        *[f"| {name} | {promotion.val[policy]['val/micro_f1']:.4f} | {m['test/micro_f1']:.4f} | {m['test/macro_f1']:.4f} | "
          f"{m['test/micro_precision']:.4f} | {m['test/micro_recall']:.4f} | {m['test/exact_match']:.4f} | {m['test/map']:.4f} |"
          for policy, name in names.items() for m in (promotion.test[policy],)],
    ]


def card_per_label(promotion: Promotion, labels: list[str]) -> list[str]:
    """## Test split, per label: threshold, precision, recall and F1 at the per-label and at the global threshold;
    then val micro-F1 under both."""
    test_t, test_g = promotion.test_per_label, promotion.test_global
    lines = ["", "## Test split, per label", "",
             "| label | threshold | precision | recall | F1 (per-label) | F1 (global) |", "|---|---|---|---|---|---|"]
    for label in labels:
        tp, fp, fn = (test_t[f"test/{c}/{label}"] for c in ("tp", "fp", "fn"))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        lines.append(f"| {label} | {promotion.thresholds[label]:.2f} | {precision:.3f} | {recall:.3f} | "
                     f"{test_t[f'test/f1/{label}']:.3f} | {test_g[f'test/f1/{label}']:.3f} |")
    return lines + ["", f"Validation micro F1: {promotion.val['global']['val/micro_f1']:.4f} with the global threshold, "
                        f"{promotion.val['per-label']['val/micro_f1']:.4f} with the per-label thresholds."]


def card_lineage(promotion: Promotion) -> list[str]:
    """## Lineage: the search, trial and promotion runs, every checkpoint, and the registered version (or "no");
    ends the card with a newline."""
    if not promotion.version:
        registered = "- registered: no"
    elif promotion.alias_set:
        registered = f"- registered: `models:/{promotion.model_name}@{promotion.alias}` (version {promotion.version})"
    else:
        registered = f"- registered: `models:/{promotion.model_name}/{promotion.version}` (no alias)"
    return [
        "", "## Lineage", "",
        f"- search run: `{promotion.parent_run_id or '-'}`",
        f"- trial run: `{promotion.trial_run_id or '-'}`",
        f"- promotion run: `{promotion.run_id or '-'}`",
        f"- source checkpoint: `{promotion.source_checkpoint}`",
        *[f"- member checkpoint: `{m.checkpoint}`" for m in promotion.members[1:]],
        f"- promoted checkpoint: `{promotion.checkpoint}`",
        registered,
        "",
    ]


def _trial_threshold(promotion: Promotion) -> float:
    return float(promotion.members[0].config.get("threshold", 0.5)) if promotion.members else 0.5
