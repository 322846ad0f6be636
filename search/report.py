"""Search-level analysis from a search folder: top trials, hyperparameter importance, history, budget.

    report = analyse(search_dir("search-20261128-101500"))
    report.by_choice["model"]                         # what each model scored (trials, best, median)
    write_figures(report.path, report)                # report_*.png beside report.md (report_text.write_report)
    log_to_run(client, parent_run_id, report.path)    # search/tracking/report.py: the parent run's files and note

This file holds the analysis (the dataclasses, analyse) and the figures (plot_*, write_figures);
search/report_text.py the text and report.md, search/tracking/report.py the MLflow logging.

Everything is read from the files a search leaves (the record, Tune's `trial_<id>/result.json`,
the kept Optuna study `optuna.db`), so it works on a finished, interrupted or running search
and needs no Ray cluster (Ray is imported, only through search/asha.py, for ASHA's
reduction factor). `search.run._finish` logs it to the parent run at the end of a
search and of each resume.

Importance is Optuna's PED-ANOVA (`get_param_importances`' default evaluator): in Optuna 5 it
partitions the trials of each parameter by whether the parameter was suggested, so the
conditional ones (`lr_<optimizer>`, `width`, `asl_*`) are assessed on the trials that have
them and need no merging; a parameter only a few trials have is left out (MIN_TRIALS_PER_PARAM),
and nothing is computed below MIN_TRIALS_FOR_IMPORTANCE trials. It is computed on a value every
trial has: `val/micro_f1` at the first ASHA rung (epoch = grace period). A stopped trial's final
value comes from an earlier epoch than a finished one's, so Optuna's own trial values would
reward surviving ASHA, not the parameters.

A trial's outcome (search/outcome.py's words: finished, stopped early, ended by the stop,
failed, never ran, unfinished) is what the kept study holds for it, matched by its Tune trial
id: the outcome the driver decided when it ended (the study's OUTCOMES_ATTR, search.study.settle), else one read
from the trial's Optuna state (a search still running, or from before outcomes were kept):
COMPLETE or PRUNED is finished when it ran every epoch, else stopped early; FAIL is failed;
RUNNING is unfinished. A trial the study does not hold gets its outcome from its epochs. The
trials Optuna holds as COMPLETE or PRUNED are `completed` (finished, stopped early or ended by
the stop): importance is computed on them. Warm-start trials ran in another search and are not
counted. A damaged study file stops the report with one line (search.record.load_kept_study)
before anything is written.

What each choice scored (`by_choice`) answers "what mattered" at any trial count, importance or
not: per model, optimizer and loss, its trials and the best and median of their best scores. A
trial ASHA stopped has its best from fewer epochs than a finished one: the figures draw the two
apart (filled: ran every epoch; hollow: fewer).
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from search.catalog import trial_results, tune_trial_ids
from search.outcome import OUTCOMES, OUTCOMES_ATTR
from search.record import STUDY_FILE, TUNE_TRIAL_ATTR, WARM_FROM, SearchRecord, load_kept_study
from search.space import ASL_KNOBS, choices, chosen_lr, lr_optimizer
from trainable import timing
from trainable.timing import TimeSummary
from search.asha import REDUCTION as ASHA_REDUCTION
from trainable.config import PRIMARY_SIGN
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
"""completed trials with a first-rung score before any importance is computed; below, "too few trials".
Probe (the quick space, random sampling, only the model setting the first-rung score, 6-12 sampler seeds):
PED-ANOVA ranked `model` first in 3 of 6 at 15 trials, 9 of 12 at 20, 11 of 12 at 30 and 6 of 6 at 45
with MIN_TRIALS_PER_PARAM; without it, in 2 of 12 at 30 (an `lr_<optimizer>` or `asl_*` came first)."""
STUDY_CONSEQUENCE = ("without it the report has no importance and takes each trial's outcome from its epochs "
                     "(a failed trial then counts as stopped early)")
FIGURES = {"overview": "report_overview.png", "history": "report_history.png", "parallel": "report_parallel.png",
           "importance": "report_importance.png"}
"""figure name -> file beside report.md"""
BY_CHOICE = ("model", "optimizer", "loss")
"""the categorical parameters whose choices the report scores one by one (`by_choice`, the overview's strips)"""
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
    last: float | None = None
    """PRIMARY_METRIC of its last reported epoch: what the kept study holds as its value (Optuna is told the last)"""
    outcome: str = "finished"
    """one of search/outcome.py's OUTCOMES, as the kept study holds it (the module docstring says how)"""
    time: TimeSummary | None = None
    """where its wall time went (its rows' `time/` keys); None for a trial that never reported"""


@dataclass
class Importance:
    values: dict[str, float]
    """parameter -> PED-ANOVA importance (sums to 1), most important first; empty when not computed"""
    trials: int
    """the completed trials with a first-rung score it is (or would be) computed on"""
    note: str = ""
    """why it is empty, or what was left out"""
    skipped: dict[str, int] = field(default_factory=dict)
    """parameters not assessed -> how many trials have them (fewer than MIN_TRIALS_PER_PARAM)"""


@dataclass
class ChoiceScores:
    """The trials that had one choice of a categorical parameter (a model, an optimizer, a loss), by best score."""

    param: str
    choice: str
    scores: list[float]
    """each such trial's best PRIMARY_METRIC, best first"""
    full: list[bool] = field(default_factory=list)
    """beside each score: whether its trial ran every epoch (else ASHA, a stop or an error cut it short)"""

    @property
    def trials(self) -> int:
        return len(self.scores)

    @property
    def best(self) -> float | None:
        return self.scores[0] if self.scores else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.scores) if self.scores else None


