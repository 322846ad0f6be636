"""click options generated from config dataclasses: each default, help text, range and choice written once.

    @click.command()
    @dataclass_options(SearchOptions)   # one option per SearchOptions field, ranges from its metadata
    def search(**options): run_search(SearchOptions(**options))

    @click.command()
    @config_options            # one option per TrainConfig field: `batch_size` -> `--batch-size`
    def train(**options): cfg = config_from_options(options)

One generator serves both. Help texts are the fields' docstrings (trainable/fields.py reads
them) followed by the default, read from the field (or its metadata's `default_text` where the
default is decided elsewhere); flags, metavars, ranges and choices come from the metadata, which
the dataclasses' own `validate()` checks too. The model, loss and optimizer choices are the
registries' names (trainable/specs.py), so `--help` never imports torch.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import click

from trainable.config import TrainConfig
from trainable.fields import docs, flag
from trainable.specs import MODEL_SPECS


def dataclass_options(cls: type, skip: tuple[str, ...] = (), not_given: bool = False,
                      default_text: dict[str, str] | None = None) -> Callable:
    """A decorator adding one click option per field of `cls` (metadata cli=False and `skip` excluded).

    not_given: every option defaults to None ("not given", so the caller sees what the user gave),
    a bool field becomes `--name/--no-name`, click parses the type only and `cls` itself judges the
    value; the help states the field's default. default_text: field -> the default in words, for
    defaults a caller decides (it wins over the field's).
    """
    helps = docs(cls)

    def decorate(command):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in skip or f.metadata.get("cli") is False:
                continue
            stated = (default_text or {}).get(f.name, f.metadata.get("default_text"))
            if stated is None and not_given:
                stated = _in_words(f.default)
            help_text = helps.get(f.name, "") + (f" [default: {stated}]" if stated is not None else "")
            command = _option(f, help_text, not_given)(command)
        return command

    return decorate


def _in_words(default) -> str:
    """A default as the user would type it: 0.8,0.1,0.1 for a tuple."""
    return ",".join(map(str, default)) if isinstance(default, tuple) else str(default)


def _option(f: dataclasses.Field, help_text: str, not_given: bool):
    name = flag(f)
    if f.type == "bool":
        if not_given:
            return click.option(f"{name}/--no-{name.removeprefix('--')}", f.name, default=None, help=help_text)
        if name.startswith("--no-"):  # --no-track sets track=False
            return click.option(name, f.name, flag_value=not f.default, default=f.default, help=help_text)
        return click.option(name, f.name, is_flag=True, default=f.default, help=help_text)
    default = None if not_given else f.default
    return click.option(name, f.name, type=_click_type(f, ranges=not not_given), default=default,
                        show_default=default is not None, metavar=f.metadata.get("metavar"), help=help_text)


def _click_type(f: dataclasses.Field, ranges: bool) -> click.ParamType:
    """The field's choices, else its int or float type (with its metadata's range when `ranges`), else text."""
    meta = f.metadata
    kind = f.type.split(" | ")[0]
    low, high = meta.get("low"), meta.get("high")
    bounded = ranges and (low is not None or high is not None)
    if meta.get("choices"):
        return click.Choice([str(c) for c in meta["choices"]])
    if kind == "int":
        return click.IntRange(min=low, max=high, min_open=meta.get("low_open", False),
                              max_open=meta.get("high_open", False)) if bounded else click.INT
    if kind == "float":
        return click.FloatRange(min=low, max=high, min_open=meta.get("low_open", False),
                                max_open=meta.get("high_open", False)) if bounded else click.FLOAT
    return click.STRING


def pretrained_default() -> str:
    """`--pretrained`'s default in words: config_from_options follows trainable.models.pretrained_by_default."""
    shipped = [f"{spec.name}'s" for spec in MODEL_SPECS.values() if spec.weights == "package"]
    return "on when the model's ImageNet weights are here" + (f", as {' and '.join(shipped)} always are"
                                                               if shipped else "")


def config_options(command):
    """One click option per TrainConfig field (`batch_size` -> `--batch-size`), help from its docstring.

    Every default is None, meaning "not given": TrainConfig's own default applies (the help
    states it), and `pretrained` follows trainable.models.pretrained_by_default.
    """
    return dataclass_options(TrainConfig, not_given=True, default_text={"pretrained": pretrained_default()})(command)


def config_from_options(options: dict):
    """The TrainConfig for the options a user gave (None = not given); a bad value is a ConfigError."""
    from trainable.models import pretrained_by_default

    values = {k: v for k, v in options.items() if v is not None}
    if "split_fractions" in values:
        try:
            values["split_fractions"] = tuple(float(x) for x in values["split_fractions"].split(","))
        except ValueError:
            raise click.BadParameter(f"expected three numbers such as {_in_words(TrainConfig.split_fractions)}",
                                    param_hint="--split-fractions")
    if "pretrained" not in values:
        values["pretrained"] = pretrained_by_default(values.get("model", TrainConfig.model))
    return TrainConfig.from_dict(values)
