"""The search service through the CLI, as a user runs it, on the session's Ray.

A search of a few tiny trials (image_size 32, a quarter-width CNN, 2-3 epochs) takes
30-60 s here; the module shares one finished search between the read-only tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, run_cli
from helpers_truth import one_truth

from trainable.metrics import PRIMARY_METRIC

SPACE = {"preset": "quick", "image_size": 32, "width": [0.25], "model": ["cnn3bn", "cnn5"], "batch_size": [32],
         "threshold": {"low": 0.05, "high": 0.95}}


def write_space(folder: Path, **overrides) -> Path:
    path = folder / "space.json"
    path.write_text(json.dumps({**SPACE, **overrides}))
    return path


def trial_rows(search_path: Path) -> dict[str, list[dict]]:
    from search.catalog import trial_results

    return trial_results(search_path)


def saved_terminated(search_path: Path) -> bool:
    """Whether Tune's latest saved state holds a TERMINATED trial."""
    states = sorted(search_path.glob("experiment_state-*.json"))
    try:
        state = json.loads(states[-1].read_text()) if states else {"trial_data": []}
    except json.JSONDecodeError:
        return False  # being written
    return any(json.loads(t[0])["status"] == "TERMINATED" for t in state["trial_data"])


def tune_trials(search_path: Path) -> list[str]:
    """Trial folders of the trials Tune's latest saved state holds."""
    state = json.loads(sorted(search_path.glob("experiment_state-*.json"))[-1].read_text())
    return [f"trial_{json.loads(t[0])['trial_id']}" for t in state["trial_data"]]


def mlflow_runs(home: Path, name: str):
    from search.tracking.runs import find_search_runs

    return find_search_runs(f"sqlite:///{home / 'mlruns' / 'mlflow.db'}", name)


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory, ray_address, synth_dir, _mlflow_template):
    """One 6-trial search (3 epochs, ASHA grace 1) run through the CLI; returns (home, name, stdout)."""
    home = tmp_path_factory.mktemp("search-home")
    (home / "mlruns").mkdir()
    shutil.copy(_mlflow_template, home / "mlruns" / "mlflow.db")
    space = write_space(home)
    proc = run_cli("search", "--data", str(synth_dir), "--space", str(space), "--trials", "6", "--epochs", "3",
                   "--concurrency", "2", "--name", "s1", "--address", ray_address,
                   env={"LABELTUNE_HOME": str(home)})
    (home / "search.stderr").write_text(proc.stderr)  # for the quiet-console test
    return home, "s1", proc.stdout


@pytest.mark.timeout(600)
def test_search_completes_and_reports_the_best_trial(finished_search):
    home, name, stdout = finished_search
    rows = trial_rows(home / "runs" / name)
    assert len(rows) == 6
    best = max(r[PRIMARY_METRIC] for trial in rows.values() for r in trial)
    assert f"best trial: {PRIMARY_METRIC} {best:.4f}" in stdout
    assert "top 5:" in stdout and f"labeltune promote --search {name}" in stdout
    # what promotion will check, not a verdict of its own (issue 22 item 8)
    assert "promote moves the alias only if" in stdout and "cross-validated inside val" in stdout
    record = json.loads((home / "runs" / name / "labeltune_search.json").read_text())
    assert record["status"] == "finished" and record["data_fingerprint"] and record["space_fingerprint"]


@pytest.mark.timeout(600)
def test_the_console_shows_only_labeltunes_lines_within_80_columns(finished_search):
    home, name, stdout = finished_search
    stderr = (home / "search.stderr").read_text()
    noise = ("INFO", "Token authentication", "ExperimentalWarning", "TensorBoard", "Configuration for experiment",
             "A new study created", "View detailed results", "mlflow.store", "decode:", "Downloading artifacts")
    assert not [n for n in noise if n in stdout + stderr], stdout + stderr
    live = stdout.split(f"\nsearch {name}:")[0]  # the live table: the terminal is 80 columns when piped
    # the MLflow links' URLs cannot be wrapped
    assert live.strip() and max(len(line) for line in live.splitlines() if "://" not in line) <= 80
    assert re.search(r"ASHA stopped \d+ of 6 completed trials early \(rungs at epoch 1\)", stdout)