@dataclass
class Spent:
    """What the trials of one outcome cost."""

    trials: int = 0
    epochs: int = 0
    """trial-epochs trained (result rows: a resumed trial may train an epoch twice)"""
    seconds: float = 0.0


@dataclass
class ModelTime:
    """Where the wall time of one model's trials went, summed over them (trainable/timing.py's phases)."""

    model: str
    trials: int
    wall_s: float
    phases: dict[str, float]
    """timing.EPOCH_PHASES key -> seconds summed over the trials"""
    epoch_s: float | None
    """the median of the trials' median epoch seconds"""

    @property
    def train_share(self) -> float | None:
        return self.phases.get(timing.TRAIN, 0.0) / self.wall_s if self.wall_s > 0 else None


@dataclass
class SearchReport:
    record: SearchRecord
    rung: int
    """the first ASHA rung, in epochs (the grace period, at most max epochs)"""
    max_epochs: int
    trials: list[TrialSummary]
    """best first; trials without a score last (one the study holds that never reported: no epochs)"""
    history: list[tuple[int, float, float, str]]
    """each scored trial-epoch in arrival order: (trial-epochs so far, its score, best so far, trial id)"""
    importance: Importance
    budget: dict[str, Spent]
    """outcome (search/outcome.py's OUTCOMES, each present) -> what its trials cost"""
    lost: int = 0
    """trials of the kept study that Tune's saved state does not hold (a driver killed between snapshots)"""
    study_kept: bool = True
    """whether the outcomes come from a kept study (False: from epochs)"""
    figures: dict[str, Path] = field(default_factory=dict)
    """figure name -> PNG, once write_report drew them"""
    time_by_model: list[ModelTime] = field(default_factory=list)
    """per model, where its trials' wall time went (training first); empty for trials run before timing existed"""
    by_choice: dict[str, list[ChoiceScores]] = field(default_factory=dict)
    """BY_CHOICE parameter -> each of its choices (the space's, and any other a trial had), the best median first"""

    @property
    def path(self) -> Path:
        return self.record.path

    @property
    def baseline(self) -> float | None:
        return self.record.baselines.get(f"baseline/{PRIMARY_METRIC}")

    @property
    def total_epochs(self) -> int:
        return sum(spent.epochs for spent in self.budget.values())

    @property
    def counts(self) -> dict[str, int]:
        """Trials per outcome (every one of OUTCOMES), as the record's `counts` holds them."""
        return {outcome: self.budget[outcome].trials for outcome in OUTCOMES}


# ---- analysis ------------------------------------------------------------------


