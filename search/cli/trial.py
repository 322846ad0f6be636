"""`labeltune train` and `labeltune eval`: one trial, without Ray (the way to debug a single trial).

`train`'s options are generated from TrainConfig's fields (search/cli/options.py). Figures
are printed next to the no-learning baselines of the same split (trainable/baselines.py).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import click

from search.cli.options import config_from_options, config_options
from trainable import store
from trainable.errors import LabeltuneError

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


def _load_data(data_dir: str, color: str, skip_bad_images: bool):
    from trainable import data as data_mod

    dataset = data_mod.load(data_dir, skip_bad_images=skip_bad_images)
    return dataset, data_mod.decode(dataset, color)


def _write_plots(out: Path, history: list[dict], metrics: dict, labels: list[str], prefix: str) -> list[Path]:
    from trainable import plots

    written = []
    if history:
        written.append(plots.plot_curves(history, out / "curves.png"))
    written.append(plots.plot_label_f1(metrics, labels, out / f"{prefix}_label_f1.png", prefix=prefix))
    written.append(plots.plot_confusion_grid(metrics, labels, out / f"{prefix}_confusion.png", prefix=prefix))
    return written


@click.command()
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False), help="dataset folder in the course layout")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder for checkpoint.pt, best.pt, metrics.json, plots")
@click.option("--resume", is_flag=True, help="continue from OUT/checkpoint.pt (the epoch count continues)")
@click.option("--no-track", is_flag=True, help="do not log to MLflow (MLflow is then not imported)")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: sqlite under $LABELTUNE_HOME/mlruns]")
@click.option("--skip-bad-images", is_flag=True, help="skip unreadable images instead of stopping")
@config_options
def train(data_dir, out, resume, no_track, tracking_uri, skip_bad_images, **options):
    """Train one model on a dataset, without Ray: the way to debug a single trial."""
    from tqdm import tqdm

    from trainable import checkpoint as ckpt_io
    from trainable.gym import CHECKPOINT_FILE, Gym
    from trainable.metrics import PRIMARY_METRIC

    cfg = config_from_options(options)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    dataset, images = _load_data(data_dir, cfg.color, skip_bad_images)
    start_ckpt = ckpt_io.load(out / CHECKPOINT_FILE) if resume else None
    gym = Gym(cfg, images, dataset.targets, dataset.labels, data_fingerprint=dataset.fingerprint, checkpoint=start_ckpt)
    history_path = out / "metrics.json"
    history = json.loads(history_path.read_text())["history"] if resume and history_path.exists() else []
    best = max((h[PRIMARY_METRIC] for h in history), default=float("-inf"))
    tracker = None if no_track else LocalRun(cfg, dataset, tracking_uri)
    n_train = len(gym.splits["train"])
    bar = None

    def on_batch(n: int, loss) -> None:
        bar.update(n)
        bar.set_postfix(loss=f"{float(loss):.4f}")

    def report(metrics: dict, ckpt_dir: Path) -> None:
        nonlocal best, bar
        bar.close()
        history.append(metrics)
        shutil.copy2(ckpt_dir / CHECKPOINT_FILE, out / CHECKPOINT_FILE)
        if metrics[PRIMARY_METRIC] > best:
            best = metrics[PRIMARY_METRIC]
            shutil.copy2(ckpt_dir / CHECKPOINT_FILE, out / "best.pt")
        store.write_json(history_path, {"config": cfg.to_dict(), "labels": dataset.labels, "history": history})
        click.echo(f"epoch {metrics['epoch']}/{cfg.epochs}  train/loss {metrics['train/loss']:.4f}  "
                   f"val/loss {metrics['val/loss']:.4f}  {PRIMARY_METRIC} {metrics[PRIMARY_METRIC]:.4f}  "
                   f"val/macro_f1 {metrics['val/macro_f1']:.4f}  {metrics['img_per_s']:.0f} img/s")
        if tracker:
            tracker.log_epoch(metrics)
        if metrics["epoch"] < cfg.epochs:
            bar = tqdm(total=n_train, desc=f"epoch {metrics['epoch'] + 1}/{cfg.epochs}", unit="img", leave=False,
                       disable=None)  # a terminal only, never a piped log

    click.echo(f"{cfg.model} on {len(gym.splits['all'])} images ({n_train} train, {len(gym.splits['val'])} val) "
               f"on {gym.device}, epochs {gym.epoch + 1}..{cfg.epochs}")
    bar = tqdm(total=n_train, desc=f"epoch {gym.epoch + 1}/{cfg.epochs}", unit="img", leave=False, disable=None)
    try:
        gym.fit(report, on_batch=on_batch)
    except LabeltuneError:  # an empty split (found before the first epoch) or a diverged loss
        if tracker:
            tracker.finish("FAILED", [])
        raise
    finally:
        bar.close()
    if not history:
        raise click.ClickException(f"nothing to train: the checkpoint is at epoch {gym.epoch} and --epochs is {cfg.epochs}")
    final = history[-1]
    click.echo(metrics_table(final, dataset.labels, "val"))
    table, baselines = baseline_table(final, dataset.targets[:len(gym.splits["all"])], gym.splits, dataset.labels, "val")
    click.echo(table)
    if tracker:
        tracker.log_baselines(baselines)
    artifacts = _write_plots(out, history, final, dataset.labels, "val")
    if tracker:
        tracker.finish("FINISHED", artifacts + [out / "metrics.json"])
    click.echo(f"\nwrote {out / CHECKPOINT_FILE} (last), {out / 'best.pt'} (best {PRIMARY_METRIC} {best:.4f}), "
               f"{history_path} and plots in {out}")


class LocalRun:
    """An MLflow run in the experiment `local` for one `labeltune train`."""

    def __init__(self, cfg, dataset, uri: str | None) -> None:
        import mlflow

        experiment_id = store.open_experiment("local", uri)
        self.client = mlflow.MlflowClient(store.tracking_uri(uri))
        self.run_id = self.client.create_run(
            experiment_id, tags={"data_fingerprint": dataset.fingerprint, "data": str(dataset.root)}
        ).info.run_id
        for key, value in cfg.to_dict().items():
            self.client.log_param(self.run_id, key, value)

    def log_epoch(self, metrics: dict) -> None:
        from mlflow.entities import Metric

        step, now = int(metrics["epoch"]), int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if k != "epoch"]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_baselines(self, figures: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in figures.items()])

    def finish(self, status: str, artifacts: list[Path]) -> None:
        for path in artifacts:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, status)


@click.command("eval")
@click.option("--checkpoint", "checkpoint_path", required=True, type=click.Path(dir_okay=False), help="checkpoint.pt to evaluate")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False), help="dataset folder in the course layout")
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default="test", show_default=True,
              help="which split of the checkpoint's split_seed to score")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="folder for metrics and plots [default: beside the checkpoint]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
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
    dataset, images = _load_data(data_dir, cfg.color, skip_bad_images)
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
    dataset, images = _load_data(data_dir, predictor.cfg.color, skip_bad_images)
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
    _write_plots(out, [], metrics, dataset.labels, split)
    click.echo(f"\nwrote {out / f'eval_{split}.json'} and plots in {out}")

