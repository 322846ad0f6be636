"""The README's CLI reference names exactly the options each command's --help has (issue 15, item 7)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from search.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def reference_rows() -> dict[str, str]:
    """command path ('data synth', 'train', ...) -> the README text that documents it."""
    section = README.split("## CLI reference", 1)[1].split("\n### ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        match = re.match(r"\| `([a-z][^`]*)` \|", line)  # the first cell: the command and its options
        if match:
            words = match.group(1).split()
            name = " ".join(words[:2]) if words[0] == "data" else words[0]
            rows[name] = rows.get(name, "") + " " + match.group(1)
    rows["train"] += section.split("TrainConfig options (", 1)[1]  # the paragraph under the table
    return rows


def commands(group: click.Group = main, prefix: str = "") -> dict[str, click.Command]:
    out = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out.update(commands(command, f"{prefix}{name} "))
        else:
            out[f"{prefix}{name}"] = command
    return out


@pytest.mark.parametrize("name", sorted(set(commands()) - {"submit", "jobs", "logs", "stop"}))
def test_the_readme_lists_every_option_of(name):
    command = commands()[name]
    documented = set(FLAG.findall(reference_rows().get(name, "")))
    options = {opt for param in command.params if isinstance(param, click.Option)
               for opt in param.opts + param.secondary_opts if opt.startswith("--")}
    assert name in reference_rows(), f"the README's CLI reference has no row for `{name}`"
    assert documented == options, (f"{name}: only in --help {sorted(options - documented)}, "
                                   f"only in the README {sorted(documented - options)}")