@pytest.mark.timeout(600)  # the first test to run pays for the shared search
def test_asha_stops_weak_trials_early(finished_search):
    home, name, _ = finished_search
    epochs = [max(r["training_iteration"] for r in trial) for trial in trial_rows(home / "runs" / name).values()]
    assert max(epochs) == 3
    assert min(epochs) < 3, f"ASHA stopped no trial: epochs per trial {epochs}"


@pytest.mark.timeout(600)  # the first test to run pays for the shared search
def test_finished_trials_keep_only_their_best_and_latest_checkpoints(finished_search):
    from trainable import checkpoint as ckpt_io

    home, name, _ = finished_search
    for trial, rows in trial_rows(home / "runs" / name).items():
        folders = sorted((home / "runs" / name / trial).glob("checkpoint_*"))
        kept = {ckpt_io.load(f)["epoch"]: ckpt_io.load(f)["metrics"][PRIMARY_METRIC] for f in folders}
        assert 1 <= len(kept) <= 2, (trial, sorted(kept))
        assert rows[-1]["training_iteration"] in kept
        assert max(kept.values()) == pytest.approx(max(r[PRIMARY_METRIC] for r in rows))


@pytest.mark.timeout(600)  # the first test to run pays for the shared search
def test_mlflow_holds_one_parent_and_a_child_per_trial(finished_search):
    home, name, _ = finished_search
    parent, children = mlflow_runs(home, name)
    assert parent is not None and parent.info.status == "FINISHED"
    assert len(children) == 6
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlruns' / 'mlflow.db'}")
    rows = trial_rows(home / "runs" / name)
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert {"model", "optimizer", "loss", "threshold", "lr", "log10_lr"} <= set(child.data.params)
        assert "batch_size" not in child.data.params  # the space fixes it: a param of the parent
        history = client.get_metric_history(child.info.run_id, PRIMARY_METRIC)
        trial_id = child.data.tags["labeltune.trial_id"]
        expected = [r[PRIMARY_METRIC] for r in rows[f"trial_{trial_id}"]]
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(1, len(expected) + 1))
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(expected)
        assert len(child.data.metrics) <= 20 and child.data.metrics["best/val/micro_f1"] == pytest.approx(max(expected))
    assert client.get_run(parent.info.run_id).data.params["batch_size"] == "32"
    # The search wires the dataset into every run: the runs table's Dataset column.
    record = json.loads((home / "runs" / name / "labeltune_search.json").read_text())
    for run in [parent, *children]:
        inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
        assert [i.dataset.digest.split("-")[0] for i in inputs] == [record["data_fingerprint"][:12]]


@pytest.mark.timeout(600)  # the first test to run pays for the shared search
def test_searches_lists_the_search(finished_search):
    home, name, _ = finished_search
    out = run_cli("searches", env={"LABELTUNE_HOME": str(home)}).stdout
    line = next(line for line in out.splitlines() if line.startswith(name))
    assert "finished" in line and "6/6" in line


@pytest.mark.timeout(600)
def test_every_store_agrees_after_the_budget_and_resuming_the_finished_search_runs_nothing(finished_search, ray_address):
    """Issue 22 items 1 and 11: resuming a finished search changes nothing, says so and exits 0."""
    home, name, _ = finished_search
    uri = f"sqlite:///{home / 'mlruns' / 'mlflow.db'}"
    before = one_truth(home / "runs" / name, uri)
    assert before["status"] == "finished" and before["counts"]["finished"] + before["counts"]["stopped_early"] == 6
    resumed = json.loads((home / "runs" / name / "labeltune_search.json").read_text())["resumed"]
    proc = run_cli("search", "--resume", name, "--address", ray_address, env={"LABELTUNE_HOME": str(home)})
    assert f"search {name} had already finished: nothing to resume" in proc.stdout
    assert f"best trial: {PRIMARY_METRIC} {before['best']:.4f}" in proc.stdout
    assert one_truth(home / "runs" / name, uri) == before
    assert json.loads((home / "runs" / name / "labeltune_search.json").read_text())["resumed"] == resumed


