"""What a search looks like in MLflow (issue 25): a short runs table, direct links, promotion apart from the trials.

The caps are checked on the real tiny search and promotion the session shares (helpers_browser.py):
each trial <= 20 metric keys and <= 16 params, <= 40 distinct metric + param keys over every run of
the trials' experiment before and after a promotion, <= 10 tags of labeltune's own per run. The
URL parameters are checked against MLflow's own UI bundle, whose names they copy.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from trainable.metrics import PRIMARY_METRIC

pytest_plugins = ["helpers_browser"]

TRIAL_METRICS_MAX, TRIAL_PARAMS_MAX, EXPERIMENT_KEYS_MAX, OWN_TAGS_MAX = 20, 16, 40, 10


def _query(url: str) -> dict[str, str]:
    """The query of a URL's #fragment (`#/experiments/1/runs?a=b`), one value per name."""
    fragment = urlsplit(url).fragment
    return {k: v[0] for k, v in parse_qs(fragment.partition("?")[2], keep_blank_values=True).items()}


def _all_runs(client, experiment_name: str) -> list:
    from search.tracking.runs import search_runs

    experiment = client.get_experiment_by_name(experiment_name)
    return search_runs(client, [experiment.experiment_id], "") if experiment is not None else []


def _keys(runs: list) -> set[str]:
    return {f"metric {k}" for r in runs for k in r.data.metrics} | {f"param {k}" for r in runs for k in r.data.params}


def _own_tags(run) -> list[str]:
    """The tags labeltune set itself: every tag but MLflow's own (mlflow.*)."""
    return [key for key in run.data.tags if not key.startswith("mlflow.")]


# ---- the URL: what MLflow 3.17's UI reads ------------------------------------------------------------


def test_the_url_parameters_are_the_ones_mlflows_ui_bundle_reads():
    """The names copied from MLflow's bundle are still there: a new MLflow that renames them fails here."""
    import mlflow

    bundle = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    text = "".join(path.read_text(errors="replace") for path in bundle.glob("*.js"))
    facets = ('["searchFilter","orderByKey","orderByAsc","startTime","lifecycleFilter","modelVersionFilter",'
              '"datasetsFilter"]')
    for needle in (facets, 'get("workflowType")', '"machine_learning"', 'U="viewStateShareKey"',
                   '$="mlflow.sharedViewState."', '"selectedColumns","columnOrder"', '"custom_model_development"'):
        assert needle in text, f"MLflow {mlflow.__version__}'s UI bundle no longer holds {needle}"


def test_runs_view_urls_sort_by_the_primary_metric_and_filter_to_the_searchs_trials():
    from search.tracking.runs import child_filter, run_url, runs_view_url, ui_address, view_key

    ui = ui_address("sqlite:////x/mlflow.db", "0.0.0.0", 5001)
    assert ui == "http://127.0.0.1:5001" and ui_address("http://mlflow:5000/") == "http://mlflow:5000"
    url = runs_view_url(ui, "3", "s 'x'")
    assert url.startswith("http://127.0.0.1:5001/#/experiments/3/runs?")
    assert _query(url) == {"workflowType": "machine_learning", "searchFilter": child_filter("s 'x'"),
                           "orderByKey": f"metrics.`best/{PRIMARY_METRIC}`", "orderByAsc": "false"}
    assert " " not in url and "searchFilter" not in _query(runs_view_url(ui, "3"))
    # a saved view is voided by any facet beside it: the URL names only the view and the workflow
    assert _query(runs_view_url(ui, "3", "s1", saved=True)) == {"viewStateShareKey": view_key("s1"),
                                                                 "workflowType": "machine_learning"}
    assert view_key("s1") == "labeltune-s1" and view_key("a b/c") != view_key("a b/d")
    assert set(view_key("a b/c")) <= set("labeltune-0123456789abcdef")
    assert run_url(ui, "3", "abc") == "http://127.0.0.1:5001/#/experiments/3/runs/abc"