def analyse(path: Path) -> SearchReport:
    """Read search folder `path` and compute every section of the report."""
    path = Path(path)
    record = SearchRecord.read(path)
    max_epochs = int(record.options.get("epochs") or record.constants.get("epochs") or 1)
    rung = min(int(record.options.get("grace_period") or 1), max_epochs)
    study = load_kept_study(path, record.name, STUDY_CONSEQUENCE) if (path / STUDY_FILE).is_file() else None
    kept = study.get_trials(deepcopy=False) if study is not None else None
    decided = study.user_attrs.get(OUTCOMES_ATTR, {}) if study is not None else {}
    results = trial_results(path)
    # A stopped search's orphans (folders no Tune snapshot names) are not trials; a running one's are new.
    known = tune_trial_ids(path) if record.status != "running" else None
    if known is not None:
        results = {folder: rows for folder, rows in results.items() if folder.removeprefix("trial_") in known}
    trials = [summarise_trial(folder, rows, path, rung) for folder, rows in results.items() if rows]
    lost = assign_outcomes(trials, kept, known, max_epochs, decided)
    sign = PRIMARY_SIGN
    trials.sort(key=lambda t: (t.best is None, -sign * (t.best or 0.0)))
    return SearchReport(record=record, rung=rung, max_epochs=max_epochs, trials=trials,
                        history=optimisation_history(results), budget=budget(trials),
                        importance=param_importance(kept, path / STUDY_FILE, {t.trial_id: t for t in trials}, rung),
                        lost=lost, study_kept=kept is not None, time_by_model=time_by_model(trials),
                        by_choice=choice_scores(trials, record.space, max_epochs))


def assign_outcomes(trials: list[TrialSummary], kept: list | None, known: set[str] | None, max_epochs: int,
                    decided: dict | None = None) -> int:
    """Give each trial its outcome from the kept study; add the study's trials that never reported.

    `kept`: the kept study's trials (None: no study, outcomes from epochs); `known`: the Tune trial
    ids of Tune's saved state (None: every trial the study holds counts). Returns how many of the
    study's own trials Tune's saved state does not hold (lost by a killed driver; not counted).
    """
    from optuna.trial import TrialState

    own = [t for t in kept or [] if WARM_FROM not in t.user_attrs]
    by_id = {str(t.user_attrs[TUNE_TRIAL_ATTR]): t for t in own if TUNE_TRIAL_ATTR in t.user_attrs}  # the last wins
    counted = {tune_id: t for tune_id, t in by_id.items() if known is None or tune_id in known}
    reported = {t.trial_id for t in trials}
    trials += [TrialSummary(trial_id=tune_id, config=dict(t.params), best=None, best_epoch=0, epochs=0, epochs_run=0,
                            seconds=0.0, rung_score=None) for tune_id, t in counted.items() if tune_id not in reported]
    for summary in trials:
        trial = counted.get(summary.trial_id)
        state = trial.state if trial is not None else None
        outcome = (decided or {}).get(summary.trial_id, {}).get("outcome")
        if trial is not None and outcome in OUTCOMES:
            summary.outcome = outcome  # what the driver decided when it ended (search/study.py settle)
        elif state == TrialState.FAIL:
            summary.outcome = "failed"
        elif state in (TrialState.RUNNING, TrialState.WAITING):
            summary.outcome = "unfinished"
        else:  # COMPLETE, PRUNED (KeptOptunaSearch's pruned_below), or not in the study
            summary.outcome = "finished" if summary.epochs >= max_epochs else "stopped_early"
    return len(by_id) - len(counted)  # not the study's trials without a Tune id: queued recipes that never ran


def summarise_trial(folder: str, rows: list[dict], path: Path, rung: int) -> TrialSummary:
    scored = [r for r in rows if _finite(r.get(PRIMARY_METRIC)) and "training_iteration" in r]
    sign = PRIMARY_SIGN
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
        last=float(scored[-1][PRIMARY_METRIC]) if scored else None,
        time=timing.summarise(rows) if timing.timed_rows(rows) else None,
    )