@pytest.mark.timeout(600)
def test_the_optuna_study_is_kept_in_the_search_folder(finished_search):
    import optuna

    from search.study import TUNE_TRIAL_ATTR, study_url

    home, name, _ = finished_search
    search_path = home / "runs" / name
    study = optuna.load_study(study_name=name, storage=study_url(search_path))
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert {f"trial_{t.user_attrs[TUNE_TRIAL_ATTR]}" for t in trials} == set(tune_trials(search_path))
    # OptunaSearch tells each trial's last reported score (an ASHA-stopped trial's is from its last epoch)
    last = [rows[-1]["val/micro_f1"] for rows in trial_rows(search_path).values()]
    assert study.best_value == pytest.approx(max(last), abs=1e-9)
    assert not (home / "mlruns" / "optuna.db").exists()  # never MLflow's database


@pytest.mark.timeout(600)
def test_a_warm_started_search_starts_its_study_from_the_earlier_trials(finished_search, ray_address, synth_dir):
    import optuna

    from search.study import study_url

    home, name, _ = finished_search
    space = write_space(home)
    proc = run_cli("search", "--data", str(synth_dir), "--space", str(space), "--trials", "2", "--epochs", "1",
                   "--concurrency", "1", "--warm-start", f"{name},{name}", "--name", "w1", "--address", ray_address,
                   env={"LABELTUNE_HOME": str(home)})
    assert f"warm start: 6 trials of {name} in the study" in proc.stdout  # said, and the name given twice counts once
    record = json.loads((home / "runs" / "w1" / "labeltune_search.json").read_text())
    assert record["warm_start"] == {name: {"added": 6, "skipped": 0, "duplicates": 0}}
    trials = optuna.load_study(study_name="w1", storage=study_url(home / "runs" / "w1")).get_trials()
    assert len(trials) == 8 and sum(t.user_attrs.get("warm_start_from") == name for t in trials) == 6
    parent, _ = mlflow_runs(home, "w1")
    assert f"- warm start: {name} (6 trials)" in parent.data.tags["mlflow.note.content"]  # the run's description


@pytest.mark.timeout(300)
@pytest.mark.timeout(900)  # two searches and two resumes; 400 s ran out with two busy loops starving Ray's workers
def test_target_and_plateau_end_the_search_say_why_and_leave_one_truth_that_a_resume_keeps(
        tmp_path, ray_address, synth_dir, labeltune_home):
    """Issue 22 items 1, 2 and 10: a --target or --plateau stop is a finished search in every store; resuming it
    runs nothing, exits 0 and changes nothing; the trial that reached the target is not 'ended with it'."""
    space = write_space(tmp_path)
    uri = f"sqlite:///{labeltune_home / 'mlruns' / 'mlflow.db'}"
    proc = run_cli("search", "--data", str(synth_dir), "--space", str(space), "--trials", "8", "--epochs", "2",
                   "--concurrency", "1", "--target", "0.01", "--name", "t1", "--address", ray_address)
    assert "ended before its budget: target reached" in proc.stdout
    # the trial that reached the target at its first epoch: neither stopped by ASHA nor 'ended with it'
    assert "ended with it" not in proc.stdout and "ASHA stopped 0 of 1 completed trials" in proc.stdout
    truth = one_truth(labeltune_home / "runs" / "t1", uri)
    assert truth["status"] == "finished" and truth["stop_reason"].startswith("target reached")
    assert truth["counts"]["ended_by_stop"] == 1 and f"trial {truth['best_trial']} " in truth["stop_reason"]

    proc = run_cli("search", "--data", str(synth_dir), "--space", str(space), "--trials", "6", "--epochs", "1",
                   "--concurrency", "1", "--plateau", "1", "--name", "p1", "--address", ray_address)
    from search.outcome import started

    plateau = one_truth(labeltune_home / "runs" / "p1", uri)
    assert plateau["status"] == "finished" and f"search p1: {started(plateau['counts'])} trials" in proc.stdout

    for name, before in (("t1", truth), ("p1", plateau)):
        resumed = run_cli("search", "--resume", name, "--address", ray_address)
        assert f"search {name} had already finished" in resumed.stdout and "nothing to resume" in resumed.stdout
        assert one_truth(labeltune_home / "runs" / name, uri) == before


