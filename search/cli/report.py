"""`labeltune report NAME`: a search's analysis in the terminal, and as report.md beside the search.

Top trials, hyperparameter importance (PED-ANOVA on the first-rung score), the optimisation
history and where the budget went, read from the search folder (search/report.py). It
imports no Ray: it runs on a laptop against a search a cluster wrote to shared storage.
The terminal shows report.md's header and sections (search/report_text.py writes both, since a
search writes report.md at its end) as plain lines: `text_lines`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from search.report import SearchReport


def text_lines(report: SearchReport) -> list[str]:
    """The whole report as terminal lines (report.md holds the same lines, section by section)."""
    from search.report_text import header_lines, sections

    lines = header_lines(report)
    for title, body in sections(report).items():
        lines += ["", title, *body]
    return lines


@click.command()
@click.argument("name")
@click.option("--storage", default=None, help="where searches live [default: $LABELTUNE_HOME/runs]")
def report(name, storage):
    """Analyse search NAME: top trials, importance, history, budget; writes report.md beside it."""
    from search.options import SearchError
    from search.record import exists, search_dir
    from search.report import analyse
    from search.report_text import write_report

    path = search_dir(name, storage)
    if not exists(path):
        raise SearchError(f"no search named {name} in {path.parent} (labeltune searches lists them)")
    analysis = analyse(path)
    click.echo("\n".join(text_lines(analysis)))
    written = write_report(path, analysis)
    click.echo(f"\nwritten: {written} (figures {', '.join(p.name for p in analysis.figures.values())} beside it)")
