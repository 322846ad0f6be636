"""The search report as text: the header and sections `labeltune report` prints, and report.md.

    report = analyse(folder)                      # search/report.py: the analysis and the figures
    print("\n".join(header_lines(report)))
    for title, body in sections(report).items(): ...
    write_report(folder, report)                  # report.md with the figures beside it
    note_markdown(report, chart, full)            # the parent run's description: headline, what each choice scored

Below the CLI, not in it: search/tracking/report.py writes report.md and the note on the parent
run at the end of every search, and `labeltune report` prints the same header and sections.
Config values are printed as search/readable.py writes them (floats at 4 significant figures).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from search.outcome import OUTCOMES, started
from search.readable import number
from search.report import (IMPORTANCE_QUANTILE, MIN_TRIALS_FOR_IMPORTANCE, SearchReport, analyse, trial_lr,
                           write_figures)
from trainable import timing
from trainable.metrics import PRIMARY_METRIC

TOP_N = 10
"""trials in the top-trials table"""
HISTORY_MARKS = (0.1, 0.25, 0.5, 0.75, 1.0)
"""shares of the trial-epochs spent at which the text history gives the best so far (the figure has every epoch)"""
OUTCOME_WORDS = {"finished": "finished", "stopped_early": "stopped early", "ended_by_stop": "ended by the stop",
                 "failed": "failed", "never_ran": "never ran", "unfinished": "unfinished"}
"""search/outcome.py's OUTCOMES as the report writes them"""
ALWAYS_SHOWN = ("finished", "stopped_early", "failed")
"""outcomes the report counts even when no trial has them; the others only when some do"""
REPORT_FILE = "report.md"
"""the report's text and figure links, in the search folder"""
CHOICE_SECTION = "What each choice scored"


def header_lines(report: SearchReport) -> list[str]:
    r = report.record
    lines = [f"search {r.name} ({r.status}): {started(report.counts)} trials of {r.options.get('trials', '?')}, "
             f"at most {report.max_epochs} epochs each, first ASHA rung at epoch {report.rung}; {report.path}",
             outcome_line(report)]
    best = report.trials[0].best if report.trials and report.trials[0].best is not None else None
    if report.baseline is not None:
        versus = f"; best trial {best - report.baseline:+.4f}" if best is not None else ""
        lines.append(f"baseline (no learning, {r.baseline_rule or 'record'}): {PRIMARY_METRIC} "
                     f"{report.baseline:.4f}{versus}")
    return lines


def outcome_line(report: SearchReport) -> str:
    """`trials: 2 finished, 4 stopped early, 0 failed` (and any other outcome some trial has), as the study says."""
    words = {**OUTCOME_WORDS, "unfinished": "running" if report.record.status == "running" else "unfinished"}
    n = report.counts
    line = "trials: " + ", ".join(f"{n[o]} {words[o]}" for o in OUTCOMES if o in ALWAYS_SHOWN or n[o])
    if report.lost:
        line += (f"; the study also holds {report.lost} trial{'s' * (report.lost != 1)} Tune's saved state lost "
                 f"(a driver killed between snapshots), not counted")
    if not report.study_kept:
        line += " (no kept study: outcomes from epochs, a failed trial counts as stopped early)"
    return line


def sections(report: SearchReport) -> dict[str, list[str]]:
    """Section title -> its lines: top trials, what each choice scored, importance, history, budget, time."""
    return {"Top trials": top_lines(report), CHOICE_SECTION: choice_lines(report),
            "Hyperparameter importance": importance_lines(report),
            "Optimisation history": history_lines(report), "Where the budget went": budget_lines(report),
            "Where a trial's time went": time_lines(report)}


def top_lines(report: SearchReport) -> list[str]:
    top = report.trials[:TOP_N]
    if not top:
        return ["no trial reported a result yet"]
    lines = [f"  {'trial':<12}{'best':>8}{'epoch':>7}{'of':>4}{'rung ' + str(report.rung):>9}  "
             f"{'model':<20}{'optimizer':<10}{'lr':>9}  {'loss':<24}{'batch':>5}"]
    for t in top:
        model, optimizer, loss, batch = (str(t.config.get(key, "?"))
                                         for key in ("model", "optimizer", "loss", "batch_size"))
        lr = trial_lr(t.config)
        lines.append(f"  {t.trial_id:<12}{_num(t.best):>8}{t.best_epoch:>7}{t.epochs:>4}{_num(t.rung_score):>9}  "
                     f"{model:<20}{optimizer:<10}{number(lr) if lr is not None else '-':>9}  {loss:<24}{batch:>5}")
    if len(report.trials) > TOP_N:
        lines.append(f"  ... and {len(report.trials) - TOP_N} more")
    return lines