def test_searches_leaves_out_an_orphan_trial_that_tunes_saved_state_does_not_hold(tmp_path):
    from search.catalog import RECORD, list_searches

    search = tmp_path / "s"
    for trial, f1 in (("trial_known", 0.4), ("trial_orphan", 0.9)):
        (search / trial).mkdir(parents=True)
        (search / trial / "result.json").write_text(json.dumps({PRIMARY_METRIC: f1}) + "\n")
    (search / RECORD).write_text(json.dumps({"name": "s", "status": "finished", "options": {"trials": 2}}))
    state = search / "experiment_state-2026-01-01_00-00-00.json"
    state.write_text(json.dumps({"trial_data": [[json.dumps({"trial_id": "known"}), "{}"]]}))
    (row,) = list_searches(str(tmp_path))
    assert (row["trials_done"], row["best"]) == (1, 0.4)  # what resume and promote see

    state.write_text("{ cut by a kill")  # unreadable: every trial folder counts
    (row,) = list_searches(str(tmp_path))
    assert (row["trials_done"], row["best"]) == (2, 0.9)


@pytest.mark.timeout(600)
def test_failing_trials_are_recorded_as_failed_and_the_search_finishes(tmp_path, ray_address, synth_dir, labeltune_home):
    # batch_size 1 cannot train cnn5's BatchNorm1d head: a real configuration error, raised inside the trial.
    space = write_space(tmp_path, model=["cnn5"], batch_size=[1, 32])
    proc = run_cli("search", "--data", str(synth_dir), "--space", str(space), "--trials", "4", "--epochs", "1",
                   "--name", "bad", "--seed", "1", "--address", ray_address)
    parent, children = mlflow_runs(labeltune_home, "bad")
    failed = [c for c in children if c.info.status == "FAILED"]
    assert failed, [c.data.params.get("batch_size") for c in children]
    assert all(c.data.params["batch_size"] == "1" for c in failed)
    assert all("labeltune.error" in c.data.tags for c in failed)
    assert any(c.info.status == "FINISHED" for c in children)
    assert f"({len(failed)} failed)" in proc.stdout


def wait_for(predicate, timeout: float, driver: subprocess.Popen, what: str):
    """Poll predicate() until it returns something truthy; fail at once if the driver ends first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        assert driver.poll() is None, f"the search ended (exit {driver.returncode}) before {what}"
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def saved_status(search_path: Path) -> dict[str, str]:
    """trial folder -> status in Tune's latest saved state ({} while there is none or it is being written)."""
    states = sorted(search_path.glob("experiment_state-*.json"))
    try:
        trials = json.loads(states[-1].read_text())["trial_data"] if states else []
    except json.JSONDecodeError:
        return {}
    return {f"trial_{json.loads(t[0])['trial_id']}": json.loads(t[0])["status"] for t in trials}


