"""A condensed live trial table for the terminal, printed by the driver while a search runs.

Tune's own reporter prints every parameter of every trial; this prints one status line
and the running trials, at most every `every_s` seconds and whenever a trial ends.
"""

from __future__ import annotations

import shutil
import time

import click
from ray.tune import Callback

from trainable.metrics import PRIMARY_METRIC

SHOWN_PARAMS = ("model", "optimizer", "loss", "batch_size")


def describe(config: dict) -> str:
    """A trial's config in a few words: model, optimizer@lr, loss, batch size."""
    opt = config.get("optimizer", "?")
    lr = config.get(f"lr_{opt}", config.get("lr"))
    lr_text = f"@{lr:.2g}" if isinstance(lr, float) else ""
    return f"{config.get('model', '?')} {opt}{lr_text} {config.get('loss', '?')} bs{config.get('batch_size', '?')}"


class LiveTable(Callback):
    def __init__(self, max_epochs: int, trials: int, every_s: float = 15.0) -> None:
        self.max_epochs = max_epochs
        self.trials = trials
        self.every_s = every_s
        self.last_print = 0.0
        self.best: tuple[float, str, str] | None = None
        self.started = time.time()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(PRIMARY_METRIC)
        if isinstance(value, (int, float)) and (self.best is None or value > self.best[0]):
            self.best = (float(value), trial.trial_id, describe(trial.config))
        self._maybe_print(trials)

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
                last = t.last_result or {}
                epoch = last.get("training_iteration", 0)
                score = last.get(PRIMARY_METRIC)
                score_text = f"{score:.4f}" if isinstance(score, float) else "-"
                click.echo(fit(f"    {t.trial_id:<10} epoch {epoch}/{self.max_epochs}  {score_text:>7}  {describe(t.config)}",
                               width))


def terminal_width() -> int:
    """The terminal's columns (80 when piped or unknown), never fewer than 80."""
    return max(80, shutil.get_terminal_size((80, 24)).columns)


def fit(line: str, width: int) -> str:
    """`line` cut to `width` columns, ending in '…' when cut."""
    return line if len(line) <= width else line[:width - 1] + "…"