def choice_lines(report: SearchReport) -> list[str]:
    """Per model, optimizer and loss, each choice's trials and the best and median of their best scores, the best
    median first, and the no-learning baseline below each table: what mattered, at any trial count."""
    if not any(g.trials for groups in report.by_choice.values() for g in groups):
        return ["no trial reported a score yet"]
    lines = [f"each trial's best {PRIMARY_METRIC} over its epochs, grouped by its choice (a trial ASHA stopped had "
             f"fewer epochs to reach it){_importance_words(report)}"]
    for param, groups in report.by_choice.items():
        width = max(len(param), len("no-learning baseline"), *(len(g.choice) for g in groups))
        lines += ["", f"  {param:<{width}}  {'trials':>6}  {'best':>8}  {'median':>8}"]
        lines += [f"  {g.choice:<{width}}  {g.trials:>6}  {_num(g.best):>8}  {_num(g.median):>8}" for g in groups]
        lines.append(f"  {'no-learning baseline':<{width}}  {'':>6}  {_num(report.baseline):>8}")
    return lines


def _importance_words(report: SearchReport) -> str:
    """Why this view is the one to read: too few trials for importance (nothing otherwise)."""
    imp = report.importance
    if imp is None or imp.values or imp.trials >= MIN_TRIALS_FOR_IMPORTANCE:
        return ""
    return (f"; {imp.trials} completed trials, fewer than the {MIN_TRIALS_FOR_IMPORTANCE} importance needs, "
            f"so this is the view that says what mattered")


def importance_lines(report: SearchReport) -> list[str]:
    imp = report.importance
    if not imp.values:
        return [imp.note]
    lines = [f"PED-ANOVA on {imp.trials} trials: which parameters put a trial in the top {IMPORTANCE_QUANTILE:.0%} "
             f"by {PRIMARY_METRIC} at epoch {report.rung} (the first ASHA rung, which every trial reaches)"]
    if imp.note:
        lines.append(imp.note)
    width = max(len(name) for name in imp.values)
    lines += [f"  {name:<{width}}  {value:.3f}  {'#' * round(value * 40)}" for name, value in imp.values.items()]
    return lines


def history_lines(report: SearchReport) -> list[str]:
    """The best so far near fixed shares of the trial-epochs spent (HISTORY_MARKS), and where the best was found.

    Each row is the last scored trial-epoch at or before its mark, with its own share of the total:
    marks that land on the same point (a short search, epochs without a score) give one row.
    The figure (plot_history) has every point.
    """
    if not report.history:
        return ["no epoch reported a score yet"]
    total = report.total_epochs
    lines = [f"  {'trial-epochs':>12}  {'best ' + PRIMARY_METRIC:>18}  trial"]
    shown = set()
    for mark in HISTORY_MARKS:
        reached = [point for point in report.history if point[0] <= math.ceil(mark * total)]
        if reached and reached[-1][0] not in shown:
            spent, _, best, _ = reached[-1]
            shown.add(spent)
            holder = next(trial_id for _, score, b, trial_id in reached if b == best and score == best)
            lines.append(f"  {f'{spent} ({spent / total:.0%})':>12}  {best:>18.4f}  {holder}")
    last = report.history[-1][2]
    found = next(spent for spent, _, best, _ in report.history if best == last)
    lines.append(f"the best was found after {found} of {total} trial-epochs ({found / max(total, 1):.0%})")
    return lines


def budget_lines(report: SearchReport) -> list[str]:
    """Trials, trial-epochs and minutes by outcome (ALWAYS_SHOWN, and the others some trial has)."""
    b = report.budget
    total_epochs, total_s = report.total_epochs, sum(spent.seconds for spent in b.values())
    if not total_epochs:
        return ["no epoch trained yet"]
    running = report.record.status == "running"
    labels = {"finished": (f"finished (all {report.max_epochs} epochs)", ""),
              "stopped_early": ("stopped early", "  (ASHA)"),
              "ended_by_stop": ("ended by the stop", f"  ({report.record.stop_reason or '--target/--plateau'})"),
              "failed": ("failed", "  (an error)"),
              "never_ran": ("never ran", "  (suggested, but the search ended first)"),
              "unfinished": ("running" if running else "unfinished",
                             "" if running else "  (interrupted: search --resume continues them)")}
    shown = [outcome for outcome in OUTCOMES if outcome in ALWAYS_SHOWN or b[outcome].trials]
    width = max(len(labels[outcome][0]) for outcome in shown)
    return [f"  {labels[o][0] + ':':<{width + 1}} {b[o].trials:>4} trials {b[o].epochs:>6} trial-epochs "
            f"({b[o].epochs / total_epochs:>4.0%}) {b[o].seconds / 60:8.1f} min{labels[o][1]}" for o in shown] + [
        f"  in all: {started(report.counts)} trials, {total_epochs} trial-epochs, {total_s / 60:.1f} trial-minutes"]


