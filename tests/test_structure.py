"""The layers hold: trainable never imports search; records and checkpoints of earlier versions still load;
one error family reaches the user as one line, anything else keeps its traceback."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at top level or inside functions (relative imports resolved to trainable)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("trainable" if node.level else (node.module or ""))
    return names


def test_trainable_imports_nothing_from_search():
    offenders = {
        str(path.relative_to(REPO)): sorted(m for m in imported_modules(path) if m == "search" or m.startswith("search."))
        for path in sorted((REPO / "trainable").rglob("*.py"))
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"trainable/ must not import search/: {offenders}"


def test_the_import_walk_sees_imports_inside_functions(tmp_path):
    # The check above must catch the lazy imports a CLI or a trial would use, not only the top of a file.
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from search.space import to_train_config\n    import search.tuner\n")
    assert {"search.space", "search.tuner", "os"} <= imported_modules(module)


def test_a_record_written_before_the_format_version_reads_and_rewrites(tmp_path):
    from search.record import FORMAT_VERSION, RECORD, SearchRecord

    folder = tmp_path / "demo-20261201-120856"
    folder.mkdir()
    shutil.copy(DATA / "search_record_v1.json", folder / RECORD)
    old = json.loads((DATA / "search_record_v1.json").read_text())
    record = SearchRecord.read(folder)
    assert "format_version" not in old
    assert (record.name, record.data_fingerprint, record.split_seed) == (old["name"], old["data_fingerprint"], 0)
    assert record.options["trials"] == 6 and record.space["model"] == old["space"]["model"]
    assert record.baselines == old["baselines"] and record.status == "finished"
    record.storage = str(tmp_path)  # the folder it was found in
    record.write()
    rewritten = json.loads((folder / RECORD).read_text())
    assert rewritten["format_version"] == FORMAT_VERSION
    assert all(rewritten[k] == v for k, v in old.items() if k != "storage"), "a rewrite changed an old key"


def test_a_record_keeps_keys_it_does_not_know(tmp_path):
    from search.record import RECORD, SearchRecord

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / RECORD).write_text(json.dumps({"name": "s", "storage": str(tmp_path), "note": "from a plugin"}))
    record = SearchRecord.read(tmp_path / "s")
    record.status = "finished"
    record.write()
    assert json.loads((tmp_path / "s" / RECORD).read_text())["note"] == "from a plugin"


@pytest.mark.parametrize("content, message", [
    ("{not json", "unreadable search record"),
    ("[1, 2]", "unreadable search record"),
    (json.dumps({"name": "s", "format_version": 99}), "written by a newer labeltune"),
    (json.dumps({"status": "finished"}), "not a search record"),
])
def test_an_unreadable_or_newer_record_is_one_clear_error(tmp_path, content, message):
    from search.options import SearchError
    from search.record import RECORD, SearchRecord

    (tmp_path / RECORD).write_text(content)
    with pytest.raises(SearchError, match=message):
        SearchRecord.read(tmp_path)


def test_a_checkpoint_written_before_the_refactor_still_predicts():
    import numpy as np

    from trainable import checkpoint as ckpt_io
    from trainable.ensemble import load_predictor

    ckpt = ckpt_io.load(DATA / "checkpoint_v1.pt")
    predictor = load_predictor(ckpt, "cpu")
    images = np.random.default_rng(0).integers(0, 255, (3, 3, 128, 128), dtype=np.uint8)
    probs, predictions = predictor.predict(images)
    assert probs.shape == (3, 14) and predictions.shape == (3, 14)
    assert ckpt_io.kind(ckpt) == "single" and ckpt["config"]["model"] == "dummy"


def test_every_user_facing_error_shares_one_base_class():
    from search.options import SearchError
    from search.promote import PromotionError
    from search.space import SpaceError
    from trainable.baselines import BaselineError
    from trainable.checkpoint import CheckpointError
    from trainable.config import ConfigError
    from trainable.data import DatasetError
    from trainable.errors import LabeltuneError
    from trainable.gym import TrialDiverged
    from trainable.models import PretrainedWeightsError

    for error in (SearchError, PromotionError, SpaceError, BaselineError, CheckpointError, ConfigError,
                  DatasetError, TrialDiverged, PretrainedWeightsError):
        assert issubclass(error, LabeltuneError), error


def test_the_cli_prints_a_labeltune_error_in_one_line_and_a_bug_with_its_traceback(monkeypatch, tmp_path):
    from click.testing import CliRunner

    import search.cli.data as data_cli
    from search.cli import main
    from trainable.data import DatasetError

    result = CliRunner().invoke(main, ["data", "check", str(tmp_path)])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and len(result.output.splitlines()) == 1

    def bug(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(data_cli, "_describe_dataset", bug)
    from trainable import synth

    synth.write_dataset(tmp_path, n=20, test=0, seed=0)
    result = CliRunner().invoke(main, ["data", "check", str(tmp_path)])
    assert isinstance(result.exception, KeyError) and not isinstance(result.exception, DatasetError)


def test_the_search_command_is_generated_from_search_options():
    import dataclasses

    from search.cli.search import search
    from search.options import SearchOptions, flag
    from trainable.fields import docs

    params = {p.name: p for p in search.params}
    helps = docs(SearchOptions)
    for f in dataclasses.fields(SearchOptions):
        if f.metadata.get("cli") is False:
            assert f.name not in params
            continue
        option = params[f.name]
        assert option.opts[0] == flag(f) and option.help == helps[f.name] + (f" [default: {f.metadata['default_text']}]" if f.metadata.get("default_text") else "") and option.default == f.default, f.name
        if f.metadata.get("low") is not None:
            assert option.type.min == f.metadata["low"] and option.type.min_open == f.metadata["low_open"], f.name


@pytest.mark.parametrize("change, flag", [
    ({"trials": 0}, "--trials 0"), ({"epochs": -1}, "--epochs -1"), ({"time_budget_min": float("nan")}, "--time-budget"),
    ({"gpus_per_trial": -0.5}, "--gpus-per-trial"), ({"cpus_per_trial": 0.0}, "--cpus-per-trial"),
    ({"grace_period": 0}, "--grace-period"), ({"data": ""}, "--data is required"),
])
def test_search_options_validate_names_the_flag(change, flag):
    from search.options import SearchError, SearchOptions

    with pytest.raises(SearchError, match=flag):
        SearchOptions(**{"data": "d", **change}).validate()
    SearchOptions(data="d").validate()  # the defaults are valid


def test_listing_the_searches_imports_neither_ray_nor_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys, atexit\n"
            "atexit.register(lambda: print('HEAVY', sorted(m for m in ('torch', 'ray', 'mlflow', 'optuna', 'sklearn') "
            "if m in sys.modules), file=sys.stderr))\n"
            "from search.cli import main\n"
            "main(['searches', '--storage', sys.argv[1]])\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert "no searches yet" in result.stdout and "HEAVY []" in result.stderr, result.stderr


def test_pyproject_ships_every_package():
    # cluster.yaml pip-installs the project (not editable): a package missing here is missing on the nodes.
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(REPO).parts) for top in ("trainable", "search")
             for init in (REPO / top).rglob("__init__.py")}
    assert found == listed


def package_imports(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """module -> the modules of `packages` it imports (at top level or inside functions; `from a import b`, when b
    is a module, counts as importing a.b)."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def import_loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import loops of `graph`: its strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, loops = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return loops


