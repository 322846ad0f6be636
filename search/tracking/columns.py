"""What the runs table shows of a search: a trial's params are what the space varies, the rest is the parent's.

    searched = searched_params(space)       # ['loss', 'optimizer', 'lr', 'log10_lr', ...] (space order)
    trial_params(config, searched)          # {'optimizer': 'adamw', 'lr': '1.185e-05', 'log10_lr': '-4.926', ...}
    constant_params(space, {"data": "/data/course", "epochs": 5, "split_seed": 0, "seed": 0})
    search_description(record)              # the parent run's description (markdown)
    baseline_metrics(record.baselines)      # {'search/baseline_val_micro_f1': 0.31, ...}; the rest:
    write_baseline_table(record.baselines, path)

MLflow makes a column of every param and metric key of every run in the experiment, and the compare
view draws a param's values on a linear axis: so a trial logs only the parameters its search varies
(a constant, the same in every trial, is a param of the parent, once), floats at 4 significant
figures (search/readable.py), and `log10_lr` / `log10_weight_decay` beside `lr` / `weight_decay`, which
give MLflow's plots the log axis those ranges are searched on. The optimizer's own learning rate
(`lr_adamw`, ...) is `lr`, as the trial trains with it (search.space.merge_lr).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

from search.readable import number
from search.space import choices, distribution, lr_optimizer, lr_param, merge_lr
from search.tracking.names import BASELINE_METRICS, baseline_metric
from trainable.baselines import PREFIX as BASELINE_PREFIX
from trainable.baselines import THRESHOLD_FREE
from trainable.config import TrainConfig

LOG_TWINS = ("lr", "weight_decay")
"""params logged with a `log10_<name>` twin when searched (their ranges are log ranges)"""


def searched_params(space: dict[str, Any]) -> list[str]:
    """The params a trial run of `space` logs: the parameters it samples (one `lr` for the `lr_<optimizer>`s), each
    of LOG_TWINS followed by its log10 twin. A conditional one (width, asl_*) is absent where it does not apply."""
    names = [k for k, v in space.items() if distribution(v) is not None and lr_optimizer(k) is None]
    optimizers = choices(space.get("optimizer", TrainConfig.optimizer))
    rates = [space[lr_param(o)] for o in optimizers if lr_param(o) in space]
    if rates and (len(optimizers) > 1 or any(distribution(r) is not None for r in rates)):
        names.append("lr")  # the rate varies: sampled, or fixed per optimizer while the optimizer varies
    out = []
    for name in names:
        out += [name, f"log10_{name}"] if name in LOG_TWINS else [name]
    return out


def constant_params(space: dict[str, Any], constants: dict[str, Any]) -> dict[str, str]:
    """The parent run's params: `constants` (the search's: data, epochs, split and seeds) and what `space` fixes
    (a value, or a list of one), the fixed optimizer's `lr_<optimizer>` as `lr`."""
    fixed = {k: v for k, v in space.items() if distribution(v) is None and lr_optimizer(k) is None}
    optimizers = choices(space.get("optimizer", TrainConfig.optimizer))
    if "lr" not in searched_params(space) and len(optimizers) == 1 and lr_param(optimizers[0]) in space:
        fixed["lr"] = space[lr_param(optimizers[0])]
    values = {**constants, **{k: choices(v)[0] for k, v in fixed.items()}}
    return {k: _text(v) for k, v in values.items()}


def trial_params(config: dict[str, Any], searched: list[str] | None) -> dict[str, str]:
    """A trial run's params: the `searched` ones its config holds (`searched_params`); None, every key of the config
    (a tracker given no space), nested dicts as `a/b`. Values as text: `search.readable.number`, cut to MLflow's
    limit."""
    merged = merge_lr(config)
    if searched is None:
        params = _flatten(merged)
    else:
        params = {k: _text(merged[k]) for k in searched if k in merged}
    for name in LOG_TWINS:
        value = merged.get(name)
        wanted = searched is None or f"log10_{name}" in searched
        if wanted and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            params[f"log10_{name}"] = number(math.log10(value))
    return params


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    params = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            params.update(_flatten(value, prefix=f"{name}/"))
        else:
            params[name] = _text(value)
    return params


def _text(value: Any) -> str:
    return number(float(value) if type(value).__name__.startswith("float") else value)[:MAX_PARAM_VAL_LENGTH]


def search_description(record) -> str:
    """The parent run's description (markdown, MLflow's run page): what the search ran on, with what, from where.

    `record`: the search's search.record.SearchRecord. What used to be its tags (space, fingerprints, budget,
    command, warm start), so that the runs table keeps no column for them.
    """
    options = record.options or {}
    lines = [f"labeltune search **{record.name}**: {options.get('trials', '?')} trials x {options.get('epochs', '?')} "
             f"epochs of space `{record.space_source}` (fingerprint `{record.space_fingerprint}`)",
             f"- data: `{record.data}` (fingerprint `{record.data_fingerprint}`), split seed {record.split_seed}",
             f"- no-learning baseline: {record.baseline_rule}" if record.baseline_rule else "",
             "- warm start: " + ", ".join(f"{k} ({v['added']} trials)" for k, v in record.warm_start.items())
             if record.warm_start else "",
             f"- command: `{record.command}`" if record.command else "",
             f"- git commit: `{record.git_commit}`" if record.git_commit else ""]
    return "\n".join(line for line in lines if line)


def baseline_metrics(figures: dict[str, float]) -> dict[str, float]:
    """The no-learning baselines logged as metrics: BASELINE_METRICS of `figures` (trainable.baselines' keys,
    `baseline/<split>/<metric>`) under `names.baseline_metric`; the label counts `baseline/k/...` never are."""
    return {baseline_metric(f): float(figures[BASELINE_PREFIX + f]) for f in BASELINE_METRICS
            if BASELINE_PREFIX + f in figures}


def write_baseline_table(figures: dict[str, float], path: Path) -> Path:
    """BASELINE_TABLE from the baselines' `baseline/<split>/<metric>` and `baseline/k/<metric>` figures: per metric its
    val and test figure and k, the labels its rule predicts (micro_f1's for the figures without a k of their own;
    '' for the threshold-free ones)."""
    rows: dict[str, dict] = {}
    for key, value in figures.items():
        split, _, metric = key.removeprefix(BASELINE_PREFIX).partition("/")
        if split != "k":
            rows.setdefault(metric, {"metric": metric})[split] = value
    k_prefix = f"{BASELINE_PREFIX}k/"
    k = {key.removeprefix(k_prefix): v for key, v in figures.items() if key.startswith(k_prefix)}
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["metric", "val", "test", "k"], restval="")
        writer.writeheader()
        for metric, row in rows.items():
            labels = "" if metric in THRESHOLD_FREE else k.get(metric, k.get("micro_f1", ""))
            writer.writerow({**row, "k": int(labels) if labels != "" else ""})
    return path
