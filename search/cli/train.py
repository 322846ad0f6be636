"""`labeltune train` and `labeltune eval`: one trial, without Ray (the way to debug a single trial).

`train`'s options are generated from TrainConfig's fields (search/cli/options.py). Figures
are printed next to the no-learning baselines of the same split (trainable/baselines.py).
"""

from __future__ import annotations

from pathlib import Path

import click

from search.cli.options import config_from_options, config_options
from search.local_train import load_decoded, write_plots
from trainable.config import DEVICES
from trainable import store

SUMMARY_KEYS = ("loss", "micro_f1", "macro_f1", "micro_precision", "micro_recall",
                "macro_precision", "macro_recall", "exact_match", "hamming_acc", "map")


def metrics_table(metrics: dict, labels: list[str], prefix: str) -> str:
    """The summary and per-label table the CLI prints at the end of train and eval."""
    lines = [f"{prefix} metrics", "  " + "  ".join(f"{k:>10}" for k in SUMMARY_KEYS[:5]),
             "  " + "  ".join(f"{metrics[f'{prefix}/{k}']:>10.4f}" for k in SUMMARY_KEYS[:5]),
             "  " + "  ".join(f"{k:>10}" for k in SUMMARY_KEYS[5:]),
             "  " + "  ".join(f"{metrics[f'{prefix}/{k}']:>10.4f}" for k in SUMMARY_KEYS[5:]),
             "", f"  {'label':<12}{'f1':>8}{'acc':>8}{'tp':>7}{'fp':>7}{'fn':>7}{'tn':>7}"]
    for label in labels:
        lines.append(
            f"  {label:<12}{metrics[f'{prefix}/f1/{label}']:>8.3f}{metrics[f'{prefix}/acc/{label}']:>8.3f}"
            + "".join(f"{metrics[f'{prefix}/{c}/{label}']:>7d}" for c in ("tp", "fp", "fn", "tn"))
        )
    return "\n".join(lines)


def baseline_table(metrics: dict, targets, splits: dict, labels: list[str], prefix: str) -> tuple[str, dict]:
    """The model's headline figures next to the no-learning baselines of the same split, and those baselines."""
    import numpy as np

    from trainable.baselines import PREFIX, BaselineError, for_splits

    try:
        base, figures = for_splits(np.asarray(targets), splits, labels)
        if prefix not in ("val", "test"):
            figures.update(base.metrics(np.asarray(targets)[splits[prefix]], prefix))
    except BaselineError as exc:
        return f"baseline: not available ({exc})", {}
    lines = [f"against the no-learning baselines (from the train split; micro F1: {base.describe()})",
             f"  {'figure':<14}{'model':>9}{'baseline':>10}{'diff':>9}  baseline rule"]
    rules = {"micro_f1": "top-k labels", "macro_f1": "top-k labels", "exact_match": "top-k labels",
             "map": "label prior", "loss": "label prior (BCE)"}
    for name, rule in rules.items():
        key, base_key = f"{prefix}/{name}", f"{PREFIX}{prefix}/{name}"
        if key in metrics and base_key in figures:
            k = f" (k={int(figures[PREFIX + 'k/' + name])})" if PREFIX + "k/" + name in figures else ""
            lines.append(f"  {name:<14}{metrics[key]:>9.4f}{figures[base_key]:>10.4f}"
                         f"{metrics[key] - figures[base_key]:>+9.4f}  {rule}{k}")
    micro = f"{prefix}/micro_f1"
    if micro in metrics and metrics[micro] <= figures.get(f"{PREFIX}{micro}", -1):
        lines.append(f"  warning: {micro} does not beat predicting the most frequent labels for every image")
    return "\n".join(lines), figures


@click.command()
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False), help="dataset folder in the course layout")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder for checkpoint.pt, best.pt, metrics.json, plots")
@click.option("--resume", is_flag=True, help="continue from OUT/checkpoint.pt (the epoch count continues)")
@click.option("--no-track", is_flag=True, help="do not log to MLflow (MLflow is then not imported)")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI, else sqlite under $LABELTUNE_HOME/mlruns]")
@click.option("--skip-bad-images", is_flag=True, help="skip unreadable images instead of stopping")
@config_options
def train(data_dir, out, resume, no_track, tracking_uri, skip_bad_images, **options):
    """Train one model on a dataset, without Ray: the way to debug a single trial."""
    from search.local_train import BEST_FILE, HISTORY_FILE, LocalTraining
    from trainable.gym import CHECKPOINT_FILE
    from trainable.metrics import PRIMARY_METRIC

    run = LocalTraining(config_from_options(options), data_dir, out, resume, skip_bad_images, tracking_uri,
                        track=not no_track)
    final = run.fit(click.echo)
    dataset, splits = run.dataset, run.gym.splits
    click.echo(metrics_table(final, dataset.labels, "val"))
    table, baselines = baseline_table(final, dataset.targets[:len(splits["all"])], splits, dataset.labels, "val")
    click.echo(table)
    run.finish(final, baselines)
    click.echo(f"\nwrote {run.out / CHECKPOINT_FILE} (last), {run.out / BEST_FILE} (best {PRIMARY_METRIC} "
               f"{run.best:.4f}), {run.out / HISTORY_FILE} and plots in {run.out}")


