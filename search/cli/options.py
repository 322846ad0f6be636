"""click options generated from config dataclasses: each default, help text and range written once.

    @click.command()
    @config_options            # one option per TrainConfig field: `batch_size` -> `--batch-size`
    def train(**options): cfg = config_from_options(options)

    @click.command()
    @dataclass_options(SearchOptions)   # one option per SearchOptions field, ranges from its metadata
    def search(**options): run_search(SearchOptions(**options))

Help texts are the fields' docstrings (trainable/fields.py reads them); ranges and flags
come from the fields' metadata, which `SearchOptions.validate()` checks too.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import click

from trainable.fields import docs


def dataclass_options(cls: type, skip: tuple[str, ...] = ()) -> Callable:
    """A decorator adding one click option per field of `cls` (metadata cli=False and `skip` excluded)."""
    helps = docs(cls)

    def decorate(command):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in skip or f.metadata.get("cli") is False:
                continue
            command = _option(f, helps.get(f.name, ""))(command)
        return command

    return decorate


def _option(f: dataclasses.Field, help_text: str):
    meta = f.metadata
    flag = meta.get("flag") or "--" + f.name.replace("_", "-")
    if f.type == "bool":
        if flag.startswith("--no-"):  # --no-track sets track=False
            return click.option(flag, f.name, flag_value=not f.default, default=f.default, help=help_text)
        return click.option(flag, f.name, is_flag=True, default=f.default, help=help_text)
    kind = f.type.split(" | ")[0]
    low, high = meta.get("low"), meta.get("high")
    if meta.get("choices"):
        click_type = click.Choice([str(c) for c in meta["choices"]])
    elif kind == "int":
        click_type = click.IntRange(min=low, max=high, min_open=meta.get("low_open", False)) \
            if low is not None or high is not None else click.INT
    elif kind == "float":
        click_type = click.FloatRange(min=low, max=high, min_open=meta.get("low_open", False)) \
            if low is not None or high is not None else click.FLOAT
    else:
        click_type = click.STRING
    return click.option(flag, f.name, type=click_type, default=f.default, show_default=f.default is not None,
                        metavar=meta.get("metavar"), help=help_text)


def config_options(command):
    """One click option per TrainConfig field (`batch_size` -> `--batch-size`), help from its docstring.

    Every default is None, meaning "not given": TrainConfig's own default applies, and
    `pretrained` follows trainable.models.pretrained_by_default.
    """
    from trainable.config import (AUGMENTS, COLORS, DEVICES, IMAGE_SIZES, LOSS_NAMES, MODEL_NAMES, OPTIMIZER_NAMES,
                                  POS_WEIGHTS, TrainConfig, config_fields, field_doc)

    choices = {"model": MODEL_NAMES, "loss": LOSS_NAMES, "optimizer": OPTIMIZER_NAMES, "color": COLORS,
               "augment": AUGMENTS, "pos_weight": POS_WEIGHTS, "device": DEVICES}
    defaults = TrainConfig()
    for f in reversed(config_fields()):
        flag = "--" + f.name.replace("_", "-")
        doc = field_doc(f.name)
        if f.name == "pretrained":
            option = click.option(f"{flag}/--no-pretrained", default=None,
                                  help=doc + " [default: on when the model's ImageNet weights are here, "
                                             "as efficientnet_lite0's always are]")
        elif f.name == "split_fractions":
            option = click.option(flag, default=None, help=doc + " [default: 0.8,0.1,0.1]", metavar="TRAIN,VAL,TEST")
        elif f.name == "image_size":
            option = click.option(flag, type=click.Choice([str(s) for s in IMAGE_SIZES]), default=None,
                                  help=f"{doc} [default: {defaults.image_size}]")
        elif f.name in choices:
            option = click.option(flag, type=click.Choice(choices[f.name]), default=None,
                                  help=f"{doc} [default: {getattr(defaults, f.name)}]")
        else:
            kind = {"int": int, "float": float, "str": str}[f.type]
            option = click.option(flag, type=kind, default=None, help=f"{doc} [default: {f.default}]")
        command = option(command)
    return command


def config_from_options(options: dict):
    """The TrainConfig for the options a user gave (None = not given); a bad value is a ConfigError."""
    from trainable.config import TrainConfig
    from trainable.models import pretrained_by_default

    values = {k: v for k, v in options.items() if v is not None}
    if "split_fractions" in values:
        try:
            values["split_fractions"] = tuple(float(x) for x in values["split_fractions"].split(","))
        except ValueError:
            raise click.BadParameter("expected three numbers such as 0.8,0.1,0.1", param_hint="--split-fractions")
    if "pretrained" not in values:
        values["pretrained"] = pretrained_by_default(values.get("model", TrainConfig.model))
    return TrainConfig.from_dict(values)
