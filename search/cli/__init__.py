"""The `labeltune` command (pyproject's entry point `search.cli:main`), grouped by what the user does.

    data.py     data synth, data check       a dataset in the course layout
    trial.py    train, eval                  one trial, without Ray: the way to debug one
    search.py   search, searches             a Ray Tune search, the searches so far
    promote.py  promote, pred                the best checkpoint to the registry, predictions
    report.py   report                       what a search found: top trials, importance, budget
    jobs.py     submit, jobs, logs, stop     a search as a job on a Ray cluster
    ui.py       ui                           the MLflow UI on the project's store

Every command is defined at module level in its file and listed once below. Heavy
modules (torch, Ray, Optuna, MLflow) are imported inside the commands, so `--help` and
the data commands start fast. Errors meant for the user (LabeltuneError) are printed
once here as `Error: ...` with exit 1; anything else keeps its traceback.
"""

from __future__ import annotations

import click

from search.cli import data, jobs, promote, report, search, train, ui  # the modules; each command is an attribute
from search.console import quiet
from trainable.errors import LabeltuneError


class LabeltuneGroup(click.Group):
    """A click group that turns a LabeltuneError raised by any command into click's one-line `Error: ...`."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LabeltuneError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=LabeltuneGroup, context_settings={"help_option_names": ["-h", "--help"]},
             commands=[data.data, train.train, train.eval_cmd, search.search, search.searches, promote.promote,
                       promote.pred, report.report, jobs.submit, jobs.jobs, jobs.logs, jobs.stop, ui.ui])
@click.version_option(package_name="labeltune")
@click.option("-v", "--verbose", is_flag=True, help="also show Ray's, Tune's, Optuna's and MLflow's own messages")
def main(verbose: bool) -> None:
    """labeltune: distributed hyperparameter search for multilabel image classifiers."""
    quiet(show_third_party=verbose)