def test_labeltune_keeps_its_newest_saved_views_and_leaves_the_users_own(labeltune_home):
    import mlflow

    from search.tracking.runs import VIEWS_KEPT, open_experiment, save_view, view_key

    uri = f"sqlite:///{labeltune_home / 'mlruns' / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment_id = open_experiment("labeltune", uri)
    client.set_experiment_tag(experiment_id, "mlflow.sharedViewState.mine", '{"name": "mine", "createdAt": 0}')
    names = [f"s{i:02d}" for i in range(VIEWS_KEPT + 2)]
    for name in names:
        save_view(client, experiment_id, name, ["optimizer", "lr", "log10_lr"])
    views = {k for k in client.get_experiment(experiment_id).tags if k.startswith("mlflow.sharedViewState.")}
    # the oldest go (a view saved in the same millisecond may outlive its elder: the count is what matters)
    assert len(views - {"mlflow.sharedViewState.mine"}) == VIEWS_KEPT and "mlflow.sharedViewState.mine" in views
    assert f"mlflow.sharedViewState.{view_key(names[-1])}" in views


# ---- what a trial logs, from the space --------------------------------------------------------------


def test_a_trial_logs_only_what_its_space_varies_at_four_significant_figures():
    from search.space import PRESETS
    from search.tracking.columns import constant_params, searched_params, trial_params

    for preset, space in PRESETS.items():
        searched = searched_params(space)
        assert len(searched) <= TRIAL_PARAMS_MAX, (preset, searched)
        assert {"lr", "log10_lr", "log10_weight_decay", "model", "optimizer"} <= set(searched), preset
        assert not [name for name in searched if name.startswith("lr_")]
        assert "image_size" not in searched and "image_size" in constant_params(space, {})
    config = {"model": "cnn4", "optimizer": "adamw", "lr_adamw": 1.1851473873082037e-05, "lr_sgd": 0.1,
              "weight_decay": 0.00012345678, "batch_size": 32, "image_size": 64, "epochs": 3, "pretrained": False}
    space = {"model": ["cnn4", "cnn5"], "optimizer": ["adamw", "sgd"],
             "lr_adamw": {"low": 1e-5, "high": 1e-2, "log": True}, "lr_sgd": {"low": 1e-3, "high": 0.3, "log": True},
             "weight_decay": {"low": 1e-6, "high": 1e-3, "log": True}, "batch_size": [32], "image_size": 64}
    params = trial_params(config, searched_params(space))
    assert params == {"model": "cnn4", "optimizer": "adamw", "weight_decay": "0.0001235",
                      "log10_weight_decay": "-3.908", "lr": "1.185e-05", "log10_lr": "-4.926"}
    assert float(params["log10_lr"]) == pytest.approx(math.log10(config["lr_adamw"]), abs=1e-3)
    assert constant_params(space, {"data": "/d", "epochs": 3}) == {"data": "/d", "epochs": "3", "batch_size": "32",
                                                                   "image_size": "64"}
    # one optimizer with a fixed rate: the rate is a constant too, a param of the parent
    fixed = {"optimizer": ["adamw"], "lr_adamw": 0.001, "lr_sgd": {"low": 1e-3, "high": 0.3}, "loss": ["bce", "asl"]}
    assert searched_params(fixed) == ["loss"] and constant_params(fixed, {})["lr"] == "0.001"


# ---- the real search and its promotion --------------------------------------------------------------


@pytest.mark.timeout(600)
def test_the_trials_experiment_stays_within_its_column_caps_before_and_after_promotion(shared_search, request):
    import mlflow

    from search.tracking.names import EXPERIMENT, PROMOTION_EXPERIMENT, ROLE_TAG

    client = mlflow.MlflowClient(shared_search.tracking_uri)
    before = _all_runs(client, EXPERIMENT)
    assert len(before) == 4  # the parent and 3 trials
    trials = [r for r in before if r.data.tags[ROLE_TAG] == "trial"]
    for trial in trials:
        assert len(trial.data.metrics) <= TRIAL_METRICS_MAX, sorted(trial.data.metrics)
        assert len(trial.data.params) <= TRIAL_PARAMS_MAX, sorted(trial.data.params)
    assert len(_keys(before)) <= EXPERIMENT_KEYS_MAX, sorted(_keys(before))

    _, p = request.getfixturevalue("promoted")
    after = _all_runs(client, EXPERIMENT)
    assert len(after) == 4 and not [r for r in after if r.data.tags[ROLE_TAG] == "promotion"]
    assert len(_keys(after)) <= EXPERIMENT_KEYS_MAX, sorted(_keys(after))
    promotions = _all_runs(client, PROMOTION_EXPERIMENT)
    assert p.run_id in {r.info.run_id for r in promotions}
    for run in [*after, *promotions]:
        assert len(_own_tags(run)) <= OWN_TAGS_MAX, (run.info.run_name, sorted(_own_tags(run)))
    print(f"keys over the trials' experiment: {len(_keys(before))} before, {len(_keys(after))} after promotion; "
          f"per trial: {max(len(t.data.metrics) for t in trials)} metrics, {max(len(t.data.params) for t in trials)} "
          f"params; own tags per run: {max(len(_own_tags(r)) for r in [*after, *promotions])}")


