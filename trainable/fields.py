"""Dataclass fields that document and check themselves.

A config dataclass (TrainConfig, SearchOptions) writes each default, help text and valid
range once, on the field: the one-line docstring under it is its help, `option(...)`
metadata its range or choices. `check` refuses out-of-range values, and the CLI
(`search/cli/options.py`) builds click options with the same ranges, choices and
defaults from the same fields.

    @dataclass
    class SearchOptions:
        trials: int = option(16, low=1)
        \"\"\"number of trials\"\"\"

Standard library only: the CLI imports this to build `--help`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
from typing import Any, Callable


def option(default: Any, *, low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False, choices: tuple | None = None, finite: bool = False, flag: str | None = None,
           metavar: str | None = None, default_text: str | None = None, cli: bool = True) -> Any:
    """A dataclass field with its valid values (and, for the CLI, its flag) in the metadata.

    low/high: inclusive bounds (low_open/high_open: strictly above low/below high); choices: the
    allowed values; finite: refuse inf and nan; flag: the CLI flag when it is not `--<name>`;
    default_text: the default in words, for a default (None) that is decided elsewhere; cli=False: no option.
    """
    meta = {"low": low, "high": high, "low_open": low_open, "high_open": high_open, "choices": choices,
            "finite": finite, "flag": flag, "metavar": metavar, "default_text": default_text, "cli": cli}
    return dataclasses.field(default=default, metadata=meta)


def flag(f: dataclasses.Field) -> str:
    """The CLI flag of a field: its metadata's, else `--<name>` with dashes (`batch_size` -> `--batch-size`)."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def docs(cls: type) -> dict[str, str]:
    """field name -> the one-line docstring under it, read from the class's source."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    out: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            out[node.target.id] = str(nxt.value.value)
    return out


def valid_values(f: dataclasses.Field) -> str:
    """The field's range in words ('>= 1', 'a finite number in (0, 1]'), '' when it has none."""
    meta = f.metadata
    low, high = meta.get("low"), meta.get("high")
    if low is not None and high is not None:
        text = f"in {'(' if meta.get('low_open') else '['}{low:g}, {high:g}{')' if meta.get('high_open') else ']'}"
    elif low is not None:
        text = f"{'>' if meta.get('low_open') else '>='} {low:g}"
    elif high is not None:
        text = f"{'<' if meta.get('high_open') else '<='} {high:g}"
    else:
        text = ""
    return f"a finite number {text}".strip() if meta.get("finite") else text


def _inside(value: float, meta) -> bool:
    """Whether value lies in the metadata's range (nan never does)."""
    low, high = meta.get("low"), meta.get("high")
    above = low is None or (value > low if meta.get("low_open") else value >= low)
    below = high is None or (value < high if meta.get("high_open") else value <= high)
    return above and below and (math.isfinite(value) or not meta.get("finite"))


def check(obj: Any, error: type[Exception], subject: Callable[[dataclasses.Field, str], str] | None = None) -> None:
    """Raise `error` naming the first field whose value is outside its metadata's range or choices.

    subject(field, shown value) names what is wrong as the user wrote it (a CLI flag: '--trials 0');
    default: the config key and value ('lr: inf'). None in an optional field (`float | None`)
    means "not given" and is not checked.
    """
    for f in dataclasses.fields(obj):
        value, meta = getattr(obj, f.name), f.metadata
        if not (meta.get("choices") or valid_values(f)) or (value is None and "None" in str(f.type)):
            continue
        shown = repr(value) if isinstance(value, str) else str(value)  # 'grey', but 0.5 even for a numpy float
        what = subject(f, shown) if subject else f"{f.name}: {shown}"
        if meta.get("choices"):
            if value not in meta["choices"]:
                raise error(f"{what} is not one of {', '.join(map(str, meta['choices']))}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error(f"{what} must be a number")
        elif not _inside(value, meta):
            raise error(f"{what} must be {valid_values(f)}")
