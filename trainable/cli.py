"""click commands for one trial: `data synth`, `data check`, `train`, `eval`, `pred`.

They run with no Ray at all (that is how a user debugs a single trial). Library
code raises typed errors (DatasetError, ConfigError, CheckpointError); the commands
turn them into one `Error: ...` line and a non-zero exit.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import click

from trainable import store


@click.group()
def data() -> None:
    """Create and validate datasets in the course layout."""


# ---- data commands (synth, check) ----


@data.command("synth")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="folder to write images/, annotations/ and test/ into")
@click.option("--n", "n", default=20000, show_default=True, type=click.IntRange(min=1),
              help="annotated images")
@click.option("--test", "test", default=5000, show_default=True, type=click.IntRange(min=0),
              help="unannotated test images (truth in test/truth.tsv)")
@click.option("--seed", default=0, show_default=True, type=int, help="same seed, same dataset")
@click.option("--force", is_flag=True, help="replace images/, annotations/ and test/ if OUT has them")
def synth_cmd(out: Path, n: int, test: int, seed: int, force: bool) -> None:
    """Write a synthetic dataset in the course layout (14 labels, course frequencies)."""
    import shutil
    import time

    from trainable import synth

    existing = [out / sub for sub in ("images", "annotations", "test") if (out / sub).exists()]
    if existing and not force:
        raise click.ClickException(f"{existing[0]} already exists (use --force to replace it)")
    for path in existing:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    start = time.perf_counter()
    counts, unlabelled = synth.write_dataset(out, n=n, test=test, seed=seed)
    seconds = time.perf_counter() - start
    click.echo(f"wrote {n} annotated + {test} test images to {out} in {seconds:.1f} s")
    expected = synth.expected_counts(n)
    click.echo(f"{'label':<10} {'images':>7} {'table':>7}")
    for name in sorted(counts, key=lambda k: -counts[k]):
        click.echo(f"{name:<10} {counts[name]:>7} {expected[name]:>7}")
    click.echo(f"{'unlabelled':<10} {unlabelled:>7} {round(n * synth.UNLABELLED_PER_20K / 20000):>7}")


@data.command("check")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--plot", "plot", type=click.Path(dir_okay=False, path_type=Path),
              help="also write a PNG bar chart of the label counts here")
@click.option("--skip-bad-images", is_flag=True, help="drop unreadable images instead of refusing the dataset")
def check_cmd(root: Path, plot: Path | None, skip_bad_images: bool) -> None:
    """Validate a dataset in the course layout and print its label statistics."""
    from trainable import data as datalib

    try:
        ds = datalib.load(root, skip_bad_images=skip_bad_images, progress=True)
    except datalib.DatasetError as e:
        raise click.ClickException(str(e)) from None
    for line in _describe_dataset(ds):
        click.echo(line)
    if plot is not None:
        click.echo(f"plot: {_plot_dataset(ds, plot)}")


def _describe_dataset(ds: Any) -> list[str]:
    """The `data check` report: label counts, labels per image, gray and size tables."""
    from collections import Counter

    import numpy as np

    n = len(ds)
    counts = ds.targets.sum(axis=0, dtype=np.int64)
    lines = [f"{ds.root}: {n} images, {len(ds.labels)} labels, fingerprint {ds.fingerprint[:16]}", ""]
    lines.append(f"{'label':<12} {'images':>7} {'share':>7}")
    for j in sorted(range(len(ds.labels)), key=lambda j: (-counts[j], ds.labels[j])):
        lines.append(f"{ds.labels[j]:<12} {int(counts[j]):>7} {counts[j] / n:>7.1%}")
    per_image = np.bincount(ds.targets.sum(axis=1).astype(np.int64), minlength=1)
    lines += ["", f"{'labels/image':<12} {'images':>7}"]
    lines += [f"{k:<12} {int(c):>7}" for k, c in enumerate(per_image) if c]
    lines += ["", f"unlabelled   {ds.n_unlabelled:>7} {ds.n_unlabelled / n:>7.1%}",
              f"grayscale    {ds.n_gray:>7} {ds.n_gray / n:>7.1%}", ""]
    sizes = Counter((f"{w}x{h}", mode) for (w, h), mode in zip(ds.sizes.tolist(), ds.modes))
    lines.append(f"{'size':<12} {'mode':<6} {'images':>7}")
    lines += [f"{size:<12} {mode:<6} {c:>7}" for (size, mode), c in sorted(sizes.items(), key=lambda kv: -kv[1])]
    notes = {"duplicate numbers": ds.n_duplicates, "ignored files": ds.n_ignored,
             "skipped bad images": ds.n_bad_skipped, "resized to 128x128": ds.n_resized}
    if any(notes.values()):
        lines += [""] + [f"{k}: {v}" for k, v in notes.items() if v]
        lines += [f"  {b}" for b in ds.bad_images[:10]]
    return lines


def _plot_dataset(ds: Any, path: Path) -> Path:
    """Bar charts of positives per label and labels per image (matplotlib, Agg)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = ds.targets.sum(axis=0, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")
    per_image = np.bincount(ds.targets.sum(axis=1).astype(np.int64), minlength=1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    left.bar([ds.labels[j] for j in order], counts[order], color="tab:blue")
    left.set_ylabel("images")
    left.set_title(f"positives per label ({len(ds)} images, {ds.n_unlabelled} unlabelled)")
    left.tick_params(axis="x", rotation=60)
    right.bar(np.arange(len(per_image)), per_image, color="tab:orange")
    right.set_xlabel("labels per image")
    right.set_title("labels per image")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---- end data commands ----


# ---- one trial: train, eval, pred ----

SUMMARY_KEYS = ("loss", "micro_f1", "macro_f1", "micro_precision", "micro_recall",
                "macro_precision", "macro_recall", "exact_match", "hamming_acc", "map")


def config_options(command):
    """One click option per TrainConfig field (`batch_size` -> `--batch-size`), help from its docstring."""
    from trainable.config import AUGMENTS, COLORS, DEVICES, IMAGE_SIZES, POS_WEIGHTS, config_fields, field_doc

    choices = {"color": COLORS, "augment": AUGMENTS, "pos_weight": POS_WEIGHTS, "device": DEVICES}
    for f in reversed(config_fields()):
        flag = "--" + f.name.replace("_", "-")
        doc = field_doc(f.name)
        if f.name == "pretrained":
            option = click.option(f"{flag}/--no-pretrained", default=None, help=doc + " [default: on for efficientnet_lite0]")
        elif f.name == "split_fractions":
            option = click.option(flag, default=None, help=doc + " [default: 0.8,0.1,0.1]", metavar="TRAIN,VAL,TEST")
        elif f.name == "image_size":
            option = click.option(flag, type=click.Choice([str(s) for s in IMAGE_SIZES]), default=None, help=doc)
        elif f.name in choices:
            option = click.option(flag, type=click.Choice(choices[f.name]), default=None, help=doc)
        else:
            kind = {"int": int, "float": float, "str": str}[f.type]
            option = click.option(flag, type=kind, default=None, help=f"{doc} [default: {f.default}]")
        command = option(command)
    return command


def config_from_options(options: dict):
    """The TrainConfig for the options a user gave (None = not given)."""
    from trainable.config import ConfigError, TrainConfig

    values = {k: v for k, v in options.items() if v is not None}
    if "split_fractions" in values:
        try:
            values["split_fractions"] = tuple(float(x) for x in values["split_fractions"].split(","))
        except ValueError:
            raise click.BadParameter("expected three numbers such as 0.8,0.1,0.1", param_hint="--split-fractions")
    if "pretrained" not in values:
        values["pretrained"] = values.get("model", TrainConfig.model) == "efficientnet_lite0"  # its weights ship
    try:
        return TrainConfig.from_dict(values)
    except ConfigError as exc:
        raise click.ClickException(str(exc))


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

    try:
        dataset = data_mod.load(data_dir, skip_bad_images=skip_bad_images)
        images = data_mod.decode(dataset, color)
    except data_mod.DatasetError as exc:
        raise click.ClickException(str(exc))
    return dataset, images


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
    from trainable.gym import CHECKPOINT_FILE, Gym, TrialDiverged
    from trainable.metrics import PRIMARY_METRIC
    from trainable.models import PretrainedWeightsError

    cfg = config_from_options(options)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    dataset, images = _load_data(data_dir, cfg.color, skip_bad_images)
    start_ckpt = None
    if resume:
        try:
            start_ckpt = ckpt_io.load(out / CHECKPOINT_FILE)
        except ckpt_io.CheckpointError as exc:
            raise click.ClickException(str(exc))
    try:
        gym = Gym(cfg, images, dataset.targets, dataset.labels, data_fingerprint=dataset.fingerprint, checkpoint=start_ckpt)
    except (ValueError, RuntimeError, ckpt_io.CheckpointError, PretrainedWeightsError) as exc:
        raise click.ClickException(str(exc))
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
            bar = tqdm(total=n_train, desc=f"epoch {metrics['epoch'] + 1}/{cfg.epochs}", unit="img", leave=False)

    click.echo(f"{cfg.model} on {len(gym.splits['all'])} images ({n_train} train, {len(gym.splits['val'])} val) "
               f"on {gym.device}, epochs {gym.epoch + 1}..{cfg.epochs}")
    bar = tqdm(total=n_train, desc=f"epoch {gym.epoch + 1}/{cfg.epochs}", unit="img", leave=False)
    try:
        gym.fit(report, on_batch=on_batch)
    except ValueError as exc:  # an empty split, found before the first epoch
        if tracker:
            tracker.finish("FAILED", [])
        raise click.ClickException(str(exc))
    except TrialDiverged as exc:
        if tracker:
            tracker.finish("FAILED", [])
        raise click.ClickException(str(exc))
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

    try:
        ckpt = ckpt_io.load(checkpoint_path)
        if ckpt_io.kind(ckpt) == "ensemble":
            return _eval_ensemble(ckpt, checkpoint_path, data_dir, split, out, device, skip_bad_images)
        cfg = TrainConfig.from_dict({**ckpt["config"], "device": device, "pretrained": False})
    except ckpt_io.CheckpointError as exc:
        raise click.ClickException(str(exc))
    dataset, images = _load_data(data_dir, cfg.color, skip_bad_images)
    if ckpt["data_fingerprint"] and ckpt["data_fingerprint"] != dataset.fingerprint and split != "all":
        click.echo(f"warning: {data_dir} is not the data this checkpoint was trained on; "
                   f"its {split} split may overlap the training images", err=True)
    try:
        gym = Gym(cfg, images, dataset.targets, dataset.labels, data_fingerprint=dataset.fingerprint, checkpoint=ckpt)
    except ckpt_io.CheckpointError as exc:
        raise click.ClickException(str(exc))
    import numpy as np

    try:
        metrics = gym.evaluate(split, threshold=np.asarray(ckpt["thresholds"], dtype=np.float32))
    except ValueError as exc:  # an empty split
        raise click.ClickException(str(exc))
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
    try:
        metrics = evaluate_split(predictor, images, dataset.targets, split).compute()
    except ValueError as exc:
        raise click.ClickException(str(exc))
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


@click.command()
@click.option("--checkpoint", "checkpoint_path", default=None, type=click.Path(dir_okay=False), help="checkpoint.pt to predict with")
@click.option("--registered", default=None, metavar="NAME@ALIAS", help="a registered model, e.g. labeltune@champion")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI for --registered")
@click.option("--images", "images_dir", required=True, type=click.Path(file_okay=False), help="folder of im<N>.jpg to label")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="TSV to write")
@click.option("--scores", is_flag=True, help="write probabilities instead of 0/1")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--skip-bad-images", is_flag=True, help="skip unreadable images instead of stopping")
def pred(checkpoint_path, registered, tracking_uri, images_dir, out, scores, device, skip_bad_images):
    """Label a folder of images with a checkpoint or a registered model; writes a TSV."""
    from trainable import checkpoint as ckpt_io
    from trainable import data as data_mod
    from trainable.ensemble import load_predictor

    if bool(checkpoint_path) == bool(registered):
        raise click.UsageError("give exactly one of --checkpoint or --registered")
    if registered:
        from search.promote import PromotionError, resolve_registered

        try:
            checkpoint_path = resolve_registered(registered, tracking_uri)
        except PromotionError as exc:
            raise click.ClickException(str(exc))
    try:
        ckpt = ckpt_io.load(checkpoint_path)
        predictor = load_predictor(ckpt, device)  # a single checkpoint or an ensemble
        paths, ignored = data_mod.list_images(images_dir)
        images, kept = data_mod.decode_files(paths, predictor.cfg.color, progress=True, skip_bad_images=skip_bad_images)
    except (ckpt_io.CheckpointError, data_mod.DatasetError) as exc:
        raise click.ClickException(str(exc))
    probs, predictions = predictor.predict(images)
    write_predictions(Path(out), kept, predictor.labels, probs if scores else predictions)
    skipped = len(paths) - len(kept)
    click.echo(f"wrote {len(kept)} rows to {Path(out).resolve()}"
               + (f" ({ignored} non-image files ignored)" if ignored else "")
               + (f" ({skipped} unreadable images skipped)" if skipped else ""))


def write_predictions(path: Path, image_paths: list, labels: list[str], values) -> None:
    """The prediction TSV: `Filename<TAB>label...`, one row per image, written atomically."""
    import numpy as np

    values = np.asarray(values)
    lines = ["\t".join(["Filename", *labels])]
    for image_path, row in zip(image_paths, values):
        cells = [f"{v:.6f}" for v in row] if values.dtype.kind == "f" else [str(int(v)) for v in row]
        lines.append("\t".join([Path(image_path).name, *cells]))
    store.write_text(path, "\n".join(lines) + "\n")