@pytest.mark.timeout(600)
def test_a_trial_shows_its_searched_params_its_score_and_the_console_s_name(shared_search):
    import mlflow

    from helpers_browser import SPACE
    from search.tracking.names import LABEL_TABLE, TIME_EPOCH_MEDIAN, TIME_TABLE, TIME_TRAIN_SHARE
    from search.tracking.runs import find_search_runs

    client = mlflow.MlflowClient(shared_search.tracking_uri)
    parent, trials = find_search_runs(shared_search.tracking_uri, shared_search.name)
    fixed = [k for k, v in SPACE.items() if k != "preset" and (not isinstance(v, (list, dict)) or len(v) == 1)]
    for trial in trials:
        params, metrics = trial.data.params, trial.data.metrics
        assert not set(fixed) & set(params) and not {"epochs", "seed", "split_seed", "pretrained"} & set(params)
        assert {"optimizer", "loss", "lr", "log10_lr", "weight_decay", "log10_weight_decay"} <= set(params)
        assert float(params["log10_lr"]) == pytest.approx(math.log10(float(params["lr"])), abs=2e-3)
        for value in params.values():
            mantissa = value.split("e")[0].lstrip("-").replace(".", "").lstrip("0")
            assert not mantissa.isdigit() or len(mantissa) <= 4, params
        assert not [key for key in metrics if "/f1/" in key or key.startswith("baseline")]
        assert {f"best/{PRIMARY_METRIC}", "best_epoch", TIME_TRAIN_SHARE, TIME_EPOCH_MEDIAN} <= set(metrics)
        artifacts = {a.path for a in client.list_artifacts(trial.info.run_id)}
        assert {LABEL_TABLE, TIME_TABLE} <= artifacts
        trial_id = trial.data.tags["labeltune.trial_id"]
        assert trial.info.run_name.endswith(f"-{trial_id}") and trial_id in shared_search.stdout  # the console's id
    # the constants, once, on the parent; the baselines apart from the trials' scores
    constants = client.get_run(parent.info.run_id).data.params
    assert {"data": str(shared_search.data.resolve()), "epochs": "2", "image_size": "32", "model": "cnn3bn",
            "batch_size": "32"}.items() <= constants.items()
    assert {"split_seed", "seed"} <= set(constants)
    parent_metrics = client.get_run(parent.info.run_id).data.metrics
    assert sorted(parent_metrics) == [f"best/{PRIMARY_METRIC}", "search/baseline_test_micro_f1",
                                      "search/baseline_val_micro_f1"]
    assert "baselines.csv" in {a.path for a in client.list_artifacts(parent.info.run_id)}


