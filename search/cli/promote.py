"""`labeltune promote` and `labeltune pred`: the best checkpoint to the registry, then predictions.

promote ranks a search's trials, re-chooses thresholds on val, scores val and test next
to the no-learning baselines and moves the registry alias only to a model that beats
them (search/promote.py does the work); pred writes a TSV with a checkpoint or a
registered model.
"""

from __future__ import annotations

from pathlib import Path

import click

from trainable import store
from trainable.config import DEVICES, PRIMARY_METRIC


@click.command()
@click.option("--search", "search_name", required=True, help="name of the search to promote")
@click.option("--metric", default=None, help=f"metric to rank trials by [default: {PRIMARY_METRIC}]")
@click.option("--alias", default="champion", show_default=True, help="registry alias to point at the new version")
@click.option("--model-name", default="labeltune", show_default=True, help="registered model name")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: the search's]")
@click.option("--storage", default=None, help="where searches live [default: $LABELTUNE_HOME/runs]")
@click.option("--card", default=None, type=click.Path(dir_okay=False), help="also write the model card here")
@click.option("--no-register", is_flag=True, help="tune thresholds and write the card, but register nothing")
@click.option("--ensemble", default=1, show_default=True, type=click.IntRange(min=1),
              help="average the best checkpoints of the top K trials into one model")
@click.option("--allow-below-baseline", is_flag=True,
              help="move the alias even when validation micro-F1 does not beat the no-learning baseline")
def promote(search_name, metric, alias, model_name, tracking_uri, storage, card, no_register, ensemble,
            allow_below_baseline):
    """Promote a search's best checkpoint: thresholds, test scores against baselines, registry alias, model card."""
    from search.promote import promote as run_promotion
    from trainable.baselines import PREFIX
    from trainable.metrics import PRIMARY_METRIC

    p = run_promotion(search_name, metric or PRIMARY_METRIC, alias, model_name, tracking_uri, storage,
                      register=not no_register, ensemble=ensemble, allow_below_baseline=allow_below_baseline)
    what = f"ensemble of {len(p.members)} trials ({', '.join(m.trial_id for m in p.members)})" if len(p.members) > 1 \
        else f"best trial {p.trial_id}, epoch {p.epoch}: {metric or PRIMARY_METRIC} {p.val_score:.4f}"
    click.echo(what)
    click.echo(f"baseline (no learning): {p.baseline_rule}: val micro F1 {p.baseline_val_micro_f1:.4f}, "
               f"test micro F1 {p.baselines[PREFIX + 'test/micro_f1']:.4f}, "
               f"test macro F1 {p.baselines[PREFIX + 'test/macro_f1']:.4f}")
    click.echo(f"model: val micro F1 {p.val_cv_micro_f1:.4f} cross-validated inside val, the figure that decides "
               f"({p.val_micro_f1:.4f} on the images the thresholds were chosen on); "
               f"test micro F1 {p.test['trial']['test/micro_f1']:.4f} (trial threshold) -> "
               f"{p.test_global['test/micro_f1']:.4f} (global {p.global_threshold:.2f}) -> "
               f"{p.test_per_label['test/micro_f1']:.4f} (per-label thresholds); "
               f"macro F1 {p.test_global['test/macro_f1']:.4f} -> {p.test_per_label['test/macro_f1']:.4f}")
    if p.version:
        click.echo(f"registered models:/{p.model_name}/{p.version}" +
                   (f" as @{p.alias}" if p.alias_set else " (alias not moved)"))
        for line in promotion_links(p, tracking_uri, storage):
            click.echo(line)
    if card:
        import shutil

        Path(card).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p.card, card)
    click.echo(f"checkpoint: {p.checkpoint}\nmodel card: {Path(card).resolve() if card else p.card}")
    if p.below_baseline:
        if not allow_below_baseline:
            raise click.ClickException(p.baseline_line())
        click.echo(f"warning: {p.decision_line()} ({p.baseline_rule}); promoted anyway (--allow-below-baseline)",
                   err=True)


