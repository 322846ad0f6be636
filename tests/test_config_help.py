"""Every help text of `labeltune search` and `labeltune train` says what its source says (issue 23, item 3).

Each option's help is its field's docstring; the default it states is the field's (click shows
it for search; train's options default to None and state it), or, where the default is decided
by other code, what that code does: the GPU share and CPUs a trial asks for, where searches and
the MLflow store live, when training starts from ImageNet weights. Choices are the field's, and
the model, loss and optimizer choices are the torch registries' keys. The check itself is shown
to fail on a small dataclass whose options are made to drift one way at a time.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from search.cli import main
from search.cli.options import dataclass_options
from search.cli.search import search
from search.cli.train import train
from search.options import SearchOptions
from trainable.config import TrainConfig
from trainable.fields import docs, option

REPO = Path(__file__).resolve().parent.parent
STATED = re.compile(r" \[default: (.*)\]$")
"""the default a help text states at its end"""
SEARCH_ELSEWHERE = tuple(f.name for f in dataclasses.fields(SearchOptions) if f.metadata.get("default_text"))
"""search options whose default other code decides (None on the field), stated in words"""


def params(command: click.Command) -> dict[str, click.Option]:
    return {param.name: param for param in command.params if isinstance(param, click.Option)}


def typed(default) -> str:
    """A default as a user types it on the command line (0.8,0.1,0.1 for a tuple)."""
    return ",".join(map(str, default)) if isinstance(default, tuple) else str(default)


def option_drift(opt: click.Option | None, f: dataclasses.Field, doc: str, not_given: bool,
                 elsewhere: bool) -> list[str]:
    """What one option says that its field does not (see `drift`)."""
    if opt is None:
        return [f"{f.name}: no option"]
    meta, help_text, problems = f.metadata, opt.help or "", []
    stated = STATED.search(help_text)
    said = help_text[:stated.start()] if stated else help_text
    if said != doc:
        problems.append(f"{f.name}: help {said!r} is not the docstring {doc!r}")
    if elsewhere and stated is None:
        problems.append(f"{f.name}: states no default, though other code decides it")
    if not_given:
        if opt.default is not None:
            problems.append(f"{f.name}: defaults to {opt.default!r}, not None (not given)")
        if not elsewhere and (stated is None or stated[1] != typed(f.default)):
            problems.append(f"{f.name}: states default {stated and stated[1]!r}, the field's is {typed(f.default)!r}")
    else:
        if opt.default != f.default:
            problems.append(f"{f.name}: defaults to {opt.default!r}, the field to {f.default!r}")
        if stated is not None and not elsewhere:
            problems.append(f"{f.name}: states default {stated[1]!r} beside the one click shows")
        bounds = (meta.get("low"), meta.get("high"), bool(meta.get("low_open")), bool(meta.get("high_open")))
        shown = (getattr(opt.type, "min", None), getattr(opt.type, "max", None),
                 bool(getattr(opt.type, "min_open", False)), bool(getattr(opt.type, "max_open", False)))
        if shown != bounds:
            problems.append(f"{f.name}: range {shown}, the field's {bounds}")
    choices = [str(c) for c in meta["choices"]] if meta.get("choices") else None
    offered = list(opt.type.choices) if isinstance(opt.type, click.Choice) else None
    if offered != choices:
        problems.append(f"{f.name}: offers {offered}, the field {choices}")
    return problems


def drift(command: click.Command, cls: type, not_given: bool, elsewhere: tuple[str, ...] = ()) -> list[str]:
    """What the options of `command` say that the fields of `cls` do not; empty when they agree.

    not_given: the options default to None and state the field's default in their help (train);
    else they default to the field's default, which click shows, with its range (search).
    `elsewhere`: fields whose stated default other code decides; the tests below check that code.
    """
    options, helps, problems = params(command), docs(cls), []
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli") is not False:
            problems += option_drift(options.get(f.name), f, helps.get(f.name, ""), not_given, f.name in elsewhere)
    return problems


def test_the_search_options_say_what_search_options_says():
    assert drift(search, SearchOptions, not_given=False, elsewhere=SEARCH_ELSEWHERE) == []


def test_the_train_options_say_what_train_config_says():
    assert drift(train, TrainConfig, not_given=True, elsewhere=("pretrained",)) == []


def test_the_model_loss_and_optimizer_choices_are_the_registries_keys():
    from trainable import losses, models, optimizers

    registries = {"model": models.MODELS, "loss": losses.LOSSES, "optimizer": optimizers.OPTIMIZERS}
    for name, registry in registries.items():
        assert TrainConfig.__dataclass_fields__[name].metadata["choices"] == tuple(registry), name
        assert list(params(train)[name].type.choices) == list(registry), name


def stated_gpu_shares(help_text: str) -> dict[str, float]:
    """model -> share from a help text ending '[default: by model, on a cluster with GPUs: 0.25 for a, b; 1 for c]'."""
    match = re.search(r"by model, on a cluster with GPUs: (.*)\]$", help_text)
    shares: dict[str, float] = {}
    for group in match[1].split("; ") if match else []:
        share, _, names = group.partition(" for ")
        shares.update(dict.fromkeys(names.split(", "), float(share)))
    return shares


def asked_gpu_shares() -> dict[str, float]:
    """model -> the GPU share search.cluster asks for one trial when --gpus-per-trial is not given."""
    from search.cluster import resource_request
    from trainable.models import MODEL_SPECS

    return {name: resource_request(name, gpus=None, cpus=None, use_gpu=True)["GPU"] for name in MODEL_SPECS}


GPU_HELP = params(search)["gpus_per_trial"].help


@pytest.mark.parametrize("help_text, agrees", [
    (GPU_HELP, True),
    ("GPU share per trial [default: by model: small CNNs 0.25, ResNets 1]", False),  # the help before issue 23
    (GPU_HELP.replace("0.5 for efficientnet_lite0", "1 for efficientnet_lite0"), False),
])
def test_the_gpu_share_help_states_what_a_trial_asks_for(help_text, agrees):
    assert (stated_gpu_shares(help_text) == asked_gpu_shares()) == agrees


def test_the_cpu_help_states_what_a_trial_asks_for():
    from search.cluster import resource_request

    stated = STATED.search(params(search)["cpus_per_trial"].help)[1]
    assert float(stated) == resource_request("cnn5", gpus=None, cpus=None, use_gpu=False)["CPU"]


def _runs_under_home(home: Path, monkeypatch) -> bool:
    from search.record import storage_root

    return storage_root(None) == home / "runs"


def _tracking_under_home(home: Path, monkeypatch) -> bool:
    from trainable import store

    under_home = store.tracking_uri(None) == f"sqlite:///{home / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    return under_home and store.tracking_uri(None) == "http://tracking.example:5000"


WHERE = {"$LABELTUNE_HOME/runs": _runs_under_home,
         "$MLFLOW_TRACKING_URI, else sqlite under $LABELTUNE_HOME/mlruns": _tracking_under_home}
"""a default stated in words -> whether the code does that, given $LABELTUNE_HOME (and a monkeypatch)"""


@pytest.mark.parametrize("command, name", [("search", "storage"), ("search", "tracking_uri"), ("searches", "storage"),
                                           ("report", "storage"), ("promote", "storage"),
                                           ("train", "tracking_uri"), ("ui", "tracking_uri")])
def test_where_things_live_is_what_the_store_does(command, name, tmp_path, monkeypatch):
    monkeypatch.setenv("LABELTUNE_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    stated = STATED.search(params(main.commands[command])[name].help)[1]
    assert stated in WHERE, f"{command} --{name}: no check for the default {stated!r}"
    assert WHERE[stated](tmp_path.resolve(), monkeypatch)


def test_the_pretrained_help_names_the_models_whose_weights_always_come_with_them():
    from trainable.models import MODEL_SPECS, pretrained_by_default

    stated = STATED.search(params(train)["pretrained"].help)[1]
    assert stated.startswith("on when the model's ImageNet weights are here")
    named = re.findall(r"(\w+)'s", stated.partition(", as ")[2])
    assert named == [name for name, spec in MODEL_SPECS.items() if spec.weights == "package"]
    assert all(pretrained_by_default(name) for name in named)  # shipped by their package, so always here


def test_the_search_help_names_the_primary_metric_and_the_presets():
    from search.space import PRESETS
    from trainable.config import PRIMARY_METRIC

    options = params(search)
    assert f"reaches {PRIMARY_METRIC} SCORE" in options["target"].help
    assert re.match(r"preset \((.*)\)", options["space"].help)[1].split(", ") == list(PRESETS)


@pytest.mark.parametrize("command", ["search", "train"])
def test_the_printed_help_is_the_options_help(command):
    result = CliRunner().invoke(main, [command, "--help"], terminal_width=1000, max_content_width=1000)
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    for opt in params(main.commands[command]).values():
        assert " ".join((opt.help or "").split()) in printed, opt.name


@pytest.mark.parametrize("command", ["search", "train"])
def test_help_imports_no_torch(command):
    code = ("import sys\nfrom search.cli import main\ntry:\n    main([sys.argv[1], '--help'])\nexcept SystemExit:\n"
            "    pass\nprint('HEAVY', sorted(m for m in ('torch', 'torchvision', 'ray') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code, command], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


# ---- the check fails when an option drifts from its field ----


@dataclass
class Knobs:
    size: int = option(3, low=1)
    """how many"""
    color: str = option("red", choices=("red", "blue"))
    """the colour"""


def knob_options(not_given: bool) -> dict[str, click.Option]:
    return params(click.command("knobs")(dataclass_options(Knobs, not_given=not_given)(lambda **options: None)))


def _restate(opt: click.Option) -> None:
    opt.help = opt.help.replace(" [default: 3]", "") + " [default: 4]"


DRIFTS = {
    "a help that is not the docstring": lambda options: setattr(options["size"], "help", "how much"),
    "a stated default that is not the field's": lambda options: _restate(options["size"]),
    "a default that is not the field's": lambda options: setattr(options["size"], "default", 4),
    "a choice the field does not have": lambda options: setattr(options["color"], "type",
                                                                click.Choice(["red", "green"])),
    "a range that is not the field's": lambda options: setattr(options["size"], "type", click.IntRange(min=0)),
    "no option for a field": lambda options: options.pop("color"),
}
STYLES = {"search-style": False, "train-style": True}
"""not_given of each kind of generated option; train-style options leave ranges to the config's own check"""


@pytest.mark.parametrize("style", STYLES)
def test_generated_options_agree_with_their_fields(style):
    assert drift(click.Command("knobs", params=list(knob_options(STYLES[style]).values())), Knobs, STYLES[style]) == []


@pytest.mark.parametrize("what, style", [(what, style) for what in DRIFTS for style in STYLES
                                         if (what, style) != ("a range that is not the field's", "train-style")])
def test_the_check_finds_an_option_that_drifted(what, style):
    options = knob_options(STYLES[style])
    DRIFTS[what](options)
    assert drift(click.Command("knobs", params=list(options.values())), Knobs, STYLES[style]) != []