@pytest.mark.timeout(900)
def test_killed_driver_resumes_without_rerunning_or_duplicating(tmp_path, ray_address, synth_dir, labeltune_home):
    """The moment of the kill is decided, not raced: trial 2 is held after its first epoch until Tune's saved state
    holds trial 1 TERMINATED; then the driver kills itself right after trial 2 completed (Optuna has it COMPLETE,
    MLflow FINISHED) and before Tune's next snapshot, which still runs it (issue 22 item 7)."""
    from search.hooks import KILL_ENV
    from trainable.hold import HOLD_ENV

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    space = write_space(tmp_path)
    search_path = labeltune_home / "runs" / "k1"
    hold = tmp_path / "hold"
    driver = subprocess.Popen(
        [str(BIN / "labeltune"), "search", "--data", str(data), "--space", str(space), "--trials", "4",
         "--epochs", "2", "--concurrency", "1", "--grace-period", "2", "--name", "k1", "--address", ray_address],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, HOLD_ENV: f"{hold}:2:1", KILL_ENV: "2"},
    )
    try:
        held = Path(wait_for(lambda: (hold / "held").exists() and (hold / "held").read_text(), 400, driver,
                             "trial 2 held after its first epoch")).name
        # Issue 22 item 3: a second driver on the running search is refused at once, naming the running one.
        second = run_cli("search", "--resume", "k1", "--address", ray_address, check=False)
        assert second.returncode == 1 and f"pid {driver.pid}" in second.stderr and "is running" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1, second.stderr
        first = wait_for(lambda: [t for t, status in saved_status(search_path).items()
                                  if status == "TERMINATED" and t != held], 120, driver, "trial 1 in the saved state")
        (hold / "release").touch()
        driver.wait(120)
        assert driver.returncode == -signal.SIGKILL
    finally:
        (hold / "release").touch()
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    from trainable import checkpoint as ckpt_io

    before = trial_rows(search_path)  # (Tune's result.json may lack the last row: the kill beat its flush)
    on_disk = {ckpt["epoch"]: ckpt["metrics"][PRIMARY_METRIC]
               for ckpt in map(ckpt_io.load, (search_path / held).glob("checkpoint_*"))}
    assert saved_status(search_path)[held] != "TERMINATED" and sorted(on_disk) == [1, 2]  # the stores disagree now
    completed_before = {t: before[t] for t in first}

    out = run_cli("searches").stdout
    assert "interrupted" in next(line for line in out.splitlines() if line.startswith("k1"))
    # Resume refuses a changed space, and changed data.
    write_space(tmp_path, batch_size=[64])
    proc = run_cli("search", "--resume", "k1", "--space", str(tmp_path / "space.json"), "--address", ray_address,
                   check=False)
    assert proc.returncode == 1 and "space" in proc.stderr and "Traceback" not in proc.stderr
    write_space(tmp_path)
    bird = data / "annotations" / "bird.txt"
    original = bird.read_text()
    bird.write_text(original + "1\n")
    proc = run_cli("search", "--resume", "k1", "--address", ray_address, check=False)
    assert proc.returncode == 1 and "changed" in proc.stderr and "Traceback" not in proc.stderr
    bird.write_text(original)

    run_cli("search", "--resume", "k1", "--address", ray_address)
    after = trial_rows(search_path)
    known = tune_trials(search_path)
    assert len(known) == 4
    for trial, rows in completed_before.items():
        assert after[trial] == rows, f"completed trial {trial} was rerun"
    # The trial only the study and MLflow had as finished was replayed from its checkpoints, not trained again.
    # (rows are told apart by the worker that reported them: result.json can gain the lost driver's last rows late)
    first_workers = {r["pid"] for rows in before.values() for r in rows}
    replayed = [r for r in after[held] if r["pid"] not in first_workers]
    assert replayed and all(r.get("replayed_decided") is True for r in replayed), replayed
    assert {r["training_iteration"]: r[PRIMARY_METRIC] for r in after[held]} == pytest.approx(on_disk)
    for trial in known:
        iterations = [r["training_iteration"] for r in after[trial]]
        assert iterations[-1] == 2 and iterations[0] == 1, (trial, iterations)
    truth = one_truth(search_path, f"sqlite:///{labeltune_home / 'mlruns' / 'mlflow.db'}")
    assert truth["status"] == "finished" and truth["counts"]["finished"] == 4
    parent, children = mlflow_runs(labeltune_home, "k1")
    by_trial = {f"trial_{c.data.tags['labeltune.trial_id']}": c for c in children}
    assert len(by_trial) == len(children) == 4, "duplicate or orphaned child runs"
    assert all(by_trial[t].info.status == "FINISHED" for t in known)
    from mlflow import MlflowClient

    history = MlflowClient(f"sqlite:///{labeltune_home / 'mlruns' / 'mlflow.db'}").get_metric_history(
        by_trial[held].info.run_id, PRIMARY_METRIC)
    assert sorted(m.step for m in history) == [1, 2]  # each step once