def promotion_links(p, tracking_uri: str | None, storage: str | None) -> list[str]:
    """The MLflow UI's links to a registered promotion `p`: its run, the registered version, the search's trials
    (the store: `tracking_uri`, else the search's, as promote registers)."""
    import mlflow

    from search.record import SearchRecord, search_dir
    from search.tracking.runs import model_version_url, run_url, search_links, ui_address

    uri = store.tracking_uri(tracking_uri or SearchRecord.read(search_dir(p.search, storage)).tracking_uri)
    ui = ui_address(uri)
    experiment_id = mlflow.MlflowClient(uri).get_run(p.run_id).info.experiment_id
    where = "" if uri.startswith(("http://", "https://")) else " (with `labeltune ui` running)"
    return [f"MLflow{where}: the promotion's run: {run_url(ui, experiment_id, p.run_id)}",
            f"MLflow: the registered version: {model_version_url(ui, p.model_name, p.version)}",
            *search_links(uri, p.search, ui)[:1]]


@click.command()
@click.option("--checkpoint", "checkpoint_path", default=None, type=click.Path(dir_okay=False), help="checkpoint.pt to predict with")
@click.option("--registered", default=None, metavar="NAME@ALIAS", help="a registered model, e.g. labeltune@champion")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI for --registered")
@click.option("--images", "images_dir", required=True, type=click.Path(file_okay=False), help="folder of im<N>.jpg to label")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="TSV to write")
@click.option("--scores", is_flag=True, help="write probabilities instead of 0/1")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--skip-bad-images", is_flag=True, help="skip unreadable images instead of stopping")
def pred(checkpoint_path, registered, tracking_uri, images_dir, out, scores, device, skip_bad_images):
    """Label a folder of images with a checkpoint or a registered model; writes a TSV."""
    from trainable import checkpoint as ckpt_io
    from trainable import data as data_mod
    from trainable.ensemble import load_predictor

    if bool(checkpoint_path) == bool(registered):
        raise click.UsageError("give exactly one of --checkpoint or --registered")
    paths, ignored = data_mod.list_images(images_dir, any_name=True)  # before the model: a bad folder fails fast
    if not paths:
        raise data_mod.DatasetError(f"{images_dir}: no images to label (files ending in "
                                    f"{', '.join(data_mod.PREDICT_SUFFIXES)}; {ignored} other files); nothing written")
    badly_named = [path for path in paths if data_mod.breaks_tsv(path)]  # a TSV's Filename cannot hold them
    if badly_named and not skip_bad_images:
        raise data_mod.DatasetError(f"{data_mod.shown_path(badly_named[0])}: a tab or line break in the file name "
                                    f"cannot go in the TSV's Filename column; rename the file, or pass "
                                    f"--skip-bad-images to leave it out")
    paths = [path for path in paths if not data_mod.breaks_tsv(path)]
    if registered:
        from search.tracking.registry import registered_checkpoint, resolved_line

        checkpoint_path, version = registered_checkpoint(registered, tracking_uri)
        click.echo(resolved_line(registered, version))
    predictor = load_predictor(ckpt_io.load(checkpoint_path), device)  # a single checkpoint or an ensemble
    images, kept = data_mod.decode_files(paths, predictor.cfg.color, progress=True, skip_bad_images=skip_bad_images)
    if not kept:
        raise data_mod.DatasetError(f"{images_dir}: none of its {len(paths) + len(badly_named)} images can be "
                                    f"labelled (each one skipped as a bad image); nothing written")
    probs, predictions = predictor.predict(images)
    write_predictions(Path(out), kept, predictor.labels, probs if scores else predictions)
    skipped = len(paths) - len(kept) + len(badly_named)
    click.echo(f"wrote {len(kept)} rows to {Path(out).resolve()}"
               + (f" ({ignored} non-image files ignored)" if ignored else "")
               + (f" ({skipped} bad images skipped: unreadable, or a tab or line break in the name)" if skipped else ""))


def write_predictions(path: Path, image_paths: list, labels: list[str], values) -> None:
    """The prediction TSV: `Filename<TAB>label...`, one row per image, written atomically."""
    import numpy as np

    values = np.asarray(values)
    lines = ["\t".join(["Filename", *labels])]
    for image_path, row in zip(image_paths, values):
        cells = [f"{v:.6f}" for v in row] if values.dtype.kind == "f" else [str(int(v)) for v in row]
        lines.append("\t".join([Path(image_path).name, *cells]))
    store.write_text(path, "\n".join(lines) + "\n")
