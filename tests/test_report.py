"""search/report.py, search/report_text.py and `labeltune report` on a search folder built here: a kept Optuna study, Tune's
result.json files and a record, the files a real search leaves (no Ray, no training)."""

from __future__ import annotations

import json
import logging
import math
import shutil
import types
from pathlib import Path

import pytest

from trainable.metrics import PRIMARY_METRIC

MAX_EPOCHS = 9
STRONG = "efficientnet_lite0"
"""the model that scores high at the first rung: what importance must find"""


def make_search(storage: Path, n_trials: int, name: str = "s", states: dict | None = None,
                outcomes: dict | None = None, status: str = "finished") -> Path:
    """A finished search of `n_trials`: a third use STRONG (rung score ~0.8, run all epochs), the rest score ~0.2
    and stop after 1 or 3 epochs; results arrive interleaved across trials.

    `states`: trial number -> the optuna TrialState its Optuna trial ends in (default COMPLETE); a RUNNING one
    is never told, as a trial an interrupted driver left. `outcomes`: trial number -> the outcome attribute
    (search/outcome.py) the driver wrote on it."""
    import optuna
    from optuna.trial import TrialState

    from search import space as spaces
    from search.record import SearchRecord
    from search.report import STUDY_FILE, TUNE_TRIAL_ATTR

    space = spaces.load_space("quick")
    space["model"] = [STRONG, "cnn4", "cnn5"]
    constants = {"epochs": MAX_EPOCHS, "split_seed": 0, "seed": 0}
    record = SearchRecord(name=name, storage=str(storage), space=space, constants=constants, status=status,
                          options={"epochs": MAX_EPOCHS, "grace_period": 1, "trials": n_trials},
                          baselines={f"baseline/{PRIMARY_METRIC}": 0.3}, baseline_rule="predict people")
    record.write()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Asked in memory and copied in one go: an ask/tell per trial on sqlite costs ~0.3 s on a busy machine.
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(n_trials):
        study.enqueue_trial({"model": space["model"][i % 3]})
        trial = study.ask()
        config = spaces.define_by_run(trial, space, constants, ())
        trial_id = f"t{i:03d}"
        trial.set_user_attr(TUNE_TRIAL_ATTR, trial_id)
        strong = config["model"] == STRONG
        epochs = MAX_EPOCHS if strong else (1 if i % 2 else 3)
        scores = [(0.8 if strong else 0.2) + 0.001 * i + 0.01 * e for e in range(epochs)]
        rows = [{PRIMARY_METRIC: s, "training_iteration": e + 1, "trial_id": trial_id, "config": config,
                 "reported_at": 1000.0 + 10 * e + i, "time_this_iter_s": 2.0} for e, s in enumerate(scores)]
        folder = record.path / f"trial_{trial_id}"
        folder.mkdir()
        (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
        state = (states or {}).get(i, TrialState.COMPLETE)
        if state != TrialState.RUNNING:
            study.tell(trial, scores[-1] if state == TrialState.COMPLETE else None, state=state)
    kept = optuna.create_study(study_name=name, storage=f"sqlite:///{record.path / STUDY_FILE}", direction="maximize")
    kept.add_trials(study.trials)
    if outcomes:  # what the driver decided, as search/study.py settle keeps it
        from search.outcome import OUTCOMES_ATTR

        kept.set_user_attr(OUTCOMES_ATTR, {f"t{i:03d}": {"outcome": o, "best": None} for i, o in outcomes.items()})
    return record.path


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """A search of exactly MIN_TRIALS_FOR_IMPORTANCE trials (tests copy it before changing it)."""
    from search.report import MIN_TRIALS_FOR_IMPORTANCE

    return make_search(tmp_path_factory.mktemp("big"), MIN_TRIALS_FOR_IMPORTANCE)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A search of 6 trials: t000, t003 run all epochs, t001, t005 stop at 1, t002, t004 at 3."""
    return make_search(tmp_path_factory.mktemp("small"), 6, name="demo")


def copy_of(search: Path, tmp_path: Path) -> Path:
    shutil.copytree(search, tmp_path / search.name)
    return tmp_path / search.name


def test_importance_is_computed_on_the_first_rung_above_the_minimum(big):
    from search.report import MIN_TRIALS_FOR_IMPORTANCE, MIN_TRIALS_PER_PARAM, analyse

    report = analyse(big)
    importance = report.importance
    assert importance.trials == MIN_TRIALS_FOR_IMPORTANCE
    assert next(iter(importance.values)) == "model", importance.values  # the one parameter that sets the rung score
    assert sum(importance.values.values()) == pytest.approx(1.0)
    # Conditional parameters are assessed on the trials that have them, one lr per optimizer, none merged:
    # width (the two small CNNs, 20 of 30 trials) is; each lr_<optimizer> (about 30/4 trials) is left out, and says so.
    assert "width" in importance.values and "lr" not in importance.values
    assert importance.skipped and all(n < MIN_TRIALS_PER_PARAM for n in importance.skipped.values())
    assert not set(importance.skipped) & set(importance.values) and "lr_adamw" in importance.skipped
    assert "not assessed" in importance.note and "lr_adamw" in importance.note
    assert all(t.rung_score == pytest.approx((0.8 if t.config["model"] == STRONG else 0.2) + 0.001 * int(t.trial_id[1:]))
               for t in report.trials)


def test_one_trial_below_the_minimum_importance_says_too_few_trials(big, tmp_path):
    from search.cli.report import text_lines
    from search.report import analyse

    path = copy_of(big, tmp_path)
    (path / "trial_t007" / "result.json").write_text("")  # a trial that never reported: no first-rung score
    report = analyse(path)
    assert report.importance.values == {} and report.importance.note.startswith("too few trials")
    assert "completed trials without a score at epoch 1" in report.importance.note
    assert "too few trials" in "\n".join(text_lines(report))


def test_tied_first_rung_scores_give_no_importance(big, tmp_path):
    from search.report import analyse

    path = copy_of(big, tmp_path)
    for result in path.glob("trial_*/result.json"):  # every trial learned nothing by the first rung
        rows = [json.loads(line) for line in result.read_text().splitlines()]
        rows[0][PRIMARY_METRIC] = 0.0
        result.write_text("".join(json.dumps(r) + "\n" for r in rows))
    importance = analyse(path).importance
    assert importance.values == {} and "do not separate" in importance.note


def test_history_is_best_so_far_in_arrival_order(small):
    from search.catalog import trial_results
    from search.report import analyse

    report = analyse(small)
    rows = [r for rows in trial_results(small).values() for r in rows]
    spent, scores, best, trial_ids = zip(*report.history)
    assert spent == tuple(range(1, len(rows) + 1))
    assert all(a <= b for a, b in zip(best, best[1:])) and best[-1] == max(r[PRIMARY_METRIC] for r in rows)
    assert best == tuple(max(scores[:i + 1]) for i in range(len(scores)))
    # Interleaved: every trial's first epoch (reported_at 1000 + i) arrives before any second epoch (1010 + i).
    assert trial_ids[:6] == tuple(f"t{i:03d}" for i in range(6))


def test_budget_splits_stopped_and_finished_trials(small):
    from search.report import analyse
    from search.report_text import budget_lines, outcome_line

    report = analyse(small)
    full, stopped, failed = (report.budget[o] for o in ("finished", "stopped_early", "failed"))
    assert (full.trials, full.epochs) == (2, 2 * MAX_EPOCHS)
    assert (stopped.trials, stopped.epochs) == (4, 1 + 3 + 3 + 1)
    assert report.counts == {"finished": 2, "stopped_early": 4, "ended_by_stop": 0, "failed": 0, "never_ran": 0,
                             "unfinished": 0}
    assert full.seconds == pytest.approx(2.0 * full.epochs) and stopped.seconds == pytest.approx(2.0 * stopped.epochs)
    assert [t.trial_id for t in report.trials[:2]] == ["t003", "t000"]
    assert outcome_line(report) == "trials: 2 finished, 4 stopped early, 0 failed"
    assert [line.split(":")[0].strip() for line in budget_lines(report)] == [
        f"finished (all {MAX_EPOCHS} epochs)", "stopped early", "failed", "in all"]


def test_outcomes_are_what_the_kept_study_holds(tmp_path):
    from optuna.trial import TrialState

    from search.cli.report import text_lines
    from search.report import analyse
    from search.report_text import budget_lines, outcome_line

    # By state: t000 (ran all epochs) FAILED, t001 (1 epoch) and t004 (3) still RUNNING, t002 PRUNED; t005 failed
    # before its first report (no result row); t006 a trial Tune's saved state does not hold. By the outcome the
    # driver wrote (search.study.settle): t007 (1 epoch, COMPLETE) was ended by --target.
    path = make_search(tmp_path, 8, name="mixed", status="interrupted", outcomes={7: "ended_by_stop"}, states={
        0: TrialState.FAIL, 1: TrialState.RUNNING, 4: TrialState.RUNNING, 2: TrialState.PRUNED, 5: TrialState.FAIL})
    (path / "trial_t005" / "result.json").write_text("")
    (path / "experiment_state-2026-12-01_10-00-00.json").write_text(json.dumps({"trial_data": [
        [json.dumps({"trial_id": f"t{i:03d}"}), "{}"] for i in (0, 1, 2, 3, 4, 5, 7)]}))
    report = analyse(path)
    outcome = {t.trial_id: t.outcome for t in report.trials}
    assert outcome == {"t000": "failed", "t001": "unfinished", "t002": "stopped_early", "t003": "finished",
                       "t004": "unfinished", "t005": "failed", "t007": "ended_by_stop"}
    assert report.lost == 1 and sum(report.counts.values()) == 7
    assert outcome_line(report) == ("trials: 1 finished, 1 stopped early, 1 ended by the stop, 2 failed, 2 unfinished; "
                                    "the study also holds 1 trial Tune's saved state lost (a driver killed between "
                                    "snapshots), not counted")
    text = "\n".join(text_lines(report))
    assert "mixed (interrupted): 7 trials of 8" in text
    assert "unfinished:" in "\n".join(budget_lines(report)) and "search --resume continues them" in text
    # Importance is computed on the completed trials (COMPLETE or PRUNED) with a first-rung score: t002, t003, t007.
    assert report.importance.note.startswith("too few trials: 3 completed trials with a score at epoch 1")


def test_history_rows_are_distinct_points_with_their_own_share():
    from search.record import SearchRecord
    from search.report import SearchReport, Spent
    from search.report_text import history_lines

    def lines(history, total):
        report = SearchReport(record=SearchRecord(name="s", storage="/x"), rung=1, max_epochs=2, trials=[],
                              history=history, importance=None, budget={"finished": Spent(1, total, 0.0)})
        return history_lines(report)[1:-1]

    # Two trial-epochs: the 10%, 25% and 50% marks all land on the first; 75% and 100% on the second.
    assert lines([(1, 0.4, 0.4, "a"), (2, 0.6, 0.6, "a")], 2) == [
        f"  {'1 (50%)':>12}  {0.4:>18.4f}  a", f"  {'2 (100%)':>12}  {0.6:>18.4f}  a"]
    # Epochs without a score count as spent but are no point: 10 epochs, scores at 1 and 9 only.
    rows = lines([(1, 0.3, 0.3, "a"), (9, 0.2, 0.3, "b")], 10)
    assert [row.split()[:2] for row in rows] == [["1", "(10%)"], ["9", "(90%)"]]


def test_a_damaged_study_stops_the_report_in_one_line_before_anything_is_written(small, tmp_path):
    from click.testing import CliRunner

    from search.cli import main

    path = copy_of(small, tmp_path)
    (path / "optuna.db").write_text("garbage")  # printf 'garbage' > optuna.db
    result = CliRunner().invoke(main, ["report", "demo", "--storage", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"Error: {path / 'optuna.db'} is not a readable Optuna study (not an SQLite database): restore it from a "
        f"backup or delete it; without it the report has no importance and takes each trial's outcome from its "
        f"epochs (a failed trial then counts as stopped early)"]
    assert not list(path.glob("report*")) and (path / "optuna.db").read_text() == "garbage"

    (path / "optuna.db").unlink()  # what the message offers: the report then works from the trials' epochs
    result = CliRunner().invoke(main, ["report", "demo", "--storage", str(tmp_path)])
    assert result.exit_code == 0 and "no kept study: outcomes from epochs" in result.output, result.output


def test_a_damaged_sibling_does_not_touch_the_report_of_a_good_search(small, tmp_path):
    from click.testing import CliRunner

    from search.cli import main

    copy_of(small, tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "labeltune_search.json").write_text("{cut")
    (tmp_path / "broken" / "optuna.db").write_text("garbage")
    result = CliRunner().invoke(main, ["report", "demo", "--storage", str(tmp_path)])
    assert result.exit_code == 0 and "trials: 2 finished, 4 stopped early, 0 failed" in result.output, result.output


def test_parallel_coordinates_have_one_log_lr_axis(small, tmp_path):
    from search.record import SearchRecord
    from search.report import FIGURES, parallel_axes
    from search.report_text import write_report

    path = copy_of(small, tmp_path)
    axes = parallel_axes(SearchRecord.read(path).space)
    names = [a.name for a in axes]
    assert names.count("lr") == 1 and not any(n.startswith("lr_") for n in names)
    assert names[:5] == ["model", "optimizer", "lr", "loss", "batch_size"] and names[-1].startswith("asl_")
    lr = axes[names.index("lr")]
    assert lr.log and (lr.low, lr.high) == (1e-5, 1.0)  # adamw/adam's 1e-5 .. adadelta's 1.0
    assert lr.position(1e-5) == 0.0 and lr.position(1e-3) == pytest.approx(0.4)
    assert math.isnan(axes[names.index("width")].position(None))  # a backbone has no width: a gap in its line
    written = write_report(path)
    for figure in ("overview", "history", "parallel"):
        assert (path / FIGURES[figure]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({FIGURES[figure]})" in written.read_text()


def test_parallel_coordinates_leave_out_the_axes_no_drawn_trial_has():
    """Issue 25 item 8: no asl_* axes when no trial used the asymmetric loss, no width when none trained a small CNN."""
    from search import space as spaces
    from search.report import parallel_axes

    space = spaces.load_space("quick")
    bce = {"model": "efficientnet_lite0", "optimizer": "adamw", "lr_adamw": 1e-3, "loss": "bce", "batch_size": 32}
    asl = {**bce, "model": "cnn4", "width": 0.5, "loss": "asl", "asl_gamma_neg": 4.0, "asl_gamma_pos": 0.0,
           "asl_clip": 0.05}
    everything = [a.name for a in parallel_axes(space)]
    assert {"asl_gamma_neg", "width", "threshold"} <= set(everything)  # the space alone: every searched axis
    assert [a.name for a in parallel_axes(space, [bce])] == ["model", "optimizer", "lr", "loss", "batch_size"]
    assert [a.name for a in parallel_axes(space, [bce, asl])] == [n for n in everything if n in {**bce, **asl, "lr": 1}]


def test_each_model_optimizer_and_loss_has_its_trials_best_and_median(small, tmp_path):
    """Issue 25 item 5: below the importance minimum the report says what each choice scored, with the baseline."""
    from search.cli.report import text_lines
    from search.report import BY_CHOICE, analyse
    from search.report_text import CHOICE_SECTION, write_report

    report = analyse(small)
    # `small`: t000, t003 on STRONG ran all 9 epochs (best 0.8 + 0.001 i + 0.08); cnn4 t001 (1 epoch), t004 (3);
    # cnn5 t002 (3 epochs), t005 (1): best 0.2 + 0.001 i + 0.01 (epochs - 1).
    models = [(g.choice, g.trials, g.best, g.median, g.full) for g in report.by_choice["model"]]
    assert models == [(STRONG, 2, pytest.approx(0.883), pytest.approx(0.8815), [True, True]),
                      ("cnn5", 2, pytest.approx(0.222), pytest.approx(0.2135), [False, False]),
                      ("cnn4", 2, pytest.approx(0.224), pytest.approx(0.2125), [False, False])]
    space = report.record.space
    for param in BY_CHOICE:
        groups = report.by_choice[param]
        assert {g.choice for g in groups} == set(space[param]), param  # untried choices too
        assert sum(g.trials for g in groups) == 6
        tried = [g.median for g in groups if g.trials]
        assert tried == sorted(tried, reverse=True) and all(g.best is None for g in groups[len(tried):])
    text = "\n".join(text_lines(report))
    assert f"{STRONG:<20}       2    0.8830    0.8815" in text and "  no-learning baseline  " in text
    assert "fewer than the 30 importance needs, so this is the view that says what mattered" in text
    markdown = write_report(copy_of(small, tmp_path), report).read_text()
    assert f"## {CHOICE_SECTION}" in markdown and "![What mattered](report_overview.png)" in markdown


def test_above_the_importance_minimum_the_choices_stay_beside_ped_anova(big):
    from search.report import analyse
    from search.report_text import CHOICE_SECTION, sections

    report = analyse(big)
    body = sections(report)
    assert report.importance.values and body["Hyperparameter importance"][0].startswith("PED-ANOVA on 30 trials")
    assert "importance needs" not in body[CHOICE_SECTION][0]
    assert sum(g.trials for g in report.by_choice["model"]) == len(report.trials) == 30


class FakeClient:
    """The MlflowClient calls log_to_run makes, recorded."""

    def __init__(self):
        self.artifacts, self.metrics, self.tags = [], [], {}

    def log_artifact(self, run_id, local_path, artifact_path=None):
        self.artifacts.append((run_id, Path(local_path).name, artifact_path, Path(local_path).read_bytes()))

    def log_batch(self, run_id, metrics=()):
        self.metrics += [(run_id, m.key, m.value, m.step) for m in metrics]

    def set_tag(self, run_id, key, value):
        self.tags[(run_id, key)] = value

    def get_run(self, run_id):
        tags = {key: value for (run, key), value in self.tags.items() if run == run_id}
        return types.SimpleNamespace(data=types.SimpleNamespace(tags=tags))


def test_log_to_run_logs_the_files_and_the_importance_table(big, tmp_path):
    import csv
    import io

    from search.report import MIN_TRIALS_FOR_IMPORTANCE
    from search.tracking.report import ARTIFACT_DIR, IMPORTANCE_TABLE, log_to_run

    client = FakeClient()
    report = log_to_run(client, "run1", copy_of(big, tmp_path))
    assert {(name, where) for _, name, where, _ in client.artifacts} == {
        ("overview.png", None), *((name, ARTIFACT_DIR) for name in (
            "report.md", "report_overview.png", "report_history.png", "report_parallel.png", "report_importance.png",
            IMPORTANCE_TABLE))}
    assert {run for run, *_ in client.artifacts} == {"run1"}
    assert client.metrics == []  # importance is a table: the experiment's columns stay few (issue 25)
    (table,) = [body for _, name, _, body in client.artifacts if name == IMPORTANCE_TABLE]
    rows = list(csv.DictReader(io.StringIO(table.decode())))
    assert {r["param"]: float(r["importance"]) for r in rows} == pytest.approx(report.importance.values, rel=1e-5)
    assert {int(r["trials"]) for r in rows} == {MIN_TRIALS_FOR_IMPORTANCE}
    note = client.tags[("run1", "mlflow.note.content")]
    assert "**PED-ANOVA importance**" in note and f"model {report.importance.values['model']:.2f}" in note


def test_the_parent_run_description_opens_with_the_best_trial_against_the_baseline_then_each_choice(small, tmp_path):
    """Issue 25 items 4 and 5: the parent run's first screen; its chart at the top of the artifacts."""
    from search.tracking.report import NOTE_LIMIT, REPORT_END, log_to_run

    client = FakeClient()
    client.set_tag("run1", "mlflow.note.content", "labeltune search **demo**: 6 trials x 9 epochs\n- data: `/d`")
    path = copy_of(small, tmp_path)
    log_to_run(client, "run1", path)
    report = log_to_run(client, "run1", path)  # a resume's end: the report part is replaced, the tracker's kept
    note = client.tags[("run1", "mlflow.note.content")]
    assert note.count(REPORT_END) == 1 and note.count("**Search `demo`**") == 1
    assert note.endswith(f"{REPORT_END}\n\nlabeltune search **demo**: 6 trials x 9 epochs\n- data: `/d`\n")
    lines = note.splitlines()
    assert lines[0] == ("**Search `demo`** (finished): 6 trials of 6 (2 finished, 4 stopped early, 0 failed), "
                        "26 trial-epochs.")
    assert lines[2] == (f"Best trial `t003`: {PRIMARY_METRIC} **0.8830** at epoch 9 against **0.3000** for the "
                        f"no-learning baseline (predict people): +0.5830.")
    assert "![what mattered](get-artifact?path=overview.png&run_uuid=run1)" in lines
    for param in ("model", "optimizer", "loss"):
        table = lines[lines.index(f"| {param} | trials | best | median |"):]
        rows = table[2:2 + len(report.by_choice[param]) + 1]
        assert rows[-1] == "| _no-learning baseline_ | | 0.3000 | |"  # every table next to its baseline
        assert [row.split(" | ")[0].strip("| ") for row in rows[:-1]] == [g.choice for g in report.by_choice[param]]
    assert f"| {STRONG} | 2 | 0.8830 | 0.8815 |" in lines and "PED-ANOVA" not in note and len(note) < NOTE_LIMIT
    chart = [data for _, name, where, data in client.artifacts if name == "overview.png"][-1]
    assert chart[:8] == b"\x89PNG\r\n\x1a\n" and chart == report.figures["overview"].read_bytes()


def test_a_failing_report_only_warns_at_the_end_of_a_search(tmp_path, monkeypatch, caplog):
    import search.tracking.report
    from search.record import SearchRecord
    from search.stopping import Outcomes
    from search.run import _finish

    class Results(list):
        num_terminated = num_errors = 0

    class Tuner:
        def fit(self):
            return Results()

    class Tracker:
        parent_run_id, tracking_uri, client = "run1", "sqlite:///x", None

        def end_parent(self, interrupted, stop_reason=""):
            calls.append(("end_parent", interrupted))

    calls = []

    def broken(client, run_id, path):
        calls.append((run_id, path))
        raise RuntimeError("store gone")

    monkeypatch.setattr(search.tracking.report, "log_to_run", broken)
    record = SearchRecord(name="s", storage=str(tmp_path), options={"trials": 0, "epochs": 1})
    with caplog.at_level(logging.WARNING, logger="search.run"):
        summary = _finish(Tuner().fit(), record, Tracker(), None, Outcomes(max_epochs=1), 0.0)
    assert calls == [("end_parent", False), ("run1", record.path)] and summary.parent_run_id == "run1"
    assert "store gone" in caplog.text and "labeltune report s" in caplog.text


def test_the_report_command_prints_the_sections_and_writes_report_md(small, tmp_path):
    from click.testing import CliRunner

    from search.cli import main

    path = copy_of(small, tmp_path)
    result = CliRunner().invoke(main, ["report", "demo", "--storage", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for section in ("Top trials", "What each choice scored", "Hyperparameter importance", "Optimisation history",
                    "Where the budget went",
                    "too few trials", "baseline (no learning", f"written: {path / 'report.md'}"):
        assert section in result.output, section
    markdown = (path / "report.md").read_text()
    assert markdown.startswith("# Search demo") and "too few trials" in markdown
    assert not (path / "report_importance.png").exists()  # no importance, no chart of it
    missing = CliRunner().invoke(main, ["report", "nope", "--storage", str(tmp_path)])
    assert missing.exit_code == 1 and "no search named nope" in missing.output


def test_the_report_says_per_model_what_share_of_the_trials_wall_time_went_to_training():
    from search.report import TrialSummary, time_by_model
    from trainable import timing

    def rows(train, val, start):
        # two epochs, each `train` + `val` seconds, reported back to back from `start`
        return [{"epoch": e, "training_iteration": e, timing.TRAIN: train, timing.VAL_FORWARD: val,
                 timing.METRICS: 0.0, timing.CHECKPOINT: 0.0, timing.REPORT: 0.0, timing.EPOCH: train + val,
                 "started_at": start, "reported_at": start + 1.0 + e * (train + val)} for e in (1, 2)]

    def trial(model, train, val):
        r = rows(train, val, 100.0)
        return TrialSummary(trial_id=model, config={"model": model}, best=0.5, best_epoch=2, epochs=2, epochs_run=2,
                            seconds=0.0, rung_score=0.5, time=timing.summarise(r))

    models = time_by_model([trial("cnn5", 1.0, 1.0), trial("cnn5", 1.0, 1.0), trial("resnet50", 4.0, 0.0),
                            TrialSummary("old", {"model": "cnn4"}, 0.5, 1, 1, 1, 0.0, 0.5)])
    assert [m.model for m in models] == ["cnn5", "resnet50"]  # most wall first (10 s, 9 s); the untimed one left out
    cnn5 = models[0]
    assert cnn5.trials == 2 and cnn5.wall_s == pytest.approx(2 * (1.0 + 4.0))  # 1 s to the first epoch, 2 epochs
    assert cnn5.train_share == pytest.approx(4.0 / 10.0) and cnn5.epoch_s == pytest.approx(2.0)
    assert models[1].train_share == pytest.approx(8.0 / 9.0)
