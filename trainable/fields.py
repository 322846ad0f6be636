"""Dataclass fields that document and check themselves.

A config dataclass (TrainConfig, SearchOptions) writes each default, help text and valid
range once, on the field: the one-line docstring under it is its help, `option(...)`
metadata its range or choices. `check` refuses out-of-range values, and the CLI
(`search/cli/options.py`) builds click options with the same ranges from the same fields.

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
from typing import Any


def option(default: Any, *, low: float | None = None, high: float | None = None, low_open: bool = False,
           choices: tuple | None = None, finite: bool = False, flag: str | None = None, metavar: str | None = None,
           cli: bool = True) -> Any:
    """A dataclass field with its valid values (and, for the CLI, its flag) in the metadata.

    low/high: inclusive bounds (low_open: strictly above low); choices: the allowed values;
    finite: refuse inf and nan; flag: the CLI flag when it is not `--<name>`; cli=False: no option.
    """
    meta = {"low": low, "high": high, "low_open": low_open, "choices": choices, "finite": finite,
            "flag": flag, "metavar": metavar, "cli": cli}
    return dataclasses.field(default=default, metadata=meta)


def docs(cls: type) -> dict[str, str]:
    """field name -> the one-line docstring under it, read from the class's source."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    out: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            out[node.target.id] = str(nxt.value.value)
    return out


def valid_values(f: dataclasses.Field) -> str:
    """The field's range or choices in words ('>= 1', 'one of a, b'), '' when it has none."""
    meta = f.metadata
    if meta.get("choices"):
        return "one of " + ", ".join(map(str, meta["choices"]))
    low, high = meta.get("low"), meta.get("high")
    parts = []
    if low is not None:
        parts.append(f"{'>' if meta.get('low_open') else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    return " and ".join(parts)


def check(obj: Any, error: type[Exception], flag_of=None) -> None:
    """Raise `error` naming the first field whose value is outside its metadata's range or choices.

    flag_of(field) names the field in the message (e.g. its CLI flag); default: the field name.
    A None value means "not given" and is not checked.
    """
    for f in dataclasses.fields(obj):
        value, meta = getattr(obj, f.name), f.metadata
        if value is None or not meta:
            continue
        name = flag_of(f) if flag_of else f.name
        if meta.get("choices") and value not in meta["choices"]:
            raise error(f"{name} {value!r}: must be {valid_values(f)}")
        if meta.get("low") is None and meta.get("high") is None and not meta.get("finite"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error(f"{name} {value!r}: must be a number")
        low, high = meta.get("low"), meta.get("high")
        below = low is not None and (value <= low if meta.get("low_open") else value < low)
        if below or (high is not None and value > high) or (meta.get("finite") and not math.isfinite(value)):
            raise error(f"{name} {value!r}: must be {valid_values(f) or 'finite'}")
