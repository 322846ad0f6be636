"""trainable.synth: label plan priors, determinism, the written layout."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from trainable import data, synth

COURSE = {"people": 6403, "female": 3227, "portrait": 3121, "male": 2979, "clouds": 1095, "flower": 761,
          "night": 598, "tree": 525, "dog": 448, "bird": 360, "car": 319, "sea": 173, "river": 120, "baby": 95}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELTUNE_CACHE", str(tmp_path / "cache"))


def col(name: str) -> int:
    return synth.LABELS.index(name)


def test_labels_are_the_course_labels_sorted_and_each_has_a_cue():
    assert synth.LABELS == sorted(COURSE)
    assert synth.FREQUENCIES_PER_20K == COURSE
    assert set(synth.CUES) == set(synth.LABELS)


@pytest.mark.parametrize("n", [20000, 3000, 777])
def test_plan_matches_the_course_frequencies_and_unlabelled_share(n):
    targets = synth.plan_labels(n, np.random.default_rng(0))
    assert targets.shape == (n, 14) and targets.dtype == np.uint8
    counts = targets.sum(axis=0)
    for name, per_20k in COURSE.items():
        expected = n * per_20k / 20000
        assert abs(counts[col(name)] - expected) <= max(1.0, 0.15 * expected), name
    unlabelled = int((targets.sum(axis=1) == 0).sum())
    assert abs(unlabelled - n * 9824 / 20000) <= 0.05 * n * 9824 / 20000
    if n == 20000:
        assert {name: int(counts[col(name)]) for name in COURSE} == COURSE


def test_plan_keeps_the_course_co_occurrence():
    targets = synth.plan_labels(20000, np.random.default_rng(1))
    people = targets[:, col("people")] == 1
    for name in ("female", "male", "baby"):
        assert not np.any(targets[~people, col(name)]), f"{name} without people"
    portrait = targets[:, col("portrait")] == 1
    assert 0.85 <= people[portrait].mean() <= 0.95
    # scenes lean away from people; without that, ~10,600 images would be unlabelled, not ~9,824
    clouds = targets[:, col("clouds")] == 1
    assert people[clouds].mean() < people.mean()


def test_plan_is_deterministic_per_seed():
    a = synth.plan_labels(500, np.random.default_rng(7))
    b = synth.plan_labels(500, np.random.default_rng(7))
    c = synth.plan_labels(500, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_tiny_plans_still_show_every_label():
    targets = synth.plan_labels(20, np.random.default_rng(0))
    assert targets.sum(axis=0).min() >= 1


def test_render_every_cue_is_deterministic_and_about_a_tenth_gray():
    modes = []
    for i in range(300):
        labels = (synth.LABELS[i % 14],) if i % 3 else ()
        a = synth.render(labels, np.random.default_rng((5, i)))
        b = synth.render(labels, np.random.default_rng((5, i)))
        assert a.size == (128, 128) and a.mode in ("RGB", "L")
        assert a.tobytes() == b.tobytes()
        modes.append(a.mode)
    assert 0.04 <= modes.count("L") / len(modes) <= 0.18


def test_every_cue_stays_visible_at_32_pixels():
    # tests and demos train at 32x32: each cue, drawn on a flat background, must still
    # cover a good number of clearly changed pixels after downsampling
    from PIL import ImageDraw

    for name in synth.LABELS:
        changed = []
        for i in range(20):
            img = Image.new("RGB", (128, 128), (128, 128, 128))
            synth.CUES[name](ImageDraw.Draw(img), np.random.default_rng((9, i)), 128.0)
            small = np.asarray(img.convert("L").resize((32, 32), Image.BILINEAR), dtype=float)
            changed.append(int((np.abs(small - 128) > 30).sum()))
        assert np.median(changed) >= 12, (name, changed)


def test_write_dataset_layout_loads_and_is_reproducible(tmp_path):
    counts, unlabelled = synth.write_dataset(tmp_path / "a", n=40, test=6, seed=3, workers=2, progress=False)
    root = tmp_path / "a"
    assert sorted(p.name for p in (root / "annotations").iterdir()) == [f"{n}.txt" for n in synth.LABELS]
    assert len(list((root / "images").iterdir())) == 40
    assert sorted(p.name for p in (root / "test" / "images").iterdir()) == sorted(f"im{i}.jpg" for i in range(41, 47))

    ds = data.load(root)
    assert ds.labels == synth.LABELS and len(ds) == 40
    assert {name: int(v) for name, v in zip(ds.labels, ds.targets.sum(axis=0))} == counts
    assert ds.n_unlabelled == unlabelled
    assert {m for m in ds.modes} <= {"RGB", "L"}
    assert (ds.sizes == 128).all()

    lines = (root / "test" / "truth.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["Filename", *synth.LABELS]
    assert [line.split("\t")[0] for line in lines[1:]] == [f"im{i}.jpg" for i in range(41, 47)]
    for line in lines[1:]:
        assert {v for v in line.split("\t")[1:]} <= {"0", "1"} and len(line.split("\t")) == 15
    with Image.open(root / "test" / "images" / "im41.jpg") as img:
        assert img.size == (128, 128)

    # same seed, same bytes, whatever the number of processes; another seed, other images
    synth.write_dataset(tmp_path / "b", n=40, test=6, seed=3, workers=1, progress=False)
    assert data.load(tmp_path / "b").fingerprint == ds.fingerprint
    assert (tmp_path / "b" / "test" / "truth.tsv").read_bytes() == (root / "test" / "truth.tsv").read_bytes()
    synth.write_dataset(tmp_path / "c", n=40, test=0, seed=4, workers=1, progress=False)
    assert data.load(tmp_path / "c").fingerprint != ds.fingerprint
    assert not (tmp_path / "c" / "test").exists()


def test_write_dataset_refuses_to_overwrite(tmp_path):
    synth.write_dataset(tmp_path / "a", n=3, test=0, workers=1, progress=False)
    with pytest.raises(FileExistsError):
        synth.write_dataset(tmp_path / "a", n=3, test=0, workers=1, progress=False)
    with pytest.raises(ValueError):
        synth.write_dataset(tmp_path / "z", n=0)