def time_by_model(trials: list[TrialSummary]) -> list[ModelTime]:
    """Per model (most wall time first), its timed trials' wall and phase seconds summed, and their median epoch."""
    groups: dict[str, list[TimeSummary]] = {}
    for trial in trials:
        if trial.time is not None and trial.time.wall_s > 0:
            groups.setdefault(str(trial.config.get("model", "?")), []).append(trial.time)
    out = []
    for model, times in groups.items():
        epochs = [t.epoch_s for t in times if t.epoch_s is not None]
        out.append(ModelTime(model=model, trials=len(times), wall_s=sum(t.wall_s for t in times),
                             phases={key: sum(t.totals.get(key, 0.0) for t in times) for key in timing.EPOCH_PHASES},
                             epoch_s=statistics.median(epochs) if epochs else None))
    return sorted(out, key=lambda m: -m.wall_s)


def choice_scores(trials: list[TrialSummary], space: dict, max_epochs: int) -> dict[str, list[ChoiceScores]]:
    """Per BY_CHOICE parameter, each choice's scored trials: the space's choices (none tried: no scores) and any
    other a trial's config holds (a warm start, a changed space), the best median first, untried ones last."""
    out = {}
    for param in BY_CHOICE:
        groups = {str(c): ChoiceScores(param, str(c), []) for c in choices(space.get(param, []))}
        scored = sorted((t for t in trials if t.best is not None and param in t.config),
                        key=lambda t: -PRIMARY_SIGN * t.best)
        for t in scored:
            group = groups.setdefault(str(t.config[param]), ChoiceScores(param, str(t.config[param]), []))
            group.scores.append(t.best)
            group.full.append(t.epochs >= max_epochs)
        if groups:
            out[param] = sorted(groups.values(), key=lambda g: (g.median is None, -PRIMARY_SIGN * (g.median or 0.0)))
    return out


def optimisation_history(results: dict[str, list[dict]]) -> list[tuple[int, float, float, str]]:
    """Best-so-far PRIMARY_METRIC against trial-epochs spent, every result of every trial in the order it arrived.

    Ordered by `reported_at` (the trainable's wall clock), else Tune's `timestamp` (whole seconds) for
    results written before trials reported it. An epoch without a finite score counts as spent.
    """
    rows = [(r.get("reported_at", r.get("timestamp", 0.0)), r.get("training_iteration", 0), folder, r)
            for folder, rows_ in results.items() for r in rows_]
    rows.sort(key=lambda item: item[:3])
    sign = PRIMARY_SIGN
    history, best = [], None
    for spent, (_, _, folder, row) in enumerate(rows, start=1):
        score = row.get(PRIMARY_METRIC)
        if not _finite(score):
            continue
        if best is None or sign * score > sign * best:
            best = float(score)
        history.append((spent, float(score), best, str(row.get("trial_id", folder.removeprefix("trial_")))))
    return history


def budget(trials: list[TrialSummary]) -> dict[str, Spent]:
    """Split the trials, trial-epochs and seconds by outcome (every one of OUTCOMES present)."""
    out = {outcome: Spent() for outcome in OUTCOMES}
    for t in trials:
        spent = out[t.outcome]
        spent.trials += 1
        spent.epochs += t.epochs_run
        spent.seconds += t.seconds
    return out