def test_no_import_loop_inside_search_or_trainable():
    """Imports run one way (cli -> run -> {tuner, cluster, tracking, report} -> {space, record, options}): a loop,
    even through an import inside a function, means a module calls back into one that imports it."""
    assert import_loops(package_imports(REPO, ("search", "trainable"))) == []


def test_the_loop_check_finds_an_injected_loop(tmp_path):
    package = tmp_path / "search"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "run.py").write_text("from search.tuner import build\n")
    (package / "tuner.py").write_text("def build():\n    from search import report\n")
    (package / "report.py").write_text("from search.run import x\n")
    (package / "space.py").write_text("import search.record\n")
    (package / "record.py").write_text("")
    assert import_loops(package_imports(tmp_path, ("search",))) == [["search.report", "search.run", "search.tuner"]]


def test_the_private_state_labeltune_reads_of_ray_and_optuna_is_still_there():
    """Each use of a library's private attribute sits behind one small function; if Ray or Optuna drop the
    attribute, this names the function to rewrite."""
    import optuna
    from ray import tune

    from search.study import KeptOptunaSearch, storage_id
    from search.tuner import restored_run_config

    assert restored_run_config(tune.Tuner(lambda config: None)) is not None, "search.tuner.restored_run_config"

    def space(trial):
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)

    searcher = KeptOptunaSearch(space=space, metric="val/micro_f1", mode="max")
    searcher.suggest("t1")
    assert searcher.optuna_trial("t1") is not None, "search.study.KeptOptunaSearch.optuna_trial"
    assert isinstance(searcher.optuna_study(), optuna.Study), "search.study.KeptOptunaSearch.optuna_study"
    searcher.on_trial_complete("t1", {"val/micro_f1": 0.5, "training_iteration": 1})
    assert searcher.completed() == {"t1"}, "search.study.KeptOptunaSearch.completed"
    (trial,) = searcher.optuna_study().get_trials()
    assert isinstance(storage_id(trial), int), "search.study.storage_id"


def test_trainable_imports_no_mlflow():
    # Trials never talk to MLflow (the driver's tracker does): the package they run imports none of it.
    offenders = {str(path.relative_to(REPO)): sorted(m for m in imported_modules(path) if m.split(".")[0] == "mlflow")
                 for path in sorted((REPO / "trainable").rglob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}, "trainable/ must not import mlflow"


def test_names_pickled_before_the_tracking_package_still_resolve():
    # tuner.pkl of a search started before search/tracking/ pickles its tracker as search.tracking.MLflowTracker,
    # and registered models pickle search.pyfunc.LabeltuneModel: both names must keep unpickling.
    import pickle

    from search.tracking.callback import MLflowTracker
    from search.tracking.pyfunc import LabeltuneModel

    assert pickle.loads(b"csearch.tracking\nMLflowTracker\n.") is MLflowTracker
    assert pickle.loads(b"csearch.pyfunc\nLabeltuneModel\n.") is LabeltuneModel