@pytest.mark.timeout(600)
def test_the_search_prints_a_saved_view_of_its_trials_sorted_with_their_columns(shared_search):
    import mlflow

    from search.tracking.names import EXPERIMENT
    from search.tracking.runs import find_search_runs, run_url, runs_view_url, search_runs, ui_address, view_key

    client = mlflow.MlflowClient(shared_search.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parent, trials = find_search_runs(shared_search.tracking_uri, shared_search.name)
    ui = ui_address(shared_search.tracking_uri)
    view = runs_view_url(ui, experiment.experiment_id, shared_search.name, saved=True)
    # at the start (before the first trial) and in the summary
    assert shared_search.stdout.count(view) == 2, shared_search.stdout
    assert shared_search.stdout.count(run_url(ui, experiment.experiment_id, parent.info.run_id)) == 2

    envelope = json.loads(experiment.tags[f"mlflow.sharedViewState.{view_key(shared_search.name)}"])
    state = json.loads(envelope["state"])
    assert envelope["name"] and isinstance(envelope["createdAt"], int)
    shown = search_runs(client, [experiment.experiment_id], state["searchFilter"])
    assert {r.info.run_id for r in shown} == {t.info.run_id for t in trials}  # the trials, not the parent
    key = state["orderByKey"].split("`")[1]
    assert state["orderByKey"] == f"metrics.`best/{PRIMARY_METRIC}`" and state["orderByAsc"] is False
    assert max(trials, key=lambda t: t.data.metrics[key]).data.metrics[key] == max(t.data.metrics[key] for t in trials)
    columns = state["selectedColumns"]
    assert columns[0] == f"metrics.`best/{PRIMARY_METRIC}`" and state["columnOrder"][1:] == columns
    params = [c.split("`")[1] for c in columns if c.startswith("params.")]
    assert params[:3] == ["optimizer", "log10_lr", "loss"]  # the space fixes model and batch size
    for name in params:  # no empty column: every one a param the trials have
        assert all(name in t.data.params for t in trials) or name.startswith("asl_"), name
    assert "lr" not in params and "weight_decay" not in params  # their log10 twins are the columns


@pytest.mark.timeout(600)
def test_the_promotion_run_is_apart_linked_both_ways_with_a_few_keys_and_its_tables(promoted, tmp_path):
    import mlflow

    from search.cli.promote import promotion_links
    from search.tracking.names import PROMOTION_EXPERIMENT
    from search.tracking.runs import find_search_runs, run_url, runs_view_url, ui_address

    search, p = promoted
    client = mlflow.MlflowClient(search.tracking_uri)
    run = client.get_run(p.run_id)
    assert run.info.experiment_id == client.get_experiment_by_name(PROMOTION_EXPERIMENT).experiment_id
    parent, _ = find_search_runs(search.tracking_uri, search.name)
    assert run.data.tags["labeltune.search_run_id"] == parent.info.run_id
    assert run.data.tags["labeltune.search"] == search.name and run.data.tags["labeltune.trial_id"] == p.trial_id
    promoted_from = client.get_run(parent.info.run_id).data.tags["labeltune.promotion_run_id"]  # the latest one
    assert client.get_run(promoted_from).data.tags["labeltune.search"] == search.name
    assert client.get_model_version(p.model_name, p.version).run_id == p.run_id
    assert len(run.data.metrics) <= 10, sorted(run.data.metrics)
    assert run.data.metrics["global_threshold/test/micro_f1"] == pytest.approx(p.test_global["test/micro_f1"])

    table = client.download_artifacts(p.run_id, "promotion_scores.csv", str(tmp_path))
    rows = {row["figure"]: row for row in csv.DictReader(Path(table).read_text().splitlines())}
    label = next(iter(p.thresholds))
    assert float(rows["micro_f1"]["test global"]) == pytest.approx(p.test_global["test/micro_f1"])
    assert float(rows[f"f1/{label}"]["test per-label"]) == pytest.approx(p.test_per_label[f"test/f1/{label}"])
    assert float(rows["micro_f1"]["val baseline"]) == pytest.approx(p.baseline_val_micro_f1)
    assert {"val trial", "val global", "val per-label", "test trial", "test baseline"} <= set(rows["micro_f1"])

    # what `labeltune promote` prints after "registered ...": the promotion's run, the version, the search's trials
    lines = promotion_links(p, None, str(search.path.parent))
    ui = ui_address(search.tracking_uri)
    assert lines[0].endswith(f"the promotion's run: {run_url(ui, run.info.experiment_id, p.run_id)}")
    assert lines[1].endswith(f"{ui}/#/models/{p.model_name}/versions/{p.version}")
    assert lines[2].endswith(runs_view_url(ui, parent.info.experiment_id, search.name, saved=True))


@pytest.mark.timeout(600)
def test_pred_registered_says_which_version_and_trial_the_alias_resolved_to(promoted, tmp_path):
    import mlflow
    from click.testing import CliRunner

    from search.cli import main

    search, _ = promoted
    version = mlflow.MlflowClient(search.tracking_uri).get_model_version_by_alias("labeltune", "champion")
    out = CliRunner().invoke(main, ["pred", "--registered", "labeltune@champion", "--tracking-uri",
                                    search.tracking_uri, "--images", str(search.data / "test" / "images"),
                                    "--out", str(tmp_path / "p.tsv")])
    assert out.exit_code == 0, out.output
    assert (f"labeltune@champion: version {version.version} of labeltune, search {search.name}, "
            f"trial {version.tags['labeltune.trial']}") in out.output.splitlines()


@pytest.mark.timeout(600)
def test_ui_prints_the_latest_searchs_view_and_runs_mlflow_quietly(shared_search, labeltune_home, monkeypatch):
    import mlflow
    from click.testing import CliRunner

    from search.cli import main
    from search.cli.ui import UI_WARNING_FILTERS
    from search.tracking.runs import runs_view_url

    class Exec(Exception):
        pass

    def fake_execv(path, args):
        raise Exec(args, dict(os.environ))

    monkeypatch.setattr(os, "execv", fake_execv)
    for key in ("PYTHONWARNINGS", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"):
        monkeypatch.delenv(key, raising=False)  # restored after the test: ui sets them for its child
    out = CliRunner().invoke(main, ["ui", "--port", "5123", "--tracking-uri", shared_search.tracking_uri])
    args, env = out.exception.args
    experiment_id = mlflow.MlflowClient(shared_search.tracking_uri).get_experiment_by_name("labeltune").experiment_id
    view = runs_view_url("http://127.0.0.1:5123", experiment_id, shared_search.name, saved=True)
    assert f"MLflow: the trials of {shared_search.name}, best first: {view}" in out.output.splitlines()
    # MLflow says "Registry store URI not provided" without it
    assert args[args.index("--registry-store-uri") + 1] == shared_search.tracking_uri
    # the child's Starlette deprecation warning is gone with the filters ui gives it (and there without)
    probe = [sys.executable, "-c", "import starlette.middleware.wsgi"]
    noisy = subprocess.run(probe, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": ""})
    assert "StarletteDeprecationWarning" in noisy.stderr
    quiet = subprocess.run(probe, capture_output=True, text=True,
                           env={**os.environ, "PYTHONWARNINGS": env["PYTHONWARNINGS"]})
    assert quiet.stderr == "" and set(UI_WARNING_FILTERS) <= set(env["PYTHONWARNINGS"].split(","))

    # a store with no search yet: the experiment's runs, sorted
    empty = f"sqlite:///{labeltune_home / 'mlruns' / 'mlflow.db'}"
    out = CliRunner().invoke(main, ["ui", "--tracking-uri", empty])
    experiment_id = mlflow.MlflowClient(empty).get_experiment_by_name("labeltune").experiment_id
    assert f"best first: {runs_view_url('http://127.0.0.1:5000', experiment_id)}" in out.output


def test_a_train_run_logs_its_config_and_baselines_as_a_search_does(labeltune_home, tmp_path):
    import types

    import mlflow

    from search.tracking.local_run import LocalRun
    from trainable.config import TrainConfig

    cfg = TrainConfig(lr=1.1851473873082037e-05, weight_decay=0.0)
    dataset = types.SimpleNamespace(fingerprint="ab" * 32, root=tmp_path)
    tracker = LocalRun(cfg, dataset, None)
    tracker.log_baselines({"baseline/val/micro_f1": 0.25, "baseline/test/micro_f1": 0.2, "baseline/val/map": 0.1,
                           "baseline/k/micro_f1": 1.0})
    tracker.finish("FINISHED", [])
    client = mlflow.MlflowClient(f"sqlite:///{labeltune_home / 'mlruns' / 'mlflow.db'}")
    run = client.get_run(tracker.run_id)
    assert run.data.params["lr"] == "1.185e-05" and run.data.params["log10_lr"] == "-4.926"
    assert "log10_weight_decay" not in run.data.params  # no log of 0
    assert run.data.metrics == {"search/baseline_val_micro_f1": 0.25, "search/baseline_test_micro_f1": 0.2}
    table = client.download_artifacts(tracker.run_id, "baselines.csv", str(tmp_path / "dl"))
    assert Path(table).read_text().splitlines() == ["metric,val,test,k", "micro_f1,0.25,0.2,1", "map,0.1,,"]
