"""Bad search input is refused by the CLI before Ray starts (issue 12, items 4, 9, 10, 11, 12), in process."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from search.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("option, value", [("--epochs", "0"), ("--grace-period", "0"), ("--concurrency", "-1"),
                                           ("--time-budget", "0"), ("--trials", "0"), ("--limit", "-5"),
                                           ("--max-failures", "-1"), ("--cpus-per-trial", "0"),
                                           ("--target", "0"), ("--target", "1.5"), ("--plateau", "0")])
def test_item10_out_of_range_search_options_are_refused_with_the_range(option, value, synth_dir):
    result = run("search", "--data", str(synth_dir), option, value, "--no-track")
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output and "range" in result.output and "x" in result.output


def test_item10_an_infinite_learning_rate_is_refused_by_the_config(synth_dir, tmp_path):
    result = run("train", "--data", str(synth_dir), "--out", str(tmp_path / "r"), "--lr", "inf", "--no-track")
    assert result.exit_code == 1 and "lr: inf must be a finite number > 0" in result.output


@pytest.mark.parametrize("name", ["../../escape", "a/b", ".hidden", "sp ace", ""])
def test_item9_a_search_name_must_be_one_safe_folder_name(name, synth_dir, labeltune_home):
    result = run("search", "--data", str(synth_dir), "--name", name, "--no-track")
    assert result.exit_code == 1, result.output
    assert "--name" in result.output and "letters, digits" in result.output
    assert not (labeltune_home / "runs").exists() or not any((labeltune_home / "runs").iterdir())


@pytest.mark.parametrize("key, value", [("split_seed", [0, 1, 2]), ("seed", 3), ("epochs", [1, 2])])
def test_item4_a_space_file_cannot_override_what_the_search_fixes(key, value, synth_dir, tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"preset": "quick", key: value}))
    result = run("search", "--data", str(synth_dir), "--space", str(space), "--no-track")
    assert result.exit_code == 1
    assert f"{space}: {key}: fixed by the search" in result.output


def test_item11_resume_refuses_options_it_would_ignore(labeltune_home):
    result = run("search", "--resume", "s1", "--trials", "3", "--epochs", "2", "--data", "other")
    assert result.exit_code == 2
    assert "--data, --trials, --epochs cannot change it" in result.output


def test_item12_eval_names_the_labels_only_in_the_data(synth_dir, tmp_path):
    import shutil

    from trainable.config import TrainConfig
    from trainable.data import decode, load
    from trainable.gym import Gym

    dataset = load(synth_dir)
    cfg = TrainConfig(model="dummy", image_size=32, epochs=0, device="cpu", threads=1)
    gym = Gym(cfg, decode(dataset, "rgb", progress=False), dataset.targets, dataset.labels)
    gym.save(tmp_path / "c.pt", {})
    other = tmp_path / "other"
    shutil.copytree(synth_dir, other)
    (other / "annotations" / "dog.txt").rename(other / "annotations" / "puppy.txt")
    result = run("eval", "--checkpoint", str(tmp_path / "c.pt"), "--data", str(other))
    assert result.exit_code == 1
    assert "only in the checkpoint: dog" in result.output and "only in the data: puppy" in result.output


def test_item8_an_empty_split_is_refused_before_any_epoch(synth_dir, tmp_path, labeltune_home):
    result = run("train", "--data", str(synth_dir), "--out", str(tmp_path / "r"), "--model", "dummy", "--limit", "3",
                 "--no-track")
    assert result.exit_code == 1
    assert "the val split is empty (3 images split into train 2, val 0, test 1" in result.output
    assert not (tmp_path / "r" / "checkpoint.pt").exists(), "an epoch ran"
    result = run("train", "--data", str(synth_dir), "--out", str(tmp_path / "r"), "--model", "dummy",
                 "--split-fractions", "0.9,0,0.1", "--no-track")
    assert result.exit_code == 1 and "the val split is empty" in result.output
    result = run("search", "--data", str(synth_dir), "--limit", "3", "--no-track", "--name", "tiny")
    assert result.exit_code == 1 and "3 images split into train 2, val 0, test 1" in result.output


@pytest.mark.parametrize("key, value, what", [
    ("color", ["grey"], "color: 'grey' is not one of rgb, gray"),
    ("batch_size", [0], "batch_size: 0 must be >= 1"),
    ("image_size", [48], "image_size: 48 is not one of 128, 64, 32"),
    ("threshold", {"low": "abc", "high": 0.5}, "a range needs numbers low and high"),
    ("lr_adamw", {"low": -1, "high": 1, "log": True}, "a log range needs low > 0"),
    ("loss", ["bce", "focal"], "loss: 'focal' is not one of"),
    ("model", ["cnn5", "vgg"], "model: 'vgg' is not one of"),
])
def test_item7_every_space_value_is_checked_when_the_space_loads(key, value, what, synth_dir, tmp_path,
                                                                 labeltune_home):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"preset": "quick", key: value}))
    result = run("search", "--data", str(synth_dir), "--space", str(space), "--no-track", "--name", "bad")
    assert result.exit_code == 1, result.output
    assert f"Error: {space}: " in result.output and what in result.output
    assert "Traceback" not in result.output and not (labeltune_home / "runs" / "bad").exists()


def test_item13_a_dangling_link_is_named_as_one_and_a_tab_in_a_name_is_refused(synth_dir, tmp_path):
    import shutil

    from trainable.data import DatasetError, list_images, load

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    (data / "images" / "im201.jpg").symlink_to(tmp_path / "gone.jpg")
    with pytest.raises(DatasetError, match=r"images/im201.jpg: a symbolic link to .*gone.jpg, which does not exist"):
        load(data)
    folder = tmp_path / "pred"
    folder.mkdir()
    shutil.copy(next((synth_dir / "test" / "images").glob("im*.jpg")), folder / "a\tb.jpg")
    with pytest.raises(DatasetError, match="tab or line break"):
        list_images(folder)
    (folder / "a\tb.jpg").unlink()
    (folder / "im7.jpg").symlink_to(tmp_path / "missing.jpg")
    with pytest.raises(DatasetError, match="which does not exist"):
        list_images(folder)


def test_a_warm_start_from_a_missing_search_or_another_label_set_is_refused_before_ray(synth_dir, labeltune_home,
                                                                                      monkeypatch):
    from search import run as run_module
    from search.record import RECORD
    from search.study import STUDY_FILE

    monkeypatch.setattr(run_module, "init_ray", lambda *a, **k: pytest.fail("Ray started before the refusal"))
    result = run("search", "--data", str(synth_dir), "--warm-start", "nope", "--no-track")
    assert result.exit_code == 1 and "--warm-start nope: no search named nope" in result.output
    other = labeltune_home / "runs" / "other"
    other.mkdir(parents=True)
    (other / RECORD).write_text(json.dumps({"name": "other", "labels": ["cat", "dog"]}))
    (other / STUDY_FILE).write_bytes(b"")
    result = run("search", "--data", str(synth_dir), "--warm-start", "other", "--no-track")
    assert result.exit_code == 1 and "--warm-start other: its labels are not the data's" in result.output
    assert "only there: cat" in result.output and "Traceback" not in result.output