@click.command("eval")
@click.option("--checkpoint", "checkpoint_path", required=True, type=click.Path(dir_okay=False), help="checkpoint.pt to evaluate")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False), help="dataset folder in the course layout")
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default="test", show_default=True,
              help="which split of the checkpoint's split_seed to score")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="folder for metrics and plots [default: beside the checkpoint]")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--skip-bad-images", is_flag=True, help="skip unreadable images instead of stopping")
def eval_cmd(checkpoint_path, data_dir, split, out, device, skip_bad_images):
    """Score a checkpoint on a split of a dataset: the metrics table and plots."""
    from trainable import checkpoint as ckpt_io
    from trainable.config import TrainConfig
    from trainable.gym import Gym

    ckpt = ckpt_io.load(checkpoint_path)
    if ckpt_io.kind(ckpt) == "ensemble":
        return _eval_ensemble(ckpt, checkpoint_path, data_dir, split, out, device, skip_bad_images)
    cfg = TrainConfig.from_dict({**ckpt["config"], "device": device, "pretrained": False})
    dataset, images = load_decoded(data_dir, cfg.color, skip_bad_images)
    if ckpt["data_fingerprint"] and ckpt["data_fingerprint"] != dataset.fingerprint and split != "all":
        click.echo(f"warning: {data_dir} is not the data this checkpoint was trained on; "
                   f"its {split} split may overlap the training images", err=True)
    gym = Gym(cfg, images, dataset.targets, dataset.labels, data_fingerprint=dataset.fingerprint, checkpoint=ckpt)
    metrics = gym.evaluate(split, threshold=ckpt["thresholds"])  # an empty split is a ConfigError
    _report_eval(metrics, dataset, gym.splits, split, out, checkpoint_path)


def _eval_ensemble(ckpt: dict, checkpoint_path, data_dir, split, out, device, skip_bad_images) -> None:
    """eval for an ensemble checkpoint: its averaged probabilities on the members' split, its thresholds."""
    from trainable import checkpoint as ckpt_io
    from trainable.ensemble import EnsemblePredictor, evaluate_split
    from trainable.ensemble import splits as ensemble_splits

    predictor = EnsemblePredictor(ckpt, device)
    dataset, images = load_decoded(data_dir, predictor.cfg.color, skip_bad_images)
    ckpt_io.check_labels(ckpt, dataset.labels, data_dir)
    if ckpt["data_fingerprint"] and ckpt["data_fingerprint"] != dataset.fingerprint and split != "all":
        click.echo(f"warning: {data_dir} is not the data this ensemble was trained on; "
                   f"its {split} split may overlap the training images", err=True)
    metrics = evaluate_split(predictor, images, dataset.targets, split).compute()
    click.echo(f"ensemble of {len(predictor.members)}: "
               + ", ".join(f"{m.cfg.model} ({m.cfg.color}, {m.cfg.image_size}px)" for m in predictor.members))
    _report_eval(metrics, dataset, ensemble_splits(predictor, len(dataset.targets)), split, out, checkpoint_path)


def _report_eval(metrics: dict, dataset, splits: dict, split: str, out, checkpoint_path) -> None:
    """eval's output for a single model or an ensemble: the tables, then eval_<split>.json and plots."""
    click.echo(metrics_table(metrics, dataset.labels, split))
    click.echo(baseline_table(metrics, dataset.targets[:len(splits["all"])], splits, dataset.labels, split)[0])
    out = Path(out).resolve() if out else Path(checkpoint_path).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    store.write_json(out / f"eval_{split}.json", metrics)
    write_plots(out, [], metrics, dataset.labels, split)
    click.echo(f"\nwrote {out / f'eval_{split}.json'} and plots in {out}")

