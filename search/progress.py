"""A condensed live trial table for the terminal, printed by the driver while a search runs.

Tune's own reporter prints every parameter of every trial; this prints one status line
and the running trials, at most every `every_s` seconds and whenever a trial ends.

The best line covers every trial Tune holds, the ones a resume restored from Tune's saved
state included: each trial's best comes from Tune's per-trial metric summary (trial_best),
which the saved state keeps, not only from the results this driver has seen.
"""

from __future__ import annotations

import math
import shutil
import time

import click
from ray.tune import Callback

from search.space import chosen_lr
from trainable.config import better
from trainable.metrics import PRIMARY_METRIC, PRIMARY_MODE

SHOWN_PARAMS = ("model", "optimizer", "loss", "batch_size")


def describe(config: dict) -> str:
    """A trial's config in a few words: model, optimizer@lr, loss, batch size."""
    opt = config.get("optimizer", "?")
    lr = chosen_lr(config)
    lr_text = f"@{lr:.2g}" if isinstance(lr, float) else ""
    return f"{config.get('model', '?')} {opt}{lr_text} {config.get('loss', '?')} bs{config.get('batch_size', '?')}"


def trial_best(trial) -> float | None:
    """A Tune trial's best PRIMARY_METRIC so far (None before its first score).

    Ray 2.x's `Trial.metric_analysis[metric]` holds "max"/"min"/"last" over every result the trial
    reported and is saved in Tune's experiment state, so a trial restored by a resume has it
    before it reports again (tests/test_progress.py fails loudly if it goes away); its
    `last_result` is the fallback.
    """
    value = ((getattr(trial, "metric_analysis", None) or {}).get(PRIMARY_METRIC) or {}).get(PRIMARY_MODE)
    if not _finite(value):
        value = (getattr(trial, "last_result", None) or {}).get(PRIMARY_METRIC)
    return float(value) if _finite(value) else None


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _better(a: float, b: float) -> bool:
    return better(a, b)


class LiveTable(Callback):
    def __init__(self, max_epochs: int, trials: int, every_s: float = 15.0) -> None:
        self.max_epochs = max_epochs
        self.trials = trials
        self.every_s = every_s
        self.last_print = 0.0
        self.best: tuple[float, str, str] | None = None
        self.started = time.time()
        self.latest: dict[str, dict] = {}
        """trial id -> its newest result: Tune calls on_trial_result before it updates trial.last_result"""

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.latest[trial.trial_id] = result
        value = result.get(PRIMARY_METRIC)
        if _finite(value):
            self._offer(float(value), trial)
        self._maybe_print(trials)

    def _offer(self, value: float, trial) -> None:
        if self.best is None or _better(value, self.best[0]):
            self.best = (value, trial.trial_id, describe(trial.config))

    def _update_best(self, trials) -> None:
        """The best over every trial Tune holds (restored ones included), not only the results seen here."""
        for t in trials:
            value = trial_best(t)
            if value is not None:
                self._offer(value, t)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._maybe_print(trials, force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        click.echo(f"trial {trial.trial_id} failed: {describe(trial.config)}", err=True)
        self._maybe_print(trials, force=True)

    def _maybe_print(self, trials, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last_print < self.every_s:
            return
        self.last_print = now
        self._update_best(trials)
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.status] = counts.get(t.status, 0) + 1
        status = ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items()))
        width = terminal_width()
        click.echo(fit(f"[{now - self.started:6.0f}s] {len(trials)}/{self.trials} trials: {status}", width))
        if self.best:
            click.echo(fit(f"    best {PRIMARY_METRIC} {self.best[0]:.4f}  {self.best[1]}  {self.best[2]}", width))
        for t in trials:
            if t.status == "RUNNING":
                last = newest(t.last_result or {}, self.latest.get(t.trial_id, {}))
                epoch = last.get("training_iteration", 0)
                score = last.get(PRIMARY_METRIC)
                score_text = f"{score:.4f}" if isinstance(score, float) else "-"
                click.echo(fit(f"    {t.trial_id:<10} epoch {epoch}/{self.max_epochs}  {score_text:>7}  {describe(t.config)}",
                               width))


def newest(*results: dict) -> dict:
    """The result with the highest training_iteration (the first of equals)."""
    return max(results, key=lambda r: r.get("training_iteration", 0))


def terminal_width() -> int:
    """The terminal's columns (80 when piped or unknown), never fewer than 80."""
    return max(80, shutil.get_terminal_size((80, 24)).columns)


def fit(line: str, width: int) -> str:
    """`line` cut to `width` columns, ending in '…' when cut."""
    return line if len(line) <= width else line[:width - 1] + "…"