def time_lines(report: SearchReport) -> list[str]:
    """Per model: the share of its trials' wall time spent training, the other phases' shares, the median epoch."""
    if not report.time_by_model:
        return ["no timed epoch (trials run before labeltune recorded where their time went)"]
    names = {timing.TRAIN: "train", timing.VAL_FORWARD: "val", timing.METRICS: "metrics",
             timing.CHECKPOINT: "ckpt", timing.REPORT: "report"}
    width = max(len(m.model) for m in report.time_by_model)
    lines = [f"  {'model':<{width}} trials  " + "  ".join(f"{name:>7}" for name in names.values())
             + "    rest  epoch s"]
    for m in report.time_by_model:
        shares = [m.phases.get(key, 0.0) / m.wall_s for key in names]
        lines.append(f"  {m.model:<{width}} {m.trials:>6}  " + "  ".join(f"{share:>7.0%}" for share in shares)
                     + f"  {1 - sum(shares):>6.0%}  {m.epoch_s if m.epoch_s is not None else float('nan'):>7.2f}")
    lines.append("  shares of each model's trial wall time (start to last report); rest: start-up, placement, "
                 "waiting between epochs")
    return lines


def _num(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def note_markdown(report: SearchReport, chart: str, full: str, chart_url: str = "") -> str:
    """The parent run's description (MLflow shows it first on the run's page): the best trial against the
    no-learning baseline and how the trials ended, the overview chart (`chart_url`, when given), then what each
    choice scored (a markdown table per parameter, the baseline its last row) and importance once computed.
    `chart`, `full`: the names of the overview chart's and report.md's artifacts, for the reader."""
    r = report.record
    best = report.trials[0] if report.trials and report.trials[0].best is not None else None
    lines = [f"**Search `{r.name}`** ({r.status}): {started(report.counts)} trials of {r.options.get('trials', '?')} "
             f"({outcome_line(report).removeprefix('trials: ')}), {report.total_epochs} trial-epochs.", ""]
    if best is None:
        lines.append("No trial reported a score yet.")
    else:
        versus = (f" against **{report.baseline:.4f}** for the no-learning baseline ({r.baseline_rule or 'record'}): "
                  f"{best.best - report.baseline:+.4f}" if report.baseline is not None else " (no baseline recorded)")
        lines.append(f"Best trial `{best.trial_id}`: {PRIMARY_METRIC} **{best.best:.4f}** at epoch {best.best_epoch}"
                     f"{versus}.")
    lines += ["", f"![what mattered]({chart_url})"] if chart_url else []
    lines += ["", f"Chart: artifact `{chart}`; the whole report: `{full}`.", "",
              f"**{CHOICE_SECTION}**: each trial's best {PRIMARY_METRIC}{_importance_words(report)}."]
    for param, groups in report.by_choice.items():
        lines += ["", f"| {param} | trials | best | median |", "|---|---:|---:|---:|",
                  *[f"| {g.choice} | {g.trials} | {_num(g.best)} | {_num(g.median)} |" for g in groups],
                  f"| _no-learning baseline_ | | {_num(report.baseline)} | |"]
    if report.importance is not None and report.importance.values:
        lines += ["", f"**PED-ANOVA importance** ({report.importance.trials} trials, {PRIMARY_METRIC} at epoch "
                      f"{report.rung}): " + ", ".join(f"{k} {v:.2f}" for k, v in report.importance.values.items())]
    return "\n".join(lines) + "\n"


def write_report(path: Path, report: SearchReport | None = None) -> Path:
    """Write `<search folder>/report.md` with its figures beside it; returns report.md's path.

    `report.figures` names the PNGs drawn (importance only when it was computed).
    """
    path = Path(path)
    report = report if report is not None else analyse(path)
    report.figures = write_figures(path, report)
    figure_of = {"Top trials": "parallel", "Hyperparameter importance": "importance", "Optimisation history": "history"}
    parts = [f"# Search {report.record.name}", "", *header_lines(report),
             f"\n_written {time.strftime('%Y-%m-%d %H:%M:%S')} by `labeltune report {report.record.name}`_",
             "", f"![What mattered]({report.figures['overview'].name})"]
    for title, body in sections(report).items():
        parts += ["", f"## {title}", "", "```", *body, "```"]
        figure = report.figures.get(figure_of.get(title, ""))
        if figure is not None:
            parts += ["", f"![{title}]({figure.name})"]
    out = path / REPORT_FILE
    out.write_text("\n".join(parts) + "\n")
    return out


