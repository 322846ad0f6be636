"""The `labeltune` command: trainable's one-trial commands plus the search service.

Heavy modules (torch, Ray, Optuna, MLflow) are imported inside the commands, so
`labeltune --help` and the data commands start fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from trainable.cli import data, eval_cmd, pred, train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="labeltune")
def main() -> None:
    """labeltune: distributed hyperparameter search for multilabel image classifiers."""


main.add_command(data)
main.add_command(train)
main.add_command(eval_cmd)
main.add_command(pred)


@main.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False), help="dataset folder in the course layout")
@click.option("--space", default="default", show_default=True, help="preset (default, quick) or a YAML/JSON file")
@click.option("--trials", default=16, show_default=True, type=click.IntRange(min=1), help="number of trials")
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(min=1), help="maximum epochs per trial (ASHA's max_t)")
@click.option("--time-budget", "time_budget_min", type=click.FloatRange(min=0, min_open=True), default=None, help="stop starting new trials after MINUTES")
@click.option("--concurrency", default=0, show_default=True, type=click.IntRange(min=0), help="maximum trials at once (0 = as the resources allow)")
@click.option("--gpus-per-trial", type=click.FloatRange(min=0), default=None, help="GPU share per trial [default: by model: small CNNs 0.25, ResNets 1]")
@click.option("--cpus-per-trial", type=click.FloatRange(min=0, min_open=True), default=None, help="CPUs per trial [default: 1]")
@click.option("--grace-period", default=1, show_default=True, type=click.IntRange(min=1), help="epochs before ASHA may stop a trial")
@click.option("--max-failures", default=1, show_default=True, type=click.IntRange(min=0), help="retries of a trial whose worker or node died")
@click.option("--address", default=None, help="Ray cluster: 'auto' or host:port [default: start a local Ray]")
@click.option("--name", default=None, help="search name [default: search-<date>-<time>]")
@click.option("--seed", default=0, show_default=True, help="seed of the sampler and of each trial")
@click.option("--split-seed", default=0, show_default=True, help="train/val/test split shared by all trials")
@click.option("--storage", default=None, help="where searches live (absolute path or URI) [default: $LABELTUNE_HOME/runs]")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: sqlite under $LABELTUNE_HOME/mlruns]")
@click.option("--no-track", is_flag=True, help="no MLflow (not even imported)")
@click.option("--limit", default=0, type=click.IntRange(min=0), help="use only the first N images (debugging)")
@click.option("--skip-bad-images", is_flag=True, help="skip unreadable images instead of stopping")
@click.option("--resume", "resume_name", default=None, metavar="NAME", help="continue the interrupted search NAME")
def search(data_dir, space, trials, epochs, time_budget_min, concurrency, gpus_per_trial, cpus_per_trial, grace_period,
           max_failures, address, name, seed, split_seed, storage, tracking_uri, no_track, limit, skip_bad_images, resume_name):
    """Search hyperparameters with Ray Tune (Optuna TPE + ASHA), tracked in MLflow."""
    from search.space import SpaceError
    from search.tuner import SearchError, SearchOptions, resume_search, run_search
    from trainable.data import DatasetError

    if resume_name:
        # A resume continues the recorded search: options that would change it are refused, not ignored.
        ctx = click.get_current_context()
        changed = [param.opts[0] for param in ctx.command.params
                   if param.name not in ("resume_name", "address", "tracking_uri", "storage", "space")
                   and ctx.get_parameter_source(param.name) is not click.core.ParameterSource.DEFAULT]
        if changed:
            raise click.UsageError(f"--resume {resume_name} continues the search as it was recorded; "
                                   f"{', '.join(changed)} cannot change it (start a new search instead)")
    try:
        if resume_name:
            result = resume_search(resume_name, address=address, tracking_uri=tracking_uri, storage=storage,
                                   space=space if space != "default" else None)
        else:
            if not data_dir:
                raise click.UsageError("--data is required (or --resume NAME)")
            result = run_search(SearchOptions(
                data=data_dir, space=space, trials=trials, epochs=epochs, time_budget_min=time_budget_min,
                concurrency=concurrency, gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial,
                grace_period=grace_period, max_failures=max_failures, address=address, name=name, seed=seed, split_seed=split_seed,
                storage=storage, tracking_uri=tracking_uri, track=not no_track, limit=limit,
                skip_bad_images=skip_bad_images,
            ))
    except (SearchError, SpaceError, DatasetError) as exc:
        raise click.ClickException(str(exc))
    if result.interrupted:
        if result.top:
            print_summary(result)
        click.echo(f"\nsearch {result.name} interrupted: {result.trials} trials so far; continue it with "
                   f"labeltune search --resume {result.name}", err=True)
        raise SystemExit(130)
    print_summary(result)


def print_summary(result) -> None:
    from search.progress import describe
    from trainable.metrics import PRIMARY_METRIC

    click.echo(f"\nsearch {result.name}: {result.trials} trials ({result.errored} failed), stored in {result.path}")
    if not result.top:
        raise click.ClickException("no trial reported a result")
    best = result.best_metrics[PRIMARY_METRIC]
    click.echo(f"\nbest trial: {PRIMARY_METRIC} {best:.4f} at epoch {int(result.best_metrics['training_iteration'])}")
    baseline = result.baselines.get(f"baseline/{PRIMARY_METRIC}")
    if baseline is not None:
        click.echo(f"baseline (no learning, {result.baseline_rule}): {PRIMARY_METRIC} {baseline:.4f}, "
                   f"val/macro_f1 {result.baselines['baseline/val/macro_f1']:.4f}, "
                   f"val/map {result.baselines['baseline/val/map']:.4f}; best trial {best - baseline:+.4f}")
        if best <= baseline:
            click.echo(f"warning: no trial beats the no-learning baseline on {PRIMARY_METRIC}; promote will not "
                       f"move the alias (search longer, or add pretrained efficientnet_lite0 to the space)", err=True)
    for key in sorted(result.best_config):
        click.echo(f"    {key} = {result.best_config[key]}")
    shown = ["val/loss", "val/micro_f1", "val/macro_f1", "val/micro_precision", "val/micro_recall", "val/map"]
    click.echo("    " + "  ".join(f"{k} {result.best_metrics[k]:.4f}" for k in shown if k in result.best_metrics))
    click.echo(f"\ntop {len(result.top)}:\n    {'trial':<14}{PRIMARY_METRIC:>14}{'epoch':>7}{'of':>4}  config")
    for row in result.top:
        click.echo(f"    {row['trial_id']:<14}{row[PRIMARY_METRIC]:>14.4f}{row['best_epoch']:>7}{row['epochs']:>4}  "
                   f"{describe(row['config'])}")
    if result.parent_run_id:
        click.echo(f"\nMLflow: run `labeltune ui` and open experiment 'labeltune', parent run {result.name} "
                   f"({result.parent_run_id}); store {result.tracking_uri}")
    click.echo(f"promote the best trial: labeltune promote --search {result.name}")


@main.command()
@click.option("--storage", default=None, help="where searches live [default: $LABELTUNE_HOME/runs]")
def searches(storage):
    """List the searches: status, trials done, best score."""
    from search.catalog import list_searches
    from trainable.metrics import PRIMARY_METRIC

    rows = list_searches(storage)
    if not rows:
        click.echo("no searches yet")
        return
    click.echo(f"{'name':<28}{'status':<13}{'trials':>8}{'best ' + PRIMARY_METRIC:>20}  started")
    for row in rows:
        best = f"{row['best']:.4f}" if row["best"] is not None else "-"
        click.echo(f"{row['name']:<28}{row['status']:<13}{row['trials_done']:>4}/{row['trials']:<3}{best:>20}  {row['started']}")


@main.command()
@click.option("--search", "search_name", required=True, help="name of the search to promote")
@click.option("--metric", default=None, help="metric to rank trials by [default: val/micro_f1]")
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
    from search.promote import PromotionError, promote as run_promotion
    from search.tuner import SearchError
    from trainable.baselines import PREFIX
    from trainable.checkpoint import CheckpointError
    from trainable.data import DatasetError
    from trainable.metrics import PRIMARY_METRIC

    try:
        p = run_promotion(search_name, metric or PRIMARY_METRIC, alias, model_name, tracking_uri, storage,
                          register=not no_register, ensemble=ensemble, allow_below_baseline=allow_below_baseline)
    except (PromotionError, SearchError, CheckpointError, DatasetError) as exc:
        raise click.ClickException(str(exc))
    what = f"ensemble of {len(p.members)} trials ({', '.join(m.trial_id for m in p.members)})" if len(p.members) > 1 \
        else f"best trial {p.trial_id}, epoch {p.epoch}: {metric or PRIMARY_METRIC} {p.val_score:.4f}"
    click.echo(what)
    click.echo(f"baseline (no learning): {p.baseline_rule}: val micro F1 {p.baseline_val_micro_f1:.4f}, "
               f"test micro F1 {p.baselines[PREFIX + 'test/micro_f1']:.4f}, "
               f"test macro F1 {p.baselines[PREFIX + 'test/macro_f1']:.4f}")
    click.echo(f"model: val micro F1 {p.val_micro_f1:.4f}; test micro F1 {p.test['trial']['test/micro_f1']:.4f} "
               f"(trial threshold) -> {p.test_global['test/micro_f1']:.4f} (global {p.global_threshold:.2f}) -> "
               f"{p.test_per_label['test/micro_f1']:.4f} (per-label thresholds); "
               f"macro F1 {p.test_global['test/macro_f1']:.4f} -> {p.test_per_label['test/macro_f1']:.4f}")
    if p.version:
        click.echo(f"registered models:/{p.model_name}/{p.version}" +
                   (f" as @{p.alias}" if p.alias_set else " (alias not moved)"))
    if card:
        import shutil

        Path(card).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p.card, card)
    click.echo(f"checkpoint: {p.checkpoint}\nmodel card: {Path(card).resolve() if card else p.card}")
    if p.below_baseline:
        if not allow_below_baseline:
            raise click.ClickException(p.baseline_line())
        click.echo(f"warning: {p.baseline_line().split(';')[0]}; promoted anyway (--allow-below-baseline)", err=True)


@main.command()
@click.option("--port", default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to bind (0.0.0.0 exposes it to the network)")
@click.option("--workers", default=1, show_default=True, help="web worker processes (MLflow's default of 4 is slow to start on small machines)")
@click.option("--tracking-uri", default=None, help="the store to show [default: sqlite under $LABELTUNE_HOME/mlruns]")
def ui(port, host, workers, tracking_uri):
    """Start the MLflow UI on the project's store."""
    import os
    import sys

    from trainable import store

    uri = store.tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    # Experiment pages open on GenAI traces in MLflow 3.17; the runs table is the machine-learning view.
    click.echo(f"MLflow UI for {uri}: http://{host}:{port}/#/experiments "
               f"(then an experiment's Runs tab, or append /<id>/runs?workflowType=machine_learning)")
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # no background job runners for a UI
    args = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port),
            "--workers", str(workers)]
    os.execv(sys.executable, args)


# Ray Jobs commands (submit, jobs, logs, stop) live in search/jobs.py.
from search.jobs import register as _register_job_commands  # noqa: E402

_register_job_commands(main)
