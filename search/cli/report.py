"""`labeltune report NAME`: a search's analysis in the terminal, and as report.md beside the search.

Top trials, hyperparameter importance (PED-ANOVA on the first-rung score), the optimisation
history and where the budget went, read from the search folder (search/report.py). It
imports no Ray: it runs on a laptop against a search a cluster wrote to shared storage.
"""

from __future__ import annotations

import click


@click.command()
@click.argument("name")
@click.option("--storage", default=None, help="where searches live [default: $LABELTUNE_HOME/runs]")
def report(name, storage):
    """Analyse search NAME: top trials, importance, history, budget; writes report.md beside it."""
    from search.options import SearchError
    from search.record import exists, search_dir
    from search.report import analyse, text_lines, write_report

    path = search_dir(name, storage)
    if not exists(path):
        raise SearchError(f"no search named {name} in {path.parent} (labeltune searches lists them)")
    analysis = analyse(path)
    click.echo("\n".join(text_lines(analysis)))
    written = write_report(path, analysis)
    click.echo(f"\nwritten: {written} (figures {', '.join(p.name for p in analysis.figures.values())} beside it)")