def param_importance(kept: list | None, study_file: Path, trials: dict[str, TrialSummary], rung: int) -> Importance:
    """PED-ANOVA importance of each parameter for the first-rung score, on the kept study's completed trials.

    `kept`: the kept study's trials (None: no study file). An in-memory study gets its completed
    trials (COMPLETE or PRUNED; their params and distributions, so conditional parameters stay
    conditional) with value = the trial's PRIMARY_METRIC at the first rung. Left out: warm-start
    trials (they ran in another search) and trials without a score at that epoch.
    """
    import optuna
    from optuna.trial import TrialState, create_trial

    if kept is None:
        return Importance({}, 0, f"no Optuna study kept in {study_file} (a search from before studies were kept)")
    finished = [t for t in kept if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    warm = [t for t in finished if WARM_FROM in t.user_attrs]
    ours = [t for t in finished if WARM_FROM not in t.user_attrs]
    rung_scores = {trial_id: t.rung_score for trial_id, t in trials.items() if t.rung_score is not None}
    scored = [(t, rung_scores[t.user_attrs[TUNE_TRIAL_ATTR]]) for t in ours
              if t.user_attrs.get(TUNE_TRIAL_ATTR) in rung_scores]
    left_out = [f"{len(warm)} warm-start trials (scored in another search)"] if warm else []
    if len(ours) > len(scored):
        left_out.append(f"{len(ours) - len(scored)} completed trials without a score at epoch {rung}")
    left = f"; left out: {', '.join(left_out)}" if left_out else ""
    if len(scored) < MIN_TRIALS_FOR_IMPORTANCE:
        return Importance({}, len(scored), f"too few trials: {len(scored)} completed trials with a score at epoch "
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


def trial_lr(config: dict) -> float | None:
    """The learning rate a trial trained with: `lr_<its optimizer>` (what space.to_train_config makes `lr`)."""
    value = chosen_lr(config)
    return float(value) if _finite(value) else None


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


def parallel_axes(space: dict, configs: list[dict] | None = None) -> list[Axis]:
    """An axis per searched parameter of `space`, the `lr_<optimizer>` ranges merged into one log `lr` axis.

    `configs` (the trials drawn): only the axes at least one of them has a value on (no `asl_*` axes
    when no trial used the asymmetric loss, no `width` when none trained a small CNN).
    """
    axes = {}
    lr_bounds = []
    for name, domain in space.items():
        if lr_optimizer(name) is not None:
            if lr_optimizer(name) in choices(space.get("optimizer", "adamw")):
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
    ordered = first + list(axes.values()) + last
    if configs is None:
        return ordered
    return [a for a in ordered if any(axis_value(config, a) is not None for config in configs)]


def axis_value(config: dict, axis: Axis):
    return trial_lr(config) if axis.name == "lr" else config.get(axis.name)


def plot_parallel(report: SearchReport, path: Path) -> Path:
    """Parallel coordinates of the trials (axes: parallel_axes), coloured by best score, the best drawn on top."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from trainable.plots import new_figure, save_figure

    scored = sorted((t for t in report.trials if t.best is not None), key=lambda t: t.best,
                    reverse=PRIMARY_MODE != "max")
    axes = parallel_axes(report.record.space, [t.config for t in scored])
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
    ax.set_title(f"{report.record.name}: {len(scored)} trials; gaps: the parameter does not apply; "
                 f"{_baseline_words(report)}")
    bar = fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=f"best {PRIMARY_METRIC}")
    if report.baseline is not None and norm.vmin <= report.baseline <= norm.vmax:
        bar.ax.axhline(report.baseline, color="black", linestyle="--", linewidth=2)
    return save_figure(fig, path)


def _baseline_words(report: SearchReport) -> str:
    return (f"no-learning baseline {report.baseline:.4f}" if report.baseline is not None
            else "no baseline recorded (a search from before baselines)")


def plot_history(report: SearchReport, path: Path) -> Path:
    """Every epoch's score and the best so far against trial-epochs spent, with the no-learning baseline."""
    from trainable.plots import new_figure, save_figure

    fig = new_figure(8, 4.5)
    draw_history(fig.subplots(), report)
    return save_figure(fig, path)


def draw_history(ax, report: SearchReport) -> None:
    """On `ax`: each epoch's score (grey), the best so far (a blue step) and the no-learning baseline (dashed)."""
    if report.history:
        spent, scores, best, _ = zip(*report.history)
        ax.scatter(spent, scores, s=8, color="tab:gray", alpha=0.5, label="an epoch's score")
        ax.step(spent, best, where="post", color="tab:blue", linewidth=2, label="best so far")
    _baseline_line(ax, report)
    ax.set_xlabel("trial-epochs spent (in the order results arrived)")
    ax.set_ylabel(PRIMARY_METRIC)
    ax.set_title(f"{report.record.name}: best {PRIMARY_METRIC} so far")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)


def _baseline_line(ax, report: SearchReport) -> None:
    """The no-learning baseline across `ax`, dashed and named on the line (or a note that the record has none)."""
    if report.baseline is None:
        ax.text(0.01, 0.01, "no baseline recorded", transform=ax.transAxes, fontsize=7, va="bottom")
        return
    ax.axhline(report.baseline, color="black", linestyle="--")
    ax.text(0.01, report.baseline, f" no-learning baseline {report.baseline:.3f}", transform=ax.get_yaxis_transform(),
            fontsize=7, va="bottom")


def plot_overview(report: SearchReport, path: Path) -> Path:
    """What mattered, on one page: the best so far against trial-epochs, the score against log10(lr), and each
    trial's best score by model, by optimizer and by loss (draw_strip); every panel with the no-learning baseline."""
    from trainable.plots import new_figure, save_figure

    fig = new_figure(9, 7)  # 900 px: the MLflow run page's description in a 1500-px window, its assistant open
    grid = fig.add_gridspec(2, len(BY_CHOICE))
    draw_history(fig.add_subplot(grid[0, :-1]), report)
    draw_lr(fig.add_subplot(grid[0, -1]), report)
    for column, param in enumerate(BY_CHOICE):
        draw_strip(fig.add_subplot(grid[1, column]), report, param)
    scored = sum(t.best is not None for t in report.trials)
    fig.suptitle(f"search {report.record.name} ({report.record.status}): {scored} trials with a score, "
                 f"{report.total_epochs} trial-epochs\nfilled: the trial ran all {report.max_epochs} epochs; "
                 f"hollow: fewer (its best is from fewer epochs)", fontsize=10)
    return save_figure(fig, path)


def draw_lr(ax, report: SearchReport) -> None:
    """On `ax`: each trial's best score against log10 of the learning rate it trained with, coloured by optimizer
    (in the space's order, so a resume keeps the colours)."""
    from matplotlib.lines import Line2D

    colours = {str(c): f"C{i % 10}" for i, c in enumerate(choices(report.record.space.get("optimizer", [])))}
    shown = {}
    for t in report.trials:
        lr = trial_lr(t.config)
        if t.best is None or lr is None or lr <= 0:
            continue
        name = str(t.config.get("optimizer", "?"))
        colour = shown.setdefault(name, colours.get(name, "tab:gray"))
        ax.scatter(math.log10(lr), t.best, s=30, edgecolors=colour,
                   facecolors=colour if t.epochs >= report.max_epochs else "none")
    _baseline_line(ax, report)
    if shown:
        ax.legend([Line2D([], [], marker="o", linestyle="", color=c) for c in shown.values()], list(shown),
                  fontsize=8, loc="best", title="optimizer", title_fontsize=8)
    ax.set_xlabel("log10(lr)")
    ax.set_ylabel(f"best {PRIMARY_METRIC}")
    ax.set_title(f"best {PRIMARY_METRIC} against log10(lr)", fontsize=9)
    ax.grid(alpha=0.3)


def draw_strip(ax, report: SearchReport, param: str) -> None:
    """On `ax`: one column of points per choice of `param` (each trial's best), its median as a bar, the baseline."""
    groups = report.by_choice.get(param, [])
    for x, group in enumerate(groups):
        n = group.trials
        offsets = [0.0] if n == 1 else [-0.25 + 0.5 * k / (n - 1) for k in range(n)]
        for dx, score, full in zip(offsets, group.scores, group.full):
            ax.scatter(x + dx, score, s=30, edgecolors="tab:blue", facecolors="tab:blue" if full else "none")
        if group.median is not None:
            ax.hlines(group.median, x - 0.35, x + 0.35, color="tab:red", linewidth=2)
    _baseline_line(ax, report)
    names = [f"{g.choice}\n{g.trials} trial{'s' * (g.trials != 1)}" for g in groups]
    ax.set_xticks(range(len(groups)), names, fontsize=8, rotation=20 if any(len(g.choice) > 10 for g in groups) else 0)
    ax.set_xlim(-0.6, max(len(groups), 1) - 0.4)
    ax.set_ylabel(f"best {PRIMARY_METRIC}")
    ax.set_title(f"each trial's best by {param} (red: median)", fontsize=9)
    ax.grid(alpha=0.3, axis="y")


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


def write_figures(path: Path, report: SearchReport) -> dict[str, Path]:
    """Draw the report's figures into search folder `path` (FIGURES); importance only when it was computed."""
    figures = {"overview": plot_overview(report, path / FIGURES["overview"]),
               "history": plot_history(report, path / FIGURES["history"]),
               "parallel": plot_parallel(report, path / FIGURES["parallel"])}
    if report.importance.values:
        figures["importance"] = plot_importance(report, path / FIGURES["importance"])
    return figures
