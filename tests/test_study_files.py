"""Damaged and foreign files of a search folder: the kept Optuna study (`optuna.db`) and the search record.

Each is refused in one line that names the file and what to do, before anything opens it for
writing; `labeltune searches` lists a damaged search as a row of its own and the others as usual.
The files are built here (optuna directly, JSON by hand): no Ray, no training.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from trainable.metrics import PRIMARY_METRIC


@pytest.fixture(scope="module")
def good_study(tmp_path_factory) -> Path:
    """A search folder `s` whose optuna.db holds study `s` of 20 finished trials."""
    import optuna

    from search.record import study_url

    folder = tmp_path_factory.mktemp("good") / "s"
    folder.mkdir()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", storage=study_url(folder))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=20)
    return folder


def damage(folder: Path, how: str, good: Path) -> None:
    """Put an optuna.db damaged as `how` says into search folder `folder`."""
    db = folder / "optuna.db"
    whole = (good / "optuna.db").read_bytes()
    if how == "garbage":
        db.write_text("garbage")  # printf 'garbage' > optuna.db
    elif how == "empty":
        db.write_bytes(b"")
    elif how == "truncated":
        db.write_bytes(whole[: len(whole) // 2])
    elif how == "header only":
        db.write_bytes(whole[:100])
    elif how == "foreign sqlite":
        connection = sqlite3.connect(db)
        connection.execute("CREATE TABLE runs (id INTEGER)")
        connection.commit()
        connection.close()
    elif how == "another search's study":
        db.write_bytes(whole)  # holds study `s`; the folder's search is `other`


@pytest.mark.parametrize("how, reason", [
    ("garbage", "not an SQLite database"),
    ("empty", "an empty file"),
    ("truncated", "database disk image is malformed"),
    ("header only", "database disk image is malformed"),
    ("foreign sqlite", "an SQLite file without Optuna's tables studies, trials, version_info"),
    ("another search's study", "no study named other; it holds s"),
])
def test_a_damaged_study_is_one_line_naming_the_file_and_left_as_it_was(good_study, tmp_path, how, reason):
    from search.options import SearchError
    from search.record import load_kept_study, study_problem

    folder = tmp_path / "other"
    folder.mkdir()
    damage(folder, how, good_study)
    before = (folder / "optuna.db").read_bytes()
    assert study_problem(folder, "other") == reason
    with pytest.raises(SearchError) as err:
        load_kept_study(folder, "other", "then the report has no importance")
    assert str(err.value) == (f"{folder / 'optuna.db'} is not a readable Optuna study ({reason}): restore it from a "
                              f"backup or delete it; then the report has no importance")
    assert (folder / "optuna.db").read_bytes() == before  # Optuna never got it: no tables created in it
    assert sorted(p.name for p in folder.iterdir()) == ["optuna.db"]


def test_a_missing_study_says_so_and_a_good_one_loads(good_study, tmp_path):
    from search.options import SearchError
    from search.record import load_kept_study, study_problem

    assert study_problem(tmp_path, "s") is None  # no file is no damage (a search from before studies were kept)
    with pytest.raises(SearchError, match="no Optuna study kept here"):
        load_kept_study(tmp_path, "s")
    assert not (tmp_path / "optuna.db").exists()
    assert len(load_kept_study(good_study, "s").trials) == 20


def test_a_study_whose_writer_was_killed_mid_transaction_still_reads(good_study, tmp_path):
    from search.record import load_kept_study, study_problem

    folder = tmp_path / "s"
    shutil.copytree(good_study, folder)
    writer = ("import os, sqlite3, sys\n"
              "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
              "c.execute('PRAGMA cache_size=1'); c.execute('BEGIN')\n"  # a small cache: pages reach the file
              "for i in range(2000): c.execute(\"INSERT INTO study_user_attributes (study_id, key, value_json) "
              "VALUES (1, ?, 'x')\", (f'k{i}',))\n"
              "os._exit(9)\n")  # killed before COMMIT: a hot journal beside the file
    subprocess.run([sys.executable, "-c", writer, str(folder / "optuna.db")], check=False, timeout=60)
    assert (folder / "optuna.db-journal").exists()
    assert study_problem(folder, "s") is None  # rolled back as any sqlite reader does, not called damaged
    study = load_kept_study(folder, "s")
    assert len(study.trials) == 20 and study.user_attrs == {}


@pytest.mark.parametrize("values, message", [
    ({"name": "s", "options": "trials=4"}, "options is a string, not an object"),
    ({"name": "s", "labels": {"a": 1}, "best": "0.5"},
     "labels is an object, not a list; best is a string, not a number or null"),
    ({"name": 7}, "name is an integer, not a string"),
])
def test_a_record_of_the_wrong_kinds_is_a_damaged_record(tmp_path, values, message):
    from search.options import SearchError
    from search.record import RECORD, SearchRecord

    (tmp_path / RECORD).write_text(json.dumps(values))
    with pytest.raises(SearchError) as err:
        SearchRecord.read(tmp_path)
    assert str(err.value) == (f"{tmp_path / RECORD}: damaged search record ({message}): restore it from a backup "
                              f"(without it no labeltune command finds the search {tmp_path.name})")


def write_search(storage: Path, name: str, record: str | dict, f1: float = 0.5) -> Path:
    folder = storage / name
    (folder / "trial_a").mkdir(parents=True)
    (folder / "trial_a" / "result.json").write_text(json.dumps({PRIMARY_METRIC: f1, "training_iteration": 1}) + "\n")
    (folder / "labeltune_search.json").write_text(record if isinstance(record, str) else json.dumps(record))
    return folder


def test_searches_lists_a_damaged_search_as_a_row_and_the_others_as_usual(good_study, tmp_path):
    from click.testing import CliRunner

    from search.catalog import list_searches
    from search.cli import main

    write_search(tmp_path, "a-good", {"name": "a-good", "status": "finished", "options": {"trials": 2},
                                      "started": "2026-12-01T10:00:00"}, f1=0.61)
    write_search(tmp_path, "b-cut", '{"name": "b-cut", "status": "fini')  # a record cut by a full disk
    write_search(tmp_path, "c-typed", {"name": "c-typed", "options": ["trials"]})
    study_damaged = write_search(tmp_path, "d-study", {"name": "d-study", "status": "finished",
                                                       "options": {"trials": 1}})
    damage(study_damaged, "garbage", good_study)
    rows = {row["name"]: row for row in list_searches(str(tmp_path))}
    assert [rows[n]["status"] for n in ("a-good", "b-cut", "c-typed", "d-study")] == ["finished", "damaged", "damaged",
                                                                                     "finished"]
    assert (rows["a-good"]["best"], rows["a-good"]["problem"]) == (0.61, "")
    assert rows["b-cut"]["problem"].startswith(f"{tmp_path / 'b-cut' / 'labeltune_search.json'}: unreadable search "
                                               f"record (Unterminated string")
    assert rows["d-study"]["problem"].startswith(f"{study_damaged / 'optuna.db'} is not a readable Optuna study")

    result = CliRunner().invoke(main, ["searches", "--storage", str(tmp_path)])
    assert result.exit_code == 0, result.output
    table = result.stdout.splitlines()
    assert [line.split()[:2] for line in table[1:]] == [["a-good", "finished"], ["b-cut", "damaged"],
                                                        ["c-typed", "damaged"], ["d-study", "finished!"]]
    assert "0.6100" in table[1] and "1/2" in table[1]
    warnings = result.stderr.splitlines()
    assert len(warnings) == 3 and all(line.startswith(f"warning: {tmp_path}/") for line in warnings)
    assert "restore it from a backup" in warnings[0] and "search --resume read it" in warnings[2]
