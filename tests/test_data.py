"""trainable.data: the course layout reader, its refusals, the decode cache, splits."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainable import data
from trainable.data import DatasetError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test gets its own decode cache."""
    path = tmp_path / "cache"
    monkeypatch.setenv("LABELTUNE_CACHE", str(path))
    return path


def write_image(path: Path, seed: int, mode: str = "RGB", size: tuple[int, int] = (128, 128), fmt: str = "JPEG") -> None:
    rng = np.random.default_rng(seed)
    w, h = size
    # smooth content (a gradient plus a block) keeps JPEG artefacts small and pixels distinct
    base = np.add.outer(np.linspace(0, 180, h), np.linspace(0, 60, w))
    base[h // 4:h // 2, w // 4:w // 2] += rng.integers(20, 60)
    rgb = np.stack([base, base[::-1], base[:, ::-1]], axis=-1)
    img = Image.fromarray(np.clip(rgb + rng.integers(0, 10, rgb.shape), 0, 255).astype(np.uint8))
    if mode == "I;16":
        a = (np.asarray(img.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        img = Image.fromarray(a)
    elif mode != "RGB":
        img = img.convert(mode)
    img.save(path, fmt)


def make_dataset(root: Path, n: int = 6, notes: dict[str, str] | None = None) -> Path:
    """root/images/im1.jpg..im<n>.jpg and root/annotations/<label>.txt with the given text."""
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for i in range(1, n + 1):
        write_image(root / "images" / f"im{i}.jpg", seed=i)
    notes = {"bird": "1\n3\n", "dog": "2\n3\n"} if notes is None else notes
    for label, text in notes.items():
        (root / "annotations" / f"{label}.txt").write_bytes(text.encode())
    return root


def truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


# ---------------------------------------------------------------- reading


def test_load_reads_labels_targets_and_numeric_order(tmp_path):
    root = make_dataset(tmp_path / "d", n=12, notes={"dog": "2\n10\n", "bird": "1\n10\n"})
    ds = data.load(root)
    assert ds.labels == ["bird", "dog"]
    assert ds.image_ids.tolist() == list(range(1, 13))  # im10 after im9, not after im1
    assert [p.name for p in ds.paths][:3] == ["im1.jpg", "im2.jpg", "im3.jpg"]
    assert all(p.is_absolute() for p in ds.paths)
    assert ds.targets.dtype == np.uint8 and ds.targets.shape == (12, 2)
    assert ds.targets[0].tolist() == [1, 0]
    assert ds.targets[1].tolist() == [0, 1]
    assert ds.targets[9].tolist() == [1, 1]
    assert ds.n_unlabelled == 9
    assert len(ds.fingerprint) == 64


def test_course_labels_come_out_sorted(tmp_path):
    course = "people female portrait male clouds flower night tree dog bird car sea river baby".split()
    root = make_dataset(tmp_path / "d", n=2, notes={name: "1\n" for name in course})
    assert data.load(root).labels == sorted(course) == [
        "baby", "bird", "car", "clouds", "dog", "female", "flower", "male", "night", "people", "portrait",
        "river", "sea", "tree"]


def test_labels_are_sorted_by_stem_and_must_be_unique(tmp_path):
    root = make_dataset(tmp_path / "d", n=2, notes={"a-b": "1\n", "a": "2\n"})
    ds = data.load(root)
    assert ds.labels == ["a", "a-b"] and ds.targets.tolist() == [[0, 1], [1, 0]]
    assert data.fingerprint(root) == ds.fingerprint
    (root / "annotations" / "a.TXT").write_text("1\n")
    assert refused(root) == "annotations/a.txt: label 'a' is also annotations/a.TXT; keep one of them"


def test_tolerated_line_formats_give_the_same_targets(tmp_path):
    clean = data.load(make_dataset(tmp_path / "clean", notes={"bird": "1\n3\n", "dog": "2\n"}))
    messy = data.load(make_dataset(tmp_path / "messy", notes={
        "bird": "\ufeff\r\n  1 \r\n\r\n\t3\t\r\n",  # BOM, CRLF, blank lines, surrounding whitespace
        "dog": "2"}))  # no trailing newline
    assert np.array_equal(clean.targets, messy.targets)
    assert messy.n_duplicates == 0


def test_duplicates_are_counted_and_warned_once(tmp_path, caplog):
    root = make_dataset(tmp_path / "d", notes={"bird": "1\n1\n3\n1\n", "dog": "2\n2\n"})
    with caplog.at_level(logging.WARNING, logger="trainable.data"):
        ds = data.load(root)
    assert ds.n_duplicates == 3
    assert ds.targets[:, 0].tolist() == [1, 0, 1, 0, 0, 0]
    warnings = [r for r in caplog.records if "duplicate" in r.getMessage()]
    assert len(warnings) == 1 and "3 duplicate" in warnings[0].getMessage()


def test_stray_files_are_ignored_counted_and_do_not_change_the_fingerprint(tmp_path, caplog):
    root = make_dataset(tmp_path / "d")
    before = data.load(root).fingerprint
    (root / "images" / "notes.txt").write_text("hello")
    (root / "images" / "photo.jpg").write_bytes((root / "images" / "im1.jpg").read_bytes())
    (root / "images" / "sub").mkdir()
    (root / "annotations" / "README.md").write_text("labels")
    with caplog.at_level(logging.WARNING, logger="trainable.data"):
        ds = data.load(root)
    assert ds.n_ignored == 4
    assert len(ds) == 6
    assert ds.fingerprint == before
    assert len([r for r in caplog.records if "ignored" in r.getMessage()]) == 1


def test_png_and_jpeg_suffixes_are_images(tmp_path):
    root = make_dataset(tmp_path / "d", n=2)
    write_image(root / "images" / "im3.png", seed=3, fmt="PNG")
    write_image(root / "images" / "im4.jpeg", seed=4)
    ds = data.load(root)
    assert ds.image_ids.tolist() == [1, 2, 3, 4]


def test_fingerprint_follows_content_not_location(tmp_path):
    root = make_dataset(tmp_path / "a")
    fp = data.load(root).fingerprint
    shutil.copytree(root, tmp_path / "b")
    assert data.load(tmp_path / "b").fingerprint == fp
    assert data.fingerprint(root) == fp

    (tmp_path / "b" / "annotations" / "dog.txt").write_text("2\n")
    assert data.load(tmp_path / "b").fingerprint != fp
    shutil.copy(root / "annotations" / "dog.txt", tmp_path / "b" / "annotations" / "dog.txt")
    write_image(tmp_path / "b" / "images" / "im4.jpg", seed=99)
    assert data.load(tmp_path / "b").fingerprint != fp


def test_the_annotation_listing_takes_txt_of_any_case_sorted_by_label_and_names_the_rest(tmp_path):
    notes = tmp_path / "annotations"
    notes.mkdir()
    for name in ("dog.txt", "Bird.TXT", "a-b.txt", "a.txt", ".hidden.txt", "labels.csv"):
        (notes / name).write_text("1\n")
    (notes / "folder.txt").mkdir()
    paths, others = data._list_annotations(notes)
    assert [p.name for p in paths] == ["Bird.TXT", "a.txt", "a-b.txt", "dog.txt"]  # by stem, as the labels are
    assert sorted(others) == ["annotations/.hidden.txt", "annotations/folder.txt", "annotations/labels.csv"]


def test_the_duplicate_warning_names_the_first_file_that_has_one(tmp_path, caplog):
    root = make_dataset(tmp_path / "d", n=3, notes={"bird": "1\n", "cat": "2\n2\n", "dog": "3\n1\n3\n3\n"})
    paths, _ = data._list_annotations(root / "annotations")
    known = {k: root / "images" / f"im{k}.jpg" for k in (1, 2, 3)}
    positives, n_duplicates, first = data._read_annotations(paths, [p.read_bytes() for p in paths], known, root)
    assert positives == [[1], [2], [3, 1]] and n_duplicates == 3 and first == "annotations/cat.txt"
    with caplog.at_level(logging.WARNING, logger="trainable.data"):
        data.load(root)
    assert "3 duplicate image numbers in the annotations (first in annotations/cat.txt)" in caplog.text


def test_the_fingerprint_covers_file_names_not_only_bytes(tmp_path):
    root = make_dataset(tmp_path / "d", n=3, notes={"bird": "1\n", "dog": "1\n"})
    seen = {data.load(root).fingerprint}
    (root / "annotations" / "dog.txt").rename(root / "annotations" / "cat.txt")  # the same bytes, another label
    seen.add(data.load(root).fingerprint)
    one, two = root / "images" / "im1.jpg", root / "images" / "im2.jpg"
    raw = one.read_bytes()
    one.write_bytes(two.read_bytes())  # the same image bytes under other numbers
    two.write_bytes(raw)
    seen.add(data.load(root).fingerprint)
    assert len(seen) == 3 and data.fingerprint(root) == data.load(root).fingerprint


# ---------------------------------------------------------------- refusals


def refused(root: Path, **kwargs) -> str:
    with pytest.raises(DatasetError) as info:
        data.load(root, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("text, line, what", [
    ("1\n3\nl2\n", 3, "'l2' is not an image number"),
    ("1\n\n-4\n", 3, "'-4' is not an image number"),
    ("2.5\n", 1, "'2.5' is not an image number"),
    ("im3.jpg\n", 1, "'im3.jpg' is not an image number"),
    ("1 2\n", 1, "'1 2' is not an image number"),
    ("1\r\n0\r\n", 2, "0 is not an image number (numbers start at 1)"),
    ("1\n7\n", 2, "7 names no image (there is no images/im7.jpg)"),
])
def test_bad_annotation_lines_are_refused_with_file_and_line(tmp_path, text, line, what):
    root = make_dataset(tmp_path / "d", notes={"bird": text, "dog": "1\n"})
    assert refused(root) == f"annotations/bird.txt:{line}: {what}"


def test_annotation_that_is_not_text_is_refused(tmp_path):
    root = make_dataset(tmp_path / "d", notes={"bird": "1\n", "dog": "1\n"})
    (root / "annotations" / "dog.txt").write_bytes(b"\xff\xfe\x00\x01")
    assert refused(root).startswith("annotations/dog.txt: not UTF-8 text")


def test_missing_root_is_refused(tmp_path):
    assert refused(tmp_path / "nope") == f"{tmp_path / 'nope'}: no such folder"


@pytest.mark.parametrize("missing", ["images", "annotations"])
def test_missing_folders_are_refused(tmp_path, missing):
    root = make_dataset(tmp_path / "d")
    shutil.rmtree(root / missing)
    message = refused(root)
    assert message.startswith(f"{root / missing}: no such folder")


def test_no_annotation_files_is_refused(tmp_path):
    root = make_dataset(tmp_path / "d", notes={})
    (root / "annotations" / "labels.csv").write_text("bird,1\n")
    assert refused(root) == f"{root / 'annotations'}: no <label>.txt annotation files"


def test_no_images_is_refused(tmp_path):
    root = make_dataset(tmp_path / "d", n=0, notes={"bird": ""})
    (root / "images" / "readme.txt").write_text("empty")
    assert refused(root) == f"{root / 'images'}: no images (expected files named im<N>.jpg)"


def test_two_files_for_one_image_number_are_refused(tmp_path):
    root = make_dataset(tmp_path / "d", n=2)
    write_image(root / "images" / "im2.png", seed=5, fmt="PNG")
    assert refused(root) == "images/im2.png: image number 2 is also images/im2.jpg; keep one of them"


def test_truncated_jpeg_is_refused_naming_it(tmp_path):
    root = make_dataset(tmp_path / "d")
    truncate(root / "images" / "im4.jpg")
    # the reason a cheap check is not enough: PIL's verify() passes a JPEG cut in half
    with Image.open(root / "images" / "im4.jpg") as img:
        img.verify()
    message = refused(root)
    assert message.startswith("images/im4.jpg: unreadable or truncated image")


def test_the_first_bad_image_named_is_the_lowest_number(tmp_path):
    root = make_dataset(tmp_path / "d", n=12)
    truncate(root / "images" / "im10.jpg")
    truncate(root / "images" / "im9.jpg")
    message = refused(root)
    assert message.startswith("images/im9.jpg: unreadable or truncated image (")
    assert message.endswith("(and 1 more; --skip-bad-images drops them)")


def test_garbage_named_like_an_image_is_refused(tmp_path):
    root = make_dataset(tmp_path / "d")
    (root / "images" / "im2.jpg").write_text("not a jpeg at all")
    assert refused(root) == "images/im2.jpg: not a readable image (unknown format)"


def test_skip_bad_images_drops_and_counts_them(tmp_path, caplog):
    root = make_dataset(tmp_path / "d", notes={"bird": "1\n3\n", "dog": "2\n3\n"})
    truncate(root / "images" / "im3.jpg")
    (root / "images" / "im5.jpg").write_bytes(b"")
    assert "(and 1 more; --skip-bad-images drops them)" in refused(root)
    with caplog.at_level(logging.WARNING, logger="trainable.data"):
        ds = data.load(root, skip_bad_images=True)
    assert ds.n_bad_skipped == 2
    assert ds.image_ids.tolist() == [1, 2, 4, 6]
    assert ds.targets.tolist() == [[1, 0], [0, 1], [0, 0], [0, 0]]
    assert [b.split(":")[0] for b in ds.bad_images] == ["images/im3.jpg", "images/im5.jpg"]
    assert any("skipped 2 unreadable" in r.getMessage() for r in caplog.records)
    images = data.decode(ds, progress=False)
    assert images.shape[0] == len(ds.image_ids) == 4


def test_all_images_bad_is_refused_even_when_skipping(tmp_path):
    root = make_dataset(tmp_path / "d", n=2, notes={"bird": "1\n"})
    for p in (root / "images").iterdir():
        truncate(p)
    assert refused(root, skip_bad_images=True) == f"{root / 'images'}: no readable images"


def test_the_image_check_is_remembered_per_data_version(tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "d")
    data.load(root)

    def boom(path):
        raise AssertionError("checked again")

    monkeypatch.setattr(data, "_inspect", boom)
    data.load(root)  # same bytes: the recorded verdicts are used
    write_image(root / "images" / "im1.jpg", seed=42)
    with pytest.raises(AssertionError, match="checked again"):
        data.load(root)  # new bytes, new fingerprint: checked again


# ---------------------------------------------------------------- decoding


def reference(path: Path, mode: str) -> np.ndarray:
    """What decode must produce: plain PIL open -> convert -> resize."""
    img = Image.open(path).convert(mode).resize((128, 128), data.RESAMPLE)
    a = np.asarray(img)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


CASES = [  # (mode saved, size, format)
    ("RGB", (128, 128), "JPEG"), ("L", (128, 128), "JPEG"), ("CMYK", (128, 128), "JPEG"),
    ("RGBA", (128, 128), "PNG"), ("LA", (128, 128), "PNG"), ("P", (128, 128), "PNG"),
    ("RGB", (200, 90), "JPEG"), ("L", (40, 64), "PNG"), ("RGB", (129, 128), "PNG"),
]


@pytest.mark.parametrize("color", ["rgb", "gray"])
def test_decode_matches_plain_pil_pixel_for_pixel(tmp_path, color, caplog):
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    (root / "annotations" / "x.txt").write_text("1\n")
    for i, (mode, size, fmt) in enumerate(CASES, start=1):
        suffix = ".jpg" if fmt == "JPEG" else ".png"
        write_image(root / "images" / f"im{i}{suffix}", seed=i, mode=mode, size=size, fmt=fmt)
    with caplog.at_level(logging.WARNING, logger="trainable.data"):
        ds = data.load(root)
    assert ds.n_resized == 3
    assert len([r for r in caplog.records if "resized" in r.getMessage()]) == 1
    assert ds.modes == [m for m, _, _ in CASES]
    assert ds.n_gray == 3  # L, LA, L
    images = data.decode(ds, color=color, progress=False)
    channels = 3 if color == "rgb" else 1
    assert images.shape == (len(CASES), channels, 128, 128) and images.dtype == np.uint8
    for i, path in enumerate(ds.paths):
        expected = reference(path, "RGB" if color == "rgb" else "L")
        assert np.array_equal(images[i], expected), (path.name, CASES[i])


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "im1.png"
    ramp = np.linspace(0, 65535, 128 * 128).round().astype(np.uint16).reshape(128, 128)
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode == "I;16"
    images, kept = data.decode_files([path], color="gray", progress=False)
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    assert np.array_equal(images[0, 0], expected)
    assert images.max() == 255 and images.min() == 0
    rgb, _ = data.decode_files([path], color="rgb", progress=False)
    assert np.array_equal(rgb[0, 0], expected) and np.array_equal(rgb[0, 2], expected)

    root = make_dataset(tmp_path / "d", n=1, notes={"x": "2\n"})
    path.rename(root / "images" / "im2.png")
    ds = data.load(root)
    assert ds.modes == ["RGB", "I;16"] and ds.n_gray == 1
    assert np.array_equal(data.decode(ds, "gray", progress=False)[1, 0], expected)


def test_decode_is_cached_and_a_second_call_decodes_nothing(tmp_path, cache):
    ds = data.load(make_dataset(tmp_path / "d"))
    before = data.images_decoded
    first = data.decode(ds, "rgb", progress=False)
    assert data.images_decoded - before == 6
    files = sorted(p.name for p in cache.iterdir() if p.suffix == ".npy")
    assert files == [f"{ds.fingerprint}-rgb-v1.npy"]
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]

    second = data.decode(ds, "rgb", progress=False)
    assert data.images_decoded - before == 6  # a cache hit decodes nothing
    assert isinstance(second, np.memmap) and not second.flags.writeable
    assert np.array_equal(first, second)

    gray = data.decode(ds, "gray", progress=False)  # another color is another cache entry
    assert gray.shape == (6, 1, 128, 128) and data.images_decoded - before == 12


def test_decode_honours_an_explicit_cache_dir(tmp_path):
    ds = data.load(make_dataset(tmp_path / "d"))
    data.decode(ds, "gray", cache_dir=tmp_path / "elsewhere", progress=False)
    assert (tmp_path / "elsewhere" / f"{ds.fingerprint}-gray-v1.npy").exists()


def test_decode_names_an_image_that_broke_after_load(tmp_path, cache):
    ds = data.load(make_dataset(tmp_path / "d"))
    truncate(ds.paths[4])
    with pytest.raises(DatasetError, match=r"^images/im5.jpg: unreadable or truncated image"):
        data.decode(ds, progress=False)
    assert not list(cache.glob("*.npy")) and not list(cache.glob("*.tmp"))


def test_decode_rejects_an_unknown_color(tmp_path):
    ds = data.load(make_dataset(tmp_path / "d"))
    with pytest.raises(ValueError, match="color must be one of"):
        data.decode(ds, "cmyk", progress=False)


def test_list_images_orders_numerically_and_skips_non_images(tmp_path):
    folder = tmp_path / "pred"
    folder.mkdir()
    for name in ["im10.jpg", "im2.jpg", "im1.png", "cat.jpg"]:
        write_image(folder / name, seed=1, fmt="PNG" if name.endswith(".png") else "JPEG")
    (folder / "truth.tsv").write_text("Filename\n")
    (folder / ".hidden.jpg").write_text("")
    paths, ignored = data.list_images(folder)
    assert [p.name for p in paths] == ["im1.png", "im2.jpg", "im10.jpg", "cat.jpg"]
    assert ignored == 2
    with pytest.raises(DatasetError, match="no such folder"):
        data.list_images(tmp_path / "nope")


def test_decode_files_refuses_or_skips_a_corrupt_image(tmp_path):
    folder = tmp_path / "pred"
    folder.mkdir()
    for i in (1, 2, 3):
        write_image(folder / f"im{i}.jpg", seed=i)
    truncate(folder / "im2.jpg")
    paths, _ = data.list_images(folder)
    with pytest.raises(DatasetError) as info:
        data.decode_files(paths, progress=False)
    assert str(info.value).startswith(f"{folder / 'im2.jpg'}: unreadable or truncated image")
    images, kept = data.decode_files(paths, progress=False, skip_bad_images=True)
    assert [p.name for p in kept] == ["im1.jpg", "im3.jpg"]
    assert images.shape == (2, 3, 128, 128)
    assert np.array_equal(images[1], reference(folder / "im3.jpg", "RGB"))


# ---------------------------------------------------------------- splits


def test_split_is_disjoint_covering_sorted_and_deterministic():
    train, val, test = data.split(1003, (0.8, 0.1, 0.1), seed=3)
    assert (len(train), len(val), len(test)) == (802, 100, 101)
    joined = np.concatenate([train, val, test])
    assert sorted(joined.tolist()) == list(range(1003))
    for part in (train, val, test):
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)
    again = data.split(1003, (0.8, 0.1, 0.1), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    other = data.split(1003, (0.8, 0.1, 0.1), seed=4)
    assert not np.array_equal(val, other[1])


def test_split_edge_cases():
    assert [len(p) for p in data.split(10, (0.5, 0.5, 0.0))] == [5, 5, 0]
    assert [len(p) for p in data.split(0)] == [0, 0, 0]
    assert [len(p) for p in data.split(3, (0.9, 0.1, 0.0))] == [3, 0, 0]
    with pytest.raises(ValueError, match="summing to 1"):
        data.split(10, (0.8, 0.1, 0.2))
    with pytest.raises(ValueError):
        data.split(10, (0.8, 0.2))


# ---------------------------------------------------------------- torch view and imports


def test_image_dataset_gives_float_images_targets_and_ids(tmp_path):
    torch = pytest.importorskip("torch")
    ds = data.load(make_dataset(tmp_path / "d"))
    images = data.decode(ds, progress=False)
    view = data.ImageDataset(images, ds.targets, ds.image_ids)
    assert isinstance(view, torch.utils.data.Dataset) and len(view) == 6
    image, target, image_id = view[2]
    assert image.dtype == torch.float32 and image.shape == (3, 128, 128)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert torch.allclose(image * 255, torch.from_numpy(np.asarray(images[2], dtype=np.float32)))
    assert target.tolist() == [1.0, 1.0] and image_id == 3
    batch = next(iter(torch.utils.data.DataLoader(view, batch_size=4)))
    assert batch[0].shape == (4, 3, 128, 128) and batch[2].tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="lengths differ"):
        data.ImageDataset(images, ds.targets[:3], ds.image_ids)


def test_importing_the_data_layer_does_not_import_torch():
    code = ("import sys, trainable.data, search.cli; "
            "heavy = [m for m in ('torch', 'ray', 'mlflow', 'optuna', 'matplotlib') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