@pytest.mark.timeout(120)
def test_unsatisfiable_resources_are_refused_with_the_cluster_resources(tmp_path, ray_address, synth_dir, labeltune_home):
    proc = run_cli("search", "--data", str(synth_dir), "--space", str(write_space(tmp_path)), "--trials", "2",
                   "--gpus-per-trial", "1", "--address", ray_address, "--no-track", check=False)
    assert proc.returncode == 1
    assert "--gpus-per-trial 1: no node has 1 GPU, 1 CPU (cluster: node " in proc.stderr and "(2 CPU))" in proc.stderr


@pytest.mark.timeout(450)
def test_item1_ctrl_c_leaves_an_interrupted_search_that_says_how_to_resume(tmp_path, ray_address, synth_dir,
                                                                           labeltune_home):
    """Issue 12 item 1: SIGINT to the driver -> exit 130, record 'interrupted', a line naming the resume command.
    Issue 22: Ctrl-C while trial 1 is held after its first epoch (not raced), the counts agree, and the resume
    finishes the search with one truth in every store."""
    from trainable.hold import HOLD_ENV

    space = write_space(tmp_path, model=["cnn5"])
    search_path = labeltune_home / "runs" / "s_int"
    hold = tmp_path / "hold"
    driver = subprocess.Popen(  # Popen from Python starts the child with SIGINT at its default
        [str(BIN / "labeltune"), "search", "--data", str(synth_dir), "--space", str(space), "--trials", "3",
         "--epochs", "2", "--concurrency", "1", "--grace-period", "2", "--name", "s_int", "--address", ray_address],
        stdout=(tmp_path / "out").open("w"), stderr=(tmp_path / "err").open("w"), start_new_session=True,
        env={**os.environ, HOLD_ENV: f"{hold}:1:1"},
    )
    try:
        wait_for(lambda: (hold / "held").exists(), 300, driver, "trial 1 held after its first epoch")
        driver.send_signal(signal.SIGINT)
        driver.wait(120)
        stdout, stderr = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    finally:
        (hold / "release").touch()
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 130, stdout + stderr
    assert "interrupted" in stderr and "labeltune search --resume s_int" in stderr
    so_far = int(re.search(r"interrupted: (\d+) trials so far", stderr).group(1))
    uri = f"sqlite:///{labeltune_home / 'mlruns' / 'mlflow.db'}"
    truth = one_truth(search_path, uri)
    assert truth["status"] == "interrupted" and truth["counts"]["unfinished"] == 1
    out = run_cli("searches").stdout
    line = next(line for line in out.splitlines() if line.startswith("s_int"))
    assert "interrupted" in line and f"{so_far}/3" in line  # the summary's count is the listing's (item 10)

    run_cli("search", "--resume", "s_int", "--address", ray_address)
    truth = one_truth(search_path, uri)
    assert truth["status"] == "finished" and sum(truth["counts"].values()) == 3


@pytest.mark.timeout(300)
def test_items2_3_14_promote_sees_exactly_the_trials_images_and_warns_about_a_store_without_the_search(
        tmp_path, ray_address, synth_dir, labeltune_home, caplog, monkeypatch):
    """Issue 12 items 2, 3 and 14: a search on --limit 100 with --skip-bad-images is promoted on those 100 images
    (its split, not one of all 160), and promoting a --no-track search into a store warns that its runs are missing."""
    import logging

    import mlflow

    from search.promote import promote

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    (data / "images" / "im150.jpg").write_bytes(b"not a jpeg")  # unreadable, and beyond --limit's first 100 images
    space = write_space(tmp_path, model=["cnn4"])
    run_cli("search", "--data", str(data), "--space", str(space), "--trials", "1", "--epochs", "1", "--limit", "100",
            "--skip-bad-images", "--no-track", "--name", "s_lim", "--address", ray_address)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with caplog.at_level(logging.WARNING, logger="search"):
        try:
            p = promote("s_lim", allow_below_baseline=True)
        finally:
            mlflow.set_tracking_uri(None)
    assert p.n_images == 100
    assert "- images: 100," in p.card.read_text()
    assert any("has no runs in the MLflow store" in r.getMessage() for r in caplog.records)
    assert "- search run: `-`" in p.card.read_text()
