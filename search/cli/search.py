"""`labeltune search` and `labeltune searches`: a Ray Tune search, and the searches so far.

search's options are generated from SearchOptions' fields (search/options.py): each
default, help text and range is written there once.
"""

from __future__ import annotations

import click

from search.cli.options import dataclass_options
from search.options import SearchOptions

RESUMABLE = ("resume_name", "address", "tracking_uri", "storage", "space")
"""options a resume may be given: where the search and its cluster are now; any other changes the search"""


@click.command()
@dataclass_options(SearchOptions)
@click.option("--resume", "resume_name", default=None, metavar="NAME", help="continue the interrupted search NAME")
def search(resume_name, **options):
    """Search hyperparameters with Ray Tune (Optuna TPE + ASHA), tracked in MLflow."""
    from search.run import resume_search, run_search

    if resume_name:
        # A resume continues the recorded search: options that would change it are refused, not ignored.
        ctx = click.get_current_context()
        changed = [param.opts[0] for param in ctx.command.params if param.name not in RESUMABLE
                   and ctx.get_parameter_source(param.name) is not click.core.ParameterSource.DEFAULT]
        if changed:
            raise click.UsageError(f"--resume {resume_name} continues the search as it was recorded; "
                                   f"{', '.join(changed)} cannot change it (start a new search instead)")
        result = resume_search(resume_name, address=options["address"], tracking_uri=options["tracking_uri"],
                               storage=options["storage"],
                               space=options["space"] if options["space"] != SearchOptions.space else None,
                               say=click.echo)
    else:
        result = run_search(SearchOptions(**options), say=click.echo)
    if result.already_finished:
        click.echo(f"search {result.name} had already finished"
                   + (f" ({result.stop_reason})" if result.stop_reason else "") + ": nothing to resume")
    if result.interrupted:
        if result.top:
            print_summary(result)
        click.echo(f"\nsearch {result.name} interrupted: {result.trials} trials so far; continue it with "
                   f"labeltune search --resume {result.name}", err=True)
        raise SystemExit(130)
    print_summary(result)


def print_summary(result) -> None:
    from search.progress import describe
    from trainable.config import PRIMARY_METRIC

    click.echo(f"\nsearch {result.name}: {result.trials} trials ({result.errored} failed), stored in {result.path}")
    if result.stop_reason:
        others = result.stop_others
        click.echo(f"ended before its budget: {result.stop_reason}"
                   + (f" ({others} other running trial{'s' if others != 1 else ''} ended with it)" if others > 0 else ""))
    if result.asha_rungs:
        from search.outcome import COMPLETED

        completed = sum(result.counts.get(k, 0) for k in COMPLETED) if result.counts else len(result.all_rows)
        click.echo(f"ASHA stopped {result.stopped_early} of {completed} completed trials early "
                   f"(rungs at epoch {', '.join(map(str, result.asha_rungs))})")
    else:
        click.echo("warning: --epochs is not above --grace-period, so ASHA had no rung to stop a trial at: every "
                   "trial ran to the end (give --epochs of at least 2x the grace period)", err=True)
    if not result.top:
        raise click.ClickException("no trial reported a result")
    best = result.best_metrics[PRIMARY_METRIC]
    click.echo(f"\nbest trial: {PRIMARY_METRIC} {best:.4f} at epoch {int(result.best_metrics['training_iteration'])}")
    baseline = result.baselines.get(f"baseline/{PRIMARY_METRIC}")
    if baseline is not None:
        click.echo(f"baseline (no learning, {result.baseline_rule}): {PRIMARY_METRIC} {baseline:.4f}, "
                   f"val/macro_f1 {result.baselines['baseline/val/macro_f1']:.4f}, "
                   f"val/map {result.baselines['baseline/val/map']:.4f}; best trial {best - baseline:+.4f}")
        # Only what promotion checks, not its verdict: it re-chooses the thresholds on val and decides on their
        # cross-validated val micro-F1 (trainable.metrics), which this summary does not compute.
        click.echo(f"promote moves the alias only if the best trial's {PRIMARY_METRIC}, at the thresholds it "
                   f"re-chooses on val (cross-validated inside val), beats the baseline's {baseline:.4f}")
        from trainable.baselines import beats_baseline

        if not beats_baseline(best, baseline):
            click.echo(f"warning: at its searched threshold no trial beats the no-learning baseline on "
                       f"{PRIMARY_METRIC} (search longer, or add pretrained efficientnet_lite0 to the space)", err=True)
    from search.readable import readable_config

    for key, value in sorted(readable_config(result.best_config).items()):  # one `lr`, 4 significant figures
        click.echo(f"    {key} = {value}")
    shown = ["val/loss", "val/micro_f1", "val/macro_f1", "val/micro_precision", "val/micro_recall", "val/map"]
    click.echo("    " + "  ".join(f"{k} {result.best_metrics[k]:.4f}" for k in shown if k in result.best_metrics))
    click.echo(f"\ntop {len(result.top)}:\n    {'trial':<14}{PRIMARY_METRIC:>14}{'epoch':>7}{'of':>4}  config")
    for row in result.top:
        click.echo(f"    {row['trial_id']:<14}{row[PRIMARY_METRIC]:>14.4f}{row['best_epoch']:>7}{row['epochs']:>4}  "
                   f"{describe(row['config'])}")
    if result.parent_run_id:
        from search.tracking.runs import search_links

        links = search_links(result.tracking_uri, result.name)
        click.echo("\n" + "\n".join([*links, f"MLflow store: {result.tracking_uri}"]))
    click.echo(f"promote the best trial: labeltune promote --search {result.name}")


@click.command()
@click.option("--storage", default=None, help="where searches live [default: $LABELTUNE_HOME/runs]")
def searches(storage):
    """List the searches: status, trials done, best score.

    A damaged search is a row of its own (status `damaged`, or its status with a `!` when only its
    Optuna study is damaged) and a line on stderr that names the file and what to do; the others
    are listed as usual and the exit status stays 0: the listing itself worked.
    """
    from search.catalog import list_searches
    from trainable.config import PRIMARY_METRIC

    rows = list_searches(storage)
    if not rows:
        click.echo("no searches yet")
        return
    click.echo(f"{'name':<28}{'status':<13}{'trials':>8}{'best ' + PRIMARY_METRIC:>20}  started")
    for row in rows:
        best = f"{row['best']:.4f}" if row["best"] is not None else "-"
        status = row["status"] + ("!" if row["problem"] and row["status"] != "damaged" else "")
        of = row["trials"] if row["trials"] is not None else "?"
        trials = f"{row['trials_done']:>4}/{of:<3}" if row["trials_done"] is not None else "-"
        click.echo(f"{row['name']:<28}{status:<13}{trials:>8}{best:>20}  {row['started']}")
    for row in rows:
        if row["problem"]:
            click.echo(f"warning: {row['problem']}", err=True)  # the problem names the file
