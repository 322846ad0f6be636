"""Search-level analysis from a search folder: top trials, hyperparameter importance, history, budget.

    report = analyse(search_dir("search-20261128-101500"))
    print("\\n".join(text_lines(report)))             # what `labeltune report NAME` prints
    write_report(report.path, report)                 # <search folder>/report.md + report_*.png beside it
    log_to_run(client, parent_run_id, report.path)    # the same files on the parent run, importance/<param> metrics

Everything is read from the files a search leaves (the record, Tune's `trial_<id>/result.json`,
the kept Optuna study `optuna.db`), so it works on a finished, interrupted or running search
and never imports Ray. `search.tuner._finish` logs it to the parent run at the end of a search
and of each resume.

Importance is Optuna's PED-ANOVA (`get_param_importances`' default evaluator): in Optuna 5 it
partitions the trials of each parameter by whether the parameter was suggested, so the
conditional ones (`lr_<optimizer>`, `width`, `asl_*`) are assessed on the trials that have
them and need no merging; a parameter only a few trials have is left out (MIN_TRIALS_PER_PARAM),
and nothing is computed below MIN_TRIALS_FOR_IMPORTANCE trials. It is computed on a value every
trial has: `val/micro_f1` at the first ASHA rung (epoch = grace period). A stopped trial's final
value comes from an earlier epoch than a finished one's, so Optuna's own trial values would
reward surviving ASHA, not the parameters.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from search.catalog import trial_results, tune_trial_folders
from search.record import STUDY_FILE, TUNE_TRIAL_ATTR, SearchRecord
from search.space import ASL_KNOBS, choices
from search.tuner import ASHA_REDUCTION
from trainable.metrics import PRIMARY_METRIC, PRIMARY_MODE

log = logging.getLogger(__name__)

IMPORTANCE_QUANTILE = 1 / ASHA_REDUCTION
"""PED-ANOVA's target quantile: which parameters put a trial among those the first rung promotes (ASHA keeps
1/ASHA_REDUCTION). With Optuna's default 0.1 the probe below ranked `model` first in 3 of 6 at 30 trials,
1 of 6 at 60."""
MIN_TRIALS_PER_PARAM = 5 * ASHA_REDUCTION
"""trials that must have a parameter before it is assessed (15, about 5 of them in the top third: the least
Optuna's PED-ANOVA notes ask for). A conditional parameter is assessed on the trials that have it, and a
continuous one held by 4-8 trials outranks a real signal by its kernel density alone (probe below)"""
MIN_TRIALS_FOR_IMPORTANCE = 30
"""finished trials with a first-rung score before any importance is computed; below, "too few trials".
Probe (the quick space, random sampling, only the model setting the first-rung score, 6-12 sampler seeds):
PED-ANOVA ranked `model` first in 3 of 6 at 15 trials, 9 of 12 at 20, 11 of 12 at 30 and 6 of 6 at 45
with MIN_TRIALS_PER_PARAM; without it, in 2 of 12 at 30 (an `lr_<optimizer>` or `asl_*` came first)."""
TOP_N = 10
"""trials in the top-trials table"""
HISTORY_MARKS = (0.1, 0.25, 0.5, 0.75, 1.0)
"""shares of the trial-epochs spent at which the text history gives the best so far (the figure has every epoch)"""
REPORT_FILE = "report.md"
FIGURES = {"history": "report_history.png", "parallel": "report_parallel.png", "importance": "report_importance.png"}
"""figure name -> file beside report.md"""
ARTIFACT_DIR = "report"
"""where the report's files go on the parent run"""
FIRST_AXES = ("model", "optimizer", "lr", "loss", "batch_size")
"""the parallel-coordinates axes that come first, when the space searches them; the rest follow in space order,
the conditional ones (`width`, `asl_*`) last, so that their gaps do not cut every other trial's line"""
CONDITIONAL = ("width", *ASL_KNOBS)


@dataclass
class TrialSummary:
    """One Tune trial, from its result.json."""

    trial_id: str
    config: dict
    best: float | None
    """best PRIMARY_METRIC over its epochs (None: it never reported one)"""
    best_epoch: int
    epochs: int
    """the furthest epoch it reached"""
    epochs_run: int
    """epochs it trained (result rows): a resumed trial may train an epoch twice"""
    seconds: float
    rung_score: float | None
    """PRIMARY_METRIC at the first ASHA rung (epoch = grace period)"""


@dataclass
class Importance:
    values: dict[str, float]
    """parameter -> PED-ANOVA importance (sums to 1), most important first; empty when not computed"""
    trials: int
    """the finished trials with a first-rung score it is (or would be) computed on"""
    note: str = ""
    """why it is empty, or what was left out"""
    skipped: dict[str, int] = field(default_factory=dict)
    """parameters not assessed -> how many trials have them (fewer than MIN_TRIALS_PER_PARAM)"""


@dataclass
class Budget:
    """Trial-epochs spent on trials that ran to max epochs and on those stopped before."""

    full_trials: int = 0
    full_epochs: int = 0
    full_s: float = 0.0
    stopped_trials: int = 0
    stopped_epochs: int = 0
    stopped_s: float = 0.0


@dataclass
class SearchReport:
    record: SearchRecord
    rung: int
    """the first ASHA rung, in epochs (the grace period, at most max epochs)"""
    max_epochs: int
    trials: list[TrialSummary]
    """best first; trials without a score last"""
    history: list[tuple[int, float, float, str]]
    """each trial-epoch in arrival order: (trial-epochs so far, its score, best so far, trial id)"""
    importance: Importance
    budget: Budget
    figures: dict[str, Path] = field(default_factory=dict)
    """figure name -> PNG, once write_report drew them"""

    @property
    def path(self) -> Path:
        return self.record.path

    @property
    def baseline(self) -> float | None:
        return self.record.baselines.get(f"baseline/{PRIMARY_METRIC}")


# ---- analysis ------------------------------------------------------------------


def analyse(path: Path) -> SearchReport:
    """Read search folder `path` and compute every section of the report."""
    path = Path(path)
    record = SearchRecord.read(path)
    max_epochs = int(record.options.get("epochs") or record.constants.get("epochs") or 1)
    rung = min(int(record.options.get("grace_period") or 1), max_epochs)
    results = trial_results(path)
    # A stopped search's orphans (folders no Tune snapshot names) are not trials; a running one's are new.
    known = tune_trial_folders(path) if record.status != "running" else None
    if known is not None:
        results = {folder: rows for folder, rows in results.items() if folder in known}
    trials = [summarise_trial(folder, rows, path, rung) for folder, rows in results.items() if rows]
    sign = 1.0 if PRIMARY_MODE == "max" else -1.0
    trials.sort(key=lambda t: (t.best is None, -sign * (t.best or 0.0)))
    return SearchReport(record=record, rung=rung, max_epochs=max_epochs, trials=trials,
                        history=optimisation_history(results), budget=budget(trials, max_epochs),
                        importance=param_importance(path, record.name, {t.trial_id: t for t in trials}, rung))


def summarise_trial(folder: str, rows: list[dict], path: Path, rung: int) -> TrialSummary:
    scored = [r for r in rows if _finite(r.get(PRIMARY_METRIC)) and "training_iteration" in r]
    sign = 1.0 if PRIMARY_MODE == "max" else -1.0
    best = max(scored, key=lambda r: sign * r[PRIMARY_METRIC], default=None)
    at_rung = [r[PRIMARY_METRIC] for r in scored if r["training_iteration"] == rung]
    config = rows[0].get("config")
    if config is None and (path / folder / "params.json").is_file():
        config = json.loads((path / folder / "params.json").read_text())
    return TrialSummary(
        trial_id=str(rows[0].get("trial_id", folder.removeprefix("trial_"))), config=config or {},
        best=float(best[PRIMARY_METRIC]) if best else None, best_epoch=int(best["training_iteration"]) if best else 0,
        epochs=max((int(r.get("training_iteration", 0)) for r in rows), default=0), epochs_run=len(rows),
        seconds=sum(float(r.get("time_this_iter_s", 0.0)) for r in rows),
        rung_score=float(at_rung[-1]) if at_rung else None,  # the last: a resumed trial may report an epoch twice
    )


def optimisation_history(results: dict[str, list[dict]]) -> list[tuple[int, float, float, str]]:
    """Best-so-far PRIMARY_METRIC against trial-epochs spent, every result of every trial in the order it arrived.

    Ordered by `reported_at` (the trainable's wall clock), else Tune's `timestamp` (whole seconds) for
    results written before trials reported it. An epoch without a finite score counts as spent.
    """
    rows = [(r.get("reported_at", r.get("timestamp", 0.0)), r.get("training_iteration", 0), folder, r)
            for folder, rows_ in results.items() for r in rows_]
    rows.sort(key=lambda item: item[:3])
    sign = 1.0 if PRIMARY_MODE == "max" else -1.0
    history, best = [], None
    for spent, (_, _, folder, row) in enumerate(rows, start=1):
        score = row.get(PRIMARY_METRIC)
        if not _finite(score):
            continue
        if best is None or sign * score > sign * best:
            best = float(score)
        history.append((spent, float(score), best, str(row.get("trial_id", folder.removeprefix("trial_")))))
    return history


def budget(trials: list[TrialSummary], max_epochs: int) -> Budget:
    """Split the trial-epochs (and seconds) between trials that reached max_epochs and those stopped before."""
    out = Budget()
    for t in trials:
        if t.epochs >= max_epochs:
            out.full_trials += 1
            out.full_epochs += t.epochs_run
            out.full_s += t.seconds
        else:
            out.stopped_trials += 1
            out.stopped_epochs += t.epochs_run
            out.stopped_s += t.seconds
    return out


def param_importance(path: Path, study_name: str, trials: dict[str, TrialSummary], rung: int) -> Importance:
    """PED-ANOVA importance of each parameter for the first-rung score, on the kept study's finished trials.

    An in-memory study gets the kept study's COMPLETE trials (their params and distributions, so
    conditional parameters stay conditional) with value = the trial's PRIMARY_METRIC at the first rung.
    Left out: warm-start trials (they ran in another search) and trials without a score at that epoch.
    """
    import optuna
    from optuna.trial import TrialState, create_trial

    study_file = Path(path) / STUDY_FILE
    if not study_file.is_file():
        return Importance({}, 0, f"no Optuna study kept in {study_file} (a search from before studies were kept)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        kept = optuna.load_study(study_name=study_name, storage=f"sqlite:///{study_file.resolve()}")
    except KeyError:
        return Importance({}, 0, f"{study_file} holds no study named {study_name}")
    finished = kept.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    warm = [t for t in finished if "warm_start_from" in t.user_attrs]
    ours = [t for t in finished if "warm_start_from" not in t.user_attrs]
    rung_scores = {trial_id: t.rung_score for trial_id, t in trials.items() if t.rung_score is not None}
    scored = [(t, rung_scores[t.user_attrs[TUNE_TRIAL_ATTR]]) for t in ours
              if t.user_attrs.get(TUNE_TRIAL_ATTR) in rung_scores]
    left_out = [f"{len(warm)} warm-start trials (scored in another search)"] if warm else []
    if len(ours) > len(scored):
        left_out.append(f"{len(ours) - len(scored)} finished trials without a score at epoch {rung}")
    left = f"; left out: {', '.join(left_out)}" if left_out else ""
    if len(scored) < MIN_TRIALS_FOR_IMPORTANCE:
        return Importance({}, len(scored), f"too few trials: {len(scored)} finished trials with a score at epoch "
                          f"{rung}, importance needs {MIN_TRIALS_FOR_IMPORTANCE} (below that PED-ANOVA's ranking "
                          f"is mostly noise){left}")
    values = sorted((score for _, score in scored), reverse=PRIMARY_MODE == "max")
    cutoff = values[math.ceil(IMPORTANCE_QUANTILE * len(values)) - 1]
    if values.index(cutoff) + values.count(cutoff) == len(values):  # the "top third" would be every trial
        return Importance({}, len(scored), f"the first-rung scores do not separate the trials "
                          f"({values.count(cutoff)} of {len(values)} tie at {PRIMARY_METRIC} {cutoff:.4f}, "
                          f"epoch {rung}){left}")
    holders = Counter(name for t, _ in scored for name in t.distributions)
    assessed = sorted(name for name, n in holders.items() if n >= MIN_TRIALS_PER_PARAM)
    skipped = {name: n for name, n in sorted(holders.items()) if n < MIN_TRIALS_PER_PARAM}
    notes = [f"not assessed, fewer than {MIN_TRIALS_PER_PARAM} trials have them: "
             + ", ".join(f"{name} ({n})" for name, n in skipped.items())] if skipped else []
    notes += [f"left out: {', '.join(left_out)}"] if left_out else []
    if not assessed:
        return Importance({}, len(scored), "; ".join(notes), skipped)
    study = optuna.create_study(direction="maximize" if PRIMARY_MODE == "max" else "minimize")
    study.add_trials([create_trial(params=t.params, distributions=t.distributions, value=score)
                      for t, score in scored])
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=IMPORTANCE_QUANTILE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some regimes have fewer than 2 trials": an optimizer tried once, expected
        values_by_param = optuna.importance.get_param_importances(study, params=assessed, evaluator=evaluator)
    return Importance(dict(values_by_param), len(scored), "; ".join(notes), skipped)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


# ---- text ----------------------------------------------------------------------


def text_lines(report: SearchReport) -> list[str]:
    """The whole report as terminal lines (report.md holds the same lines, section by section)."""
    lines = header_lines(report)
    for title, body in sections(report).items():
        lines += ["", title, *body]
    return lines


def header_lines(report: SearchReport) -> list[str]:
    r = report.record
    lines = [f"search {r.name} ({r.status}): {len(report.trials)} trials of {r.options.get('trials', '?')}, "
             f"at most {report.max_epochs} epochs each, first ASHA rung at epoch {report.rung}; {report.path}"]
    best = report.trials[0].best if report.trials and report.trials[0].best is not None else None
    if report.baseline is not None:
        versus = f"; best trial {best - report.baseline:+.4f}" if best is not None else ""
        lines.append(f"baseline (no learning, {r.baseline_rule or 'record'}): {PRIMARY_METRIC} "
                     f"{report.baseline:.4f}{versus}")
    return lines


def sections(report: SearchReport) -> dict[str, list[str]]:
    """Section title -> its lines: top trials, importance, history, budget."""
    return {"Top trials": top_lines(report), "Hyperparameter importance": importance_lines(report),
            "Optimisation history": history_lines(report), "Where the budget went": budget_lines(report)}


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
                     f"{model:<20}{optimizer:<10}{f'{lr:.2g}' if lr is not None else '-':>9}  {loss:<24}{batch:>5}")
    if len(report.trials) > TOP_N:
        lines.append(f"  ... and {len(report.trials) - TOP_N} more")
    return lines


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
    """The best so far at fixed shares of the trial-epochs spent (HISTORY_MARKS), and where the best was found."""
    if not report.history:
        return ["no epoch reported a score yet"]
    total = report.budget.full_epochs + report.budget.stopped_epochs
    lines = [f"  {'trial-epochs':>12}  {'best ' + PRIMARY_METRIC:>18}  trial"]
    for mark in HISTORY_MARKS:
        reached = [point for point in report.history if point[0] <= math.ceil(mark * total)]
        if reached:
            spent, _, best, _ = reached[-1]
            holder = next(trial_id for _, score, b, trial_id in reached if b == best and score == best)
            lines.append(f"  {f'{spent} ({mark:.0%})':>12}  {best:>18.4f}  {holder}")
    last = report.history[-1][2]
    found = next(spent for spent, _, best, _ in report.history if best == last)
    lines.append(f"the best was found after {found} of {total} trial-epochs ({found / max(total, 1):.0%})")
    return lines


def budget_lines(report: SearchReport) -> list[str]:
    b = report.budget
    total_epochs, total_s = b.full_epochs + b.stopped_epochs, b.full_s + b.stopped_s
    if not total_epochs:
        return ["no epoch trained yet"]
    why = "ASHA, --target/--plateau, an error or an interrupt"
    if report.record.status == "running":
        why += ", or still running"
    rows = ((f"ran to {report.max_epochs} epochs", b.full_trials, b.full_epochs, b.full_s, ""),
            ("stopped before", b.stopped_trials, b.stopped_epochs, b.stopped_s, f"  ({why})"))
    width = max(len(row[0]) for row in rows)
    return [f"  {label + ':':<{width + 1}} {n:>4} trials {epochs:>6} trial-epochs ({epochs / total_epochs:>4.0%}) "
            f"{seconds / 60:8.1f} min{note}" for label, n, epochs, seconds, note in rows] + [
        f"  in all: {len(report.trials)} trials, {total_epochs} trial-epochs, {total_s / 60:.1f} trial-minutes"]


def trial_lr(config: dict) -> float | None:
    """The learning rate a trial trained with: `lr_<its optimizer>` (what space.to_train_config makes `lr`)."""
    value = config.get(f"lr_{config.get('optimizer', 'adamw')}", config.get("lr"))
    return float(value) if _finite(value) else None


def _num(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


# ---- figures -------------------------------------------------------------------


@dataclass
class Axis:
    """One parallel-coordinates axis: a parameter's choices, or its range (log or linear)."""

    name: str
    choices: list | None = None
    low: float = 0.0
    high: float = 1.0
    log: bool = False

    def position(self, value) -> float:
        """Where `value` sits on the axis, 0..1; NaN (a gap in the line) where the trial has no such parameter."""
        if self.choices is not None:
            if value not in self.choices:
                return math.nan
            return 0.5 if len(self.choices) == 1 else self.choices.index(value) / (len(self.choices) - 1)
        if not _finite(value) or (self.log and value <= 0):
            return math.nan
        low, high, v = (self.low, self.high, value)
        if self.log:
            low, high, v = math.log10(low), math.log10(high), math.log10(v)
        return 0.5 if high == low else (v - low) / (high - low)

    def ticks(self) -> list[tuple[float, str]]:
        if self.choices is not None:
            return [(self.position(c), str(c)) for c in self.choices]
        return [(0.0, f"{self.low:.2g}"), (1.0, f"{self.high:.2g}")]


def parallel_axes(space: dict) -> list[Axis]:
    """An axis per searched parameter of `space`, the `lr_<optimizer>` ranges merged into one log `lr` axis."""
    axes = {}
    lr_bounds = []
    for name, domain in space.items():
        if name.startswith("lr_"):
            if name.removeprefix("lr_") in choices(space.get("optimizer", "adamw")):
                lr_bounds += [domain["low"], domain["high"]] if isinstance(domain, dict) else choices(domain)
        elif isinstance(domain, list) and len(domain) > 1:
            axes[name] = Axis(name, choices=sorted(domain) if all(_finite(c) for c in domain) else list(domain))
        elif isinstance(domain, dict):
            axes[name] = Axis(name, low=float(domain["low"]), high=float(domain["high"]), log=bool(domain.get("log")))
    if len(set(lr_bounds)) > 1:
        low, high = float(min(lr_bounds)), float(max(lr_bounds))
        axes["lr"] = Axis("lr", low=low, high=high, log=low > 0)
    first = [axes.pop(name) for name in FIRST_AXES if name in axes]
    last = [axes.pop(name) for name in CONDITIONAL if name in axes]
    return first + list(axes.values()) + last


def axis_value(config: dict, axis: Axis):
    return trial_lr(config) if axis.name == "lr" else config.get(axis.name)


def plot_parallel(report: SearchReport, path: Path) -> Path:
    """Parallel coordinates of the trials (axes: parallel_axes), coloured by best score, the best drawn on top."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from trainable.plots import new_figure, save_figure

    axes = parallel_axes(report.record.space)
    scored = sorted((t for t in report.trials if t.best is not None), key=lambda t: t.best,
                    reverse=PRIMARY_MODE != "max")
    fig = new_figure(max(8.0, 1.4 * len(axes)), 5)
    ax = fig.subplots()
    cmap = colormaps["viridis"]
    bests = [t.best for t in scored] or [0.0, 1.0]
    norm = Normalize(min(bests), max(bests) if max(bests) > min(bests) else min(bests) + 1e-6)
    for t in scored:
        ax.plot(range(len(axes)), [a.position(axis_value(t.config, a)) for a in axes], color=cmap(norm(t.best)),
                alpha=0.8, linewidth=1.5, marker="o", markersize=3)
    for i, a in enumerate(axes):
        ax.axvline(i, color="black", linewidth=0.8)
        for pos, label in a.ticks():
            ax.text(i + 0.04, pos, label, fontsize=7, va="center")
    ax.set_xticks(range(len(axes)), [f"{a.name} (log)" if a.log else a.name for a in axes])
    ax.set_yticks([])
    ax.set_xlim(-0.2, max(len(axes) - 0.4, 0.8))
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"{report.record.name}: {len(scored)} trials; gaps: the parameter does not apply")
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=f"best {PRIMARY_METRIC}")
    return save_figure(fig, path)


def plot_history(report: SearchReport, path: Path) -> Path:
    """Every epoch's score and the best so far against trial-epochs spent, with the no-learning baseline."""
    from trainable.plots import new_figure, save_figure

    fig = new_figure(8, 4.5)
    ax = fig.subplots()
    if report.history:
        spent, scores, best, _ = zip(*report.history)
        ax.scatter(spent, scores, s=8, color="tab:gray", alpha=0.5, label="an epoch's score")
        ax.step(spent, best, where="post", color="tab:blue", linewidth=2, label="best so far")
    if report.baseline is not None:
        ax.axhline(report.baseline, color="black", linestyle="--", label=f"no-learning baseline {report.baseline:.3f}")
    ax.set_xlabel("trial-epochs spent (in the order results arrived)")
    ax.set_ylabel(PRIMARY_METRIC)
    ax.set_title(f"{report.record.name}: optimisation history")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    return save_figure(fig, path)


def plot_importance(report: SearchReport, path: Path) -> Path:
    from trainable.plots import new_figure, save_figure

    names, values = list(report.importance.values), list(report.importance.values.values())
    fig = new_figure(7, 1.2 + 0.35 * len(names))
    ax = fig.subplots()
    ax.barh(range(len(names)), values, color="tab:blue")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("PED-ANOVA importance (sums to 1)")
    ax.set_title(f"what puts a trial in the top {IMPORTANCE_QUANTILE:.0%} at epoch {report.rung} "
                 f"({report.importance.trials} trials)")
    return save_figure(fig, path)


# ---- files and MLflow ----------------------------------------------------------


def write_report(path: Path, report: SearchReport | None = None) -> Path:
    """Write `<search folder>/report.md` with its figures beside it; returns report.md's path.

    `report.figures` names the PNGs drawn (importance only when it was computed).
    """
    path = Path(path)
    report = report if report is not None else analyse(path)
    report.figures = {"history": plot_history(report, path / FIGURES["history"]),
                      "parallel": plot_parallel(report, path / FIGURES["parallel"])}
    if report.importance.values:
        report.figures["importance"] = plot_importance(report, path / FIGURES["importance"])
    figure_of = {"Top trials": "parallel", "Hyperparameter importance": "importance", "Optimisation history": "history"}
    parts = [f"# Search {report.record.name}", "", *header_lines(report),
             f"\n_written {time.strftime('%Y-%m-%d %H:%M:%S')} by `labeltune report {report.record.name}`_"]
    for title, body in sections(report).items():
        parts += ["", f"## {title}", "", "```", *body, "```"]
        figure = report.figures.get(figure_of.get(title, ""))
        if figure is not None:
            parts += ["", f"![{title}]({figure.name})"]
    out = path / REPORT_FILE
    out.write_text("\n".join(parts) + "\n")
    return out


def log_to_run(client, run_id: str, path: Path) -> SearchReport:
    """Analyse search folder `path`, write its report, log the files and `importance/<param>` metrics on `run_id`.

    The metrics' step is the number of trials importance was computed on, so each resume adds a point.
    """
    from mlflow.entities import Metric

    report = analyse(path)
    written = write_report(path, report)
    for file in (written, *report.figures.values()):
        client.log_artifact(run_id, str(file), artifact_path=ARTIFACT_DIR)
    if report.importance.values:
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(f"importance/{name}", float(value), now, report.importance.trials)
                                          for name, value in report.importance.values.items()])
    log.info("search report of %s logged on run %s (%s)", report.record.name, run_id, written)
    return report
