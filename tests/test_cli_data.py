"""`labeltune data synth` and `labeltune data check`, run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LABELTUNE = REPO / ".venv" / "bin" / "labeltune"


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "LABELTUNE_CACHE": str(tmp_path / "cache")}


def labeltune(env, *args: str) -> subprocess.CompletedProcess:
    command = [str(LABELTUNE)] if LABELTUNE.exists() else [sys.executable, "-m", "search.cli"]
    return subprocess.run([*command, *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    env = {**os.environ, "LABELTUNE_CACHE": str(out.parent / "cache")}
    result = labeltune(env, "data", "synth", "--out", out, "--n", 120, "--test", 8, "--seed", 2)
    assert result.returncode == 0, result.stderr
    assert "wrote 120 annotated + 8 test images" in result.stdout
    assert "unlabelled" in result.stdout and "baby" in result.stdout
    return out


def test_synth_writes_the_course_layout(synth_dir):
    assert len(list((synth_dir / "images").glob("im*.jpg"))) == 120
    assert len(list((synth_dir / "annotations").glob("*.txt"))) == 14
    assert len(list((synth_dir / "test" / "images").glob("im*.jpg"))) == 8
    assert (synth_dir / "test" / "truth.tsv").read_text().startswith("Filename\tbaby\tbird\t")


def test_synth_refuses_an_existing_dataset_unless_forced(synth_dir, env, tmp_path):
    result = labeltune(env, "data", "synth", "--out", synth_dir, "--n", 5, "--test", 0)
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {synth_dir / 'images'} already exists (use --force to replace it)"

    copy = tmp_path / "copy"
    (copy / "images").mkdir(parents=True)
    (copy / "images" / "im999.jpg").write_text("stale")
    result = labeltune(env, "data", "synth", "--out", copy, "--n", 5, "--test", 0, "--force")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (copy / "images").iterdir()) == [f"im{i}.jpg" for i in range(1, 6)]


def test_check_reports_counts_histogram_gray_and_sizes(synth_dir, env, tmp_path):
    from trainable import data

    ds = data.load(synth_dir, cache_dir=tmp_path / "c")
    plot = tmp_path / "plots" / "labels.png"
    result = labeltune(env, "data", "check", synth_dir, "--plot", plot)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"{synth_dir}: 120 images, 14 labels" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    for name, count in zip(ds.labels, ds.targets.sum(axis=0)):
        assert rows[name][0] == str(int(count))
    assert rows["unlabelled"][0] == str(ds.n_unlabelled)
    assert rows["grayscale"][0] == str(ds.n_gray)
    assert "labels/image" in out and "128x128" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_check_refuses_a_bad_annotation_in_one_line(synth_dir, env, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(synth_dir, bad)
    lines = (bad / "annotations" / "bird.txt").read_text().splitlines()
    lines.insert(1, "l2")
    (bad / "annotations" / "bird.txt").write_text("\n".join(lines) + "\n")
    result = labeltune(env, "data", "check", bad)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines()[-1] == "Error: annotations/bird.txt:2: 'l2' is not an image number"
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error")]) == 1


def test_check_names_a_truncated_image_and_can_skip_it(synth_dir, env, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(synth_dir, bad)
    image = bad / "images" / "im7.jpg"
    image.write_bytes(image.read_bytes()[:300])
    result = labeltune(env, "data", "check", bad)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: images/im7.jpg: unreadable or truncated image")

    result = labeltune(env, "data", "check", bad, "--skip-bad-images")
    assert result.returncode == 0, result.stderr
    assert "119 images" in result.stdout and "skipped bad images: 1" in result.stdout


def test_check_of_a_folder_without_the_layout_fails_cleanly(env, tmp_path):
    result = labeltune(env, "data", "check", tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"Error: {tmp_path / 'images'}: no such folder (the course layout is " \
                                    f"images/im<N>.jpg and annotations/<label>.txt)"


def test_data_check_imports_no_heavy_framework(synth_dir, env):
    # `labeltune data check` must not pay for torch, Ray, MLflow or Optuna
    code = ("import sys, atexit\n"
            "atexit.register(lambda: print('HEAVY', sorted(m for m in ('torch', 'ray', 'mlflow', 'optuna') "
            "if m in sys.modules), file=sys.stderr))\n"
            "from search.cli.data import data\n"
            f"data(['check', {str(synth_dir)!r}])\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stderr
