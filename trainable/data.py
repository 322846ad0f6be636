"""The dataset layer: read the course layout, fingerprint it, decode it once, split it.

    ds = load("data/")                  # validate images/ and annotations/, hash the bytes
    images = decode(ds, color="rgb")    # uint8 N x 3 x 128 x 128, cached and memory-mapped
    train, val, test = split(len(ds), (0.8, 0.1, 0.1), seed=0)

The course layout is `root/images/im<N>.jpg` plus `root/annotations/<label>.txt`, each
annotation file listing the 1-based numbers N of the images that show the label, one per
line. Labels are the sorted file stems, so any label set works; images listed nowhere
are unlabelled (all-zero target rows).

`load` refuses what it cannot read with a `DatasetError` whose message names the file
and line (`annotations/bird.txt:17: 'l2' is not an image number`) and tolerates the
rest, counting it and logging one warning per kind: blank lines, CRLF, duplicate
numbers, stray files in images/, images that are not 128x128. It fully decodes every
image once per data version to find truncated or corrupt files (a JPEG cut in half opens
and even `verify()`s fine; only a decode notices), so the AnnotatedFolder it returns holds only
images that decode; the result of that check is cached next to the decoded arrays, keyed
by the content fingerprint, so later loads only hash the bytes.

`decode` turns the images into one uint8 array: converted to RGB or L with PIL (16-bit
gray scaled to 8 bits), resized to 128x128 with `RESAMPLE` when needed, decoded by a
thread pool (PIL releases the GIL while decoding; threads measured 1.6x over serial on
2 cores and beat processes, which must pickle the pixels back), written atomically to
`$LABELTUNE_CACHE/<fingerprint>-<color>-v1.npy` and memory-mapped (read-only) on every
later call; `images_decoded` counts the images this process really decoded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from trainable import store
from trainable.config import COLOR_MODES
from trainable.errors import LabeltuneError

log = logging.getLogger(__name__)

SIDE = 128
"""side of the decoded images"""
RESAMPLE = Image.Resampling.BICUBIC
"""filter used to bring images of another size to SIDE x SIDE"""
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
"""image files `load` reads (named im<N> plus one of these)"""
PREDICT_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
"""image files `list_images` picks up from a folder to predict on"""
TSV_BREAKING = "\t\n\r"
"""characters a file name cannot hold in a prediction TSV's Filename column"""
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_DECODE_VERSION = "v1"  # bump when decoding changes, so stale caches are not reused
_CHECK_VERSION = "v1"
_NAME = re.compile(r"im(\d+)(\.[A-Za-z]+)")
_CHUNK = 64  # images per thread-pool task: big enough to amortise scheduling, small enough for the bar

images_decoded = 0
"""images decoded into arrays by this process (a cache hit adds nothing): for tests and logs"""


class DatasetError(LabeltuneError):
    """Input data that cannot be used; str() is one line `<file>:<line>: <what>` or `<file>: <what>`."""


@dataclass
class AnnotatedFolder:
    """An annotated image folder, validated; row i of `targets` belongs to `paths[i]` (the torch Dataset is `ImageDataset`)."""

    root: Path
    image_ids: np.ndarray
    """int64, the N of im<N>.jpg, ascending"""
    paths: list[Path]
    """absolute image paths"""
    labels: list[str]
    """sorted annotation file stems"""
    targets: np.ndarray
    """N x L uint8, 1 where the image is listed in the label's file"""
    fingerprint: str
    """sha256 (hex) of the annotation files and image files, names and bytes"""
    modes: list[str] = field(default_factory=list)
    """PIL mode of each image as stored (RGB, L, ...)"""
    sizes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    """N x 2 (width, height) of each image as stored"""
    n_duplicates: int = 0
    """numbers listed twice in the same annotation file (kept once)"""
    n_ignored: int = 0
    """files in images/ or annotations/ that are not images / not .txt (skipped)"""
    n_bad_skipped: int = 0
    """unreadable images dropped because skip_bad_images was set"""
    bad_images: list[str] = field(default_factory=list)
    """`images/<name>: <reason>` for each dropped image"""
    n_resized: int = 0
    """images that are not SIDE x SIDE and get resized by decode"""

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def n_unlabelled(self) -> int:
        return int((self.targets.sum(axis=1) == 0).sum())

    @property
    def n_gray(self) -> int:
        return sum(mode in GRAY_MODES for mode in self.modes)


# ---------------------------------------------------------------- helpers


def _workers() -> int:
    """CPUs this process may use (respects taskset / cgroup affinity)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else store.cache_dir()


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar counting images, shown on a terminal only (and not at all unless `enabled`)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=None if enabled else True, leave=False)  # None: a terminal only


def _chunked_map(fn: Callable[[Sequence[Any]], list[Any]], items: Sequence[Any], desc: str,
                 progress: bool) -> list[Any]:
    """fn over chunks of items in a thread pool, results flattened in order."""
    chunks = [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    results: list[Any] = []
    with progress_bar(len(items), desc, progress) as bar:
        if len(chunks) <= 1 or _workers() == 1:
            mapped: Iterable[list[Any]] = map(fn, chunks)
            for part in mapped:
                results.extend(part)
                bar.update(len(part))
        else:
            with ThreadPoolExecutor(max_workers=_workers()) as pool:
                for part in pool.map(fn, chunks):
                    results.extend(part)
                    bar.update(len(part))
    return results


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- reading the layout


def _refuse_dangling(entry: os.DirEntry, folder: Path | str) -> None:
    """A symbolic link whose target is missing is an error that says so (not 'not an image'), shown in `folder`."""
    if entry.is_symlink() and not os.path.exists(entry.path):
        raise DatasetError(f"{Path(folder) / entry.name}: a symbolic link to {os.readlink(entry.path)}, "
                           f"which does not exist")


def _list_course_images(images_dir: Path, root: Path) -> tuple[dict[int, Path], list[str]]:
    """im<N> image files by N, and the names of everything else in the folder."""
    found: dict[int, Path] = {}
    ignored: list[str] = []
    shown = _rel(images_dir, root)  # once: a Path per entry costs seconds at 200k images
    for entry in os.scandir(images_dir):
        _refuse_dangling(entry, shown)
        m = _NAME.fullmatch(entry.name)
        if not m or m.group(2).lower() not in IMAGE_SUFFIXES or int(m.group(1)) == 0 or not entry.is_file():
            ignored.append(entry.name)
            continue
        number = int(m.group(1))
        if number in found:
            first, second = sorted([found[number].name, entry.name])
            raise DatasetError(f"{_rel(images_dir / second, root)}: image number {number} is also "
                               f"{_rel(images_dir / first, root)}; keep one of them")
        found[number] = Path(entry.path)
    return found, ignored


def _is_annotation(p: Path) -> bool:
    return p.suffix.lower() == ".txt" and not p.name.startswith(".") and p.is_file()


def _list_annotations(notes_dir: Path) -> tuple[list[Path], list[str]]:
    """The <label>.txt files sorted by label, and `annotations/<name>` for everything else in the folder."""
    entries = sorted(notes_dir.iterdir())
    notes = [p for p in entries if _is_annotation(p)]
    notes.sort(key=lambda p: p.stem)  # labels are the sorted stems ("a.txt" before "a-b.txt"); stable for a tie
    return notes, [f"annotations/{p.name}" for p in entries if p not in notes]


def _read_layout(root: Path) -> tuple[dict[int, Path], list[Path], list[str]]:
    """The course layout under root: images by number, annotation files by label, and the files that are neither.

    Refuses a missing root, images/ or annotations/, and a layout with no images or no annotation files.
    """
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    images_dir, notes_dir = root / "images", root / "annotations"
    for d in (images_dir, notes_dir):
        if not d.is_dir():
            raise DatasetError(f"{d}: no such folder (the course layout is images/im<N>.jpg "
                               f"and annotations/<label>.txt)")
    found, ignored = _list_course_images(images_dir, root)
    note_paths, stray_notes = _list_annotations(notes_dir)
    if not note_paths:
        raise DatasetError(f"{notes_dir}: no <label>.txt annotation files")
    if not found:
        raise DatasetError(f"{images_dir}: no images (expected files named im<N>.jpg)")
    return found, note_paths, ignored + stray_notes


def _labels(note_paths: list[Path], root: Path) -> list[str]:
    """The label of each annotation file (its stem, in the order given); two files for one label are refused."""
    for a, b in zip(note_paths, note_paths[1:]):
        if a.stem == b.stem:
            raise DatasetError(f"{_rel(b, root)}: label {b.stem!r} is also {_rel(a, root)}; keep one of them")
    return [p.stem for p in note_paths]


def _parse_annotation(path: Path, rel: str, raw: bytes, known: dict[int, Path]) -> tuple[list[int], int]:
    """The image numbers in one annotation file (deduplicated, in file order) and the duplicate count."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{rel}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    numbers: list[int] = []
    seen: set[int] = set()
    duplicates = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        token = line.strip()
        if not token:
            continue
        if not token.isascii() or not token.isdigit():
            shown = token if len(token) <= 40 else token[:37] + "..."
            raise DatasetError(f"{rel}:{lineno}: {shown!r} is not an image number")
        number = int(token)
        if number == 0:
            raise DatasetError(f"{rel}:{lineno}: 0 is not an image number (numbers start at 1)")
        if number not in known:
            raise DatasetError(f"{rel}:{lineno}: {number} names no image (there is no images/im{number}.jpg)")
        if number in seen:
            duplicates += 1
            continue
        seen.add(number)
        numbers.append(number)
    return numbers, duplicates


def _read_annotations(note_paths: list[Path], note_bytes: list[bytes], known: dict[int, Path],
                      root: Path) -> tuple[list[list[int]], int, str]:
    """The image numbers each annotation file lists, the duplicates in all, and the first file that has one."""
    positives: list[list[int]] = []
    n_duplicates = 0
    first_duplicate = ""
    for path, raw in zip(note_paths, note_bytes):
        numbers, dups = _parse_annotation(path, _rel(path, root), raw, known)
        positives.append(numbers)
        if dups and not first_duplicate:
            first_duplicate = _rel(path, root)
        n_duplicates += dups
    return positives, n_duplicates, first_duplicate


# ---------------------------------------------------------------- fingerprint


def _hash_files(paths: Sequence[Path], progress: bool = False) -> list[bytes]:
    """sha256 digest of each file's bytes, one file in memory at a time (serial: on small files threads only add
    GIL contention); a progress bar on a terminal when `progress` (200k images take ~a minute)."""
    digests = []
    with progress_bar(len(paths), "fingerprint", progress) as bar:
        for p in paths:
            with open(p, "rb") as f:
                digests.append(hashlib.sha256(f.read()).digest())
            bar.update(1)
    return digests


def _fingerprint(note_paths: Sequence[Path], note_bytes: Sequence[bytes], image_paths: Sequence[Path],
                 progress: bool = False) -> str:
    """sha256 over (name, sha256 of bytes) of every annotation file (bytes given), then every image file, in order."""
    h = hashlib.sha256(b"labeltune-data-v1\0")
    h.update(b"annotations\0")
    for path, raw in zip(note_paths, note_bytes):
        h.update(path.name.encode() + b"\0" + hashlib.sha256(raw).digest())
    h.update(b"images\0")
    for path, digest in zip(image_paths, _hash_files(image_paths, progress)):
        h.update(path.name.encode() + b"\0" + digest)
    return h.hexdigest()


def fingerprint(root: str | os.PathLike) -> str:
    """The content fingerprint `load(root).fingerprint` would give, from the bytes alone (no decoding)."""
    root = Path(root)
    found, _ = _list_course_images(root / "images", root)
    notes, _ = _list_annotations(root / "annotations")
    return _fingerprint(notes, [p.read_bytes() for p in notes], [found[k] for k in sorted(found)])


# ---------------------------------------------------------------- the image check


def _inspect(path: Path) -> tuple[str, tuple[int, int], str | None]:
    """(mode, size, None) when the image decodes completely, else ("", (0, 0), reason)."""
    try:
        with Image.open(path) as img:
            mode, size = img.mode, img.size
            if img.format == "JPEG":
                # DCT scaling skips most of the inverse transform (-35 % time) but still entropy-decodes
                # every byte, so truncated or corrupt data raises as in a full decode
                img.draft(mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
            img.load()  # decoding is the only check that notices a truncated JPEG (verify() does not)
        return mode, size, None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, struct.error... for bad files
        return "", (0, 0), _describe(e)


def _describe(e: BaseException) -> str:
    if isinstance(e, Image.UnidentifiedImageError):
        return "not a readable image (unknown format)"
    return f"unreadable or truncated image ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"


def _check_images(names: list[str], paths: list[Path], fingerprint: str, cache: Path,
                  progress: bool) -> dict[str, tuple[str, tuple[int, int], str | None]]:
    """Decode every image once per data version; the verdicts are cached by fingerprint."""
    sidecar = cache / f"{fingerprint}.check-{_CHECK_VERSION}.json"
    try:
        stored = json.loads(sidecar.read_text())
        if sorted(stored) == sorted(names):
            return {n: (m, (w, h), reason) for n, (m, w, h, reason) in stored.items()}
    except (OSError, ValueError, TypeError):
        pass  # no (usable) record: check again
    results = _chunked_map(lambda chunk: [_inspect(p) for p in chunk], paths, "check", progress)
    verdicts = dict(zip(names, results))
    try:
        payload = json.dumps({n: [m, s[0], s[1], r] for n, (m, s, r) in verdicts.items()})
        store.write_text(sidecar, payload)
    except OSError as e:
        log.warning("cannot cache the image check in %s: %s", cache, e)
    return verdicts


def _refuse_bad_images(names: list[str], verdicts: dict[str, tuple[str, tuple[int, int], str | None]],
                       skip_bad_images: bool, images_dir: Path) -> list[tuple[str, str]]:
    """(name, reason) of each image that does not decode, in the order of names.

    Refuses the first of them unless skip_bad_images, and refuses a folder where none decodes.
    """
    bad = [(name, verdicts[name][2]) for name in names if verdicts[name][2] is not None]
    if bad and not skip_bad_images:
        name, reason = bad[0]
        more = f" (and {len(bad) - 1} more; --skip-bad-images drops them)" if len(bad) > 1 else ""
        raise DatasetError(f"images/{name}: {reason}{more}")
    if len(bad) == len(names):
        raise DatasetError(f"{images_dir}: no readable images")
    return bad


# ---------------------------------------------------------------- the AnnotatedFolder


def _targets(ids: np.ndarray, positives: list[list[int]]) -> np.ndarray:
    """N x L uint8, 1 where image ids[i] is among the numbers positives[j] of label j."""
    targets = np.zeros((len(ids), len(positives)), dtype=np.uint8)
    row = {int(k): i for i, k in enumerate(ids)}
    for j, numbers in enumerate(positives):
        targets[[row[k] for k in numbers], j] = 1
    return targets


def _assemble(root: Path, found: dict[int, Path], labels: list[str], positives: list[list[int]], fp: str,
              verdicts: dict[str, tuple[str, tuple[int, int], str | None]], **tolerated: Any) -> AnnotatedFolder:
    """The AnnotatedFolder of the images that decode, in number order, with each one's stored mode and size.

    tolerated: the AnnotatedFolder's counts of what load let through (n_duplicates, n_ignored, n_bad_skipped, bad_images).
    """
    ids = np.array(sorted(found), dtype=np.int64)
    verdict = [verdicts[found[int(k)].name] for k in ids]  # (mode, size, reason), each image's name read once
    keep = np.array([reason is None for _, _, reason in verdict], dtype=bool)
    targets = _targets(ids, positives)[keep]
    kept = [v for v, k in zip(verdict, keep) if k]
    ids = ids[keep]
    paths = [found[int(k)] for k in ids]
    sizes = np.array([size for _, size, _ in kept], dtype=np.int64).reshape(-1, 2)
    return AnnotatedFolder(root=root, image_ids=ids, paths=paths, labels=labels, targets=targets, fingerprint=fp,
                   modes=[mode for mode, _, _ in kept], sizes=sizes,
                   n_resized=int((sizes != SIDE).any(axis=1).sum()), **tolerated)


def _warn_tolerated(ds: AnnotatedFolder, ignored: list[str], first_duplicate: str) -> None:
    """One warning per kind of input load let through: duplicate numbers, stray files, bad images, odd sizes."""
    if ds.n_duplicates:
        log.warning("%d duplicate image numbers in the annotations (first in %s); each counted once",
                    ds.n_duplicates, first_duplicate)
    if ignored:
        log.warning("ignored %d files that are not im<N>.jpg images or .txt annotations (e.g. %s)",
                    len(ignored), ", ".join(sorted(ignored)[:3]))
    if ds.bad_images:
        log.warning("skipped %d unreadable images (e.g. %s)", ds.n_bad_skipped, ds.bad_images[0])
    if ds.n_resized:
        log.warning("%d images are not %dx%d and will be resized", ds.n_resized, SIDE, SIDE)


def load(root: str | os.PathLike, skip_bad_images: bool = False, *, cache_dir: str | os.PathLike | None = None,
         progress: bool = False) -> AnnotatedFolder:
    """Read and validate a dataset in the course layout; raise DatasetError naming what is wrong.

    skip_bad_images: drop images that do not decode (counted in `n_bad_skipped`) instead of refusing.
    cache_dir: where the per-version image check is remembered (default $LABELTUNE_CACHE).
    """
    root = Path(root).expanduser().absolute()
    found, note_paths, ignored = _read_layout(root)
    labels = _labels(note_paths, root)
    note_bytes = [p.read_bytes() for p in note_paths]
    positives, n_duplicates, first_duplicate = _read_annotations(note_paths, note_bytes, found, root)

    paths = [found[k] for k in sorted(found)]
    names = [p.name for p in paths]
    fp = _fingerprint(note_paths, note_bytes, paths, progress)
    verdicts = _check_images(names, paths, fp, _cache_dir(cache_dir), progress)
    bad = _refuse_bad_images(names, verdicts, skip_bad_images, root / "images")

    ds = _assemble(root, found, labels, positives, fp, verdicts, n_duplicates=n_duplicates, n_ignored=len(ignored),
                   n_bad_skipped=len(bad), bad_images=[f"images/{n}: {r}" for n, r in bad])
    _warn_tolerated(ds, ignored, first_duplicate)
    return ds


# ---------------------------------------------------------------- decoding


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and float gray images as 8-bit L: the full 16-bit range maps onto 0..255 (PIL would clip)."""
    if img.mode.startswith("I;16") or img.mode == "I":
        a = np.asarray(img, dtype=np.float64)
        return Image.fromarray(np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8))
    if img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        a = a * 255.0 if np.nanmax(a, initial=0.0) <= 1.0 else a  # 0..1 floats or 0..255 floats
        return Image.fromarray(np.clip(np.nan_to_num(np.rint(a)), 0, 255).astype(np.uint8))
    return img


def decode_image(path: str | os.PathLike, color: str = "rgb") -> np.ndarray:
    """One image as uint8 C x SIDE x SIDE: open, 16-bit to 8-bit, convert, resize with RESAMPLE."""
    mode, _ = COLOR_MODES[color]
    with Image.open(path) as img:
        img.load()
        img = _to_8bit(img)
        if img.mode != mode:
            img = img.convert(mode)
        if img.size != (SIDE, SIDE):
            img = img.resize((SIDE, SIDE), RESAMPLE)
        a = np.asarray(img)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _check_color(color: str) -> int:
    if color not in COLOR_MODES:
        raise ValueError(f"color must be one of {sorted(COLOR_MODES)}, got {color!r}")
    return COLOR_MODES[color][1]


def _decode_into(out: np.ndarray, paths: Sequence[Path], color: str, progress: bool) -> list[tuple[int, str]]:
    """Decode paths[i] into out[i] in a thread pool; returns (index, reason) of each failure."""
    global images_decoded

    def work(chunk: Sequence[tuple[int, Path]]) -> list[tuple[int, str | None]]:
        done = []
        for i, p in chunk:
            try:
                out[i] = decode_image(p, color)
                done.append((i, None))
            except Exception as e:  # any PIL failure is a bad image, reported by name below
                done.append((i, _describe(e)))
        return done

    results = _chunked_map(work, list(enumerate(paths)), "decode", progress)
    images_decoded += sum(reason is None for _, reason in results)
    return [(i, reason) for i, reason in results if reason is not None]


def decode(dataset: AnnotatedFolder, color: str = "rgb", cache_dir: str | os.PathLike | None = None,
           progress: bool = True) -> np.ndarray:
    """All images of the dataset as uint8 N x C x 128 x 128 (C = 3 rgb, 1 gray), read-only.

    Decoded once per (fingerprint, color) into `<cache>/<fingerprint>-<color>-v1.npy`,
    memory-mapped on later calls. An image that fails to decode raises DatasetError naming it.
    """
    shape = (len(dataset), _check_color(color), SIDE, SIDE)
    path = cache_path(dataset.fingerprint, color, cache_dir)

    def fill(out: np.ndarray) -> None:
        failed = _decode_into(out, dataset.paths, color, progress)
        if failed:
            i, reason = failed[0]
            raise DatasetError(f"{_rel(dataset.paths[i], dataset.root)}: {reason}")

    return cached_array(path, shape, fill, f"decoded {len(dataset)} images ({color})")


def cache_path(fingerprint: str, form: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the images of the data `fingerprint` are cached in `form` ('rgb', 'gray', 'rgb-32'...)."""
    return _cache_dir(cache_dir) / f"{fingerprint}-{form}-{_DECODE_VERSION}.npy"


def cached_array(path: Path, shape: tuple[int, ...], fill: Callable[[np.ndarray], None], made: str) -> np.ndarray:
    """The uint8 array of `shape` cached at `path`, memory-mapped read-only; `fill(out)` makes it on a miss.

    A cache of another shape, or one that cannot be read (truncated, not an array), is made again with a
    warning; where the cache cannot be written the array is made in memory. `made` says what a miss did (log).
    """
    if path.exists():
        try:
            arr = np.load(path, mmap_mode="r")
            if arr.shape == shape and arr.dtype == np.uint8:
                log.info("cache hit: %s", path)
                return arr
            log.warning("cached %s has shape %s, expected %s: making it again", path, arr.shape, shape)
        except (OSError, ValueError) as e:
            log.warning("unreadable cache %s (%s): making it again", path, e)
    try:
        def write(tmp: Path) -> None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            fill(out)
            out.flush()
            del out

        store.write_atomic(path, write)
    except OSError as e:
        log.warning("cannot write the cache %s (%s): making it in memory", path, e)
        arr = np.empty(shape, dtype=np.uint8)
        fill(arr)
        arr.flags.writeable = False
        return arr
    log.info("%s into %s", made, path)
    return np.load(path, mmap_mode="r")


def breaks_tsv(path: str | os.PathLike) -> bool:
    """The file name holds a tab or line break (`TSV_BREAKING`): it cannot be a prediction TSV's Filename."""
    return any(c in Path(path).name for c in TSV_BREAKING)


def shown_path(path: str | os.PathLike) -> str:
    """A path as a user reads it, a tab or line break in it written as \\t, \\n or \\r (not PosixPath('...'))."""
    return str(path).replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def list_images(folder: str | os.PathLike, any_name: bool = False) -> tuple[list[Path], int]:
    """Image files of a folder to predict on (im<N> by N first, then others by name) and how many files were not images.

    An image whose name `breaks_tsv` is refused, unless `any_name` (for a caller that refuses or skips it itself).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder")
    images, ignored = [], 0
    for entry in os.scandir(folder):
        _refuse_dangling(entry, folder)
        if not any_name and breaks_tsv(entry.name) and Path(entry.name).suffix.lower() in PREDICT_SUFFIXES:
            raise DatasetError(f"{shown_path(folder / entry.name)}: a tab or line break in the file name would break "
                               f"the prediction TSV's columns; rename the file")
        if entry.is_file() and Path(entry.name).suffix.lower() in PREDICT_SUFFIXES and not entry.name.startswith("."):
            images.append(Path(entry.path).absolute())
        else:
            ignored += 1

    def order(p: Path) -> tuple[int, int, str]:
        m = _NAME.fullmatch(p.name)
        return (0, int(m.group(1)), p.name) if m else (1, 0, p.name)

    images.sort(key=order)
    if ignored:
        log.warning("ignored %d files in %s that are not images", ignored, folder)
    return images, ignored


def decode_files(paths: Sequence[str | os.PathLike], color: str = "rgb", progress: bool = True,
                 skip_bad_images: bool = False) -> tuple[np.ndarray, list[Path]]:
    """Decode arbitrary image files (no cache) into uint8 N x C x 128 x 128, and the paths kept.

    A file that does not decode raises DatasetError naming it, or with skip_bad_images is left out.
    """
    channels = _check_color(color)
    paths = [Path(p) for p in paths]
    out = np.empty((len(paths), channels, SIDE, SIDE), dtype=np.uint8)
    failed = _decode_into(out, paths, color, progress)
    if failed and not skip_bad_images:
        i, reason = failed[0]
        raise DatasetError(f"{paths[i]}: {reason}")
    if failed:
        log.warning("skipped %d unreadable images (e.g. %s: %s)", len(failed), paths[failed[0][0]], failed[0][1])
        keep = np.ones(len(paths), dtype=bool)
        keep[[i for i, _ in failed]] = False
        out = out[keep]
        paths = [p for p, k in zip(paths, keep) if k]
    return out, paths


# ---------------------------------------------------------------- splitting


def split(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> tuple[np.ndarray, ...]:
    """Disjoint, covering index arrays (train, val, test) of range(n), each sorted.

    Sizes round n * fraction (test takes the remainder); the permutation comes from
    numpy's default Generator seeded by `seed`, so the split is the same on every machine.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_train = min(n, round(n * fractions[0]))
    n_val = min(n - n_train, round(n * fractions[1]))
    parts = (order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:])
    return tuple(np.sort(p).astype(np.int64) for p in parts)


# ---------------------------------------------------------------- torch view


def _make_image_dataset() -> type:
    import torch

    class ImageDataset(torch.utils.data.Dataset):
        """(image float C x H x W in [0, 1], target float L, image_id int) from the uint8 arrays."""

        def __init__(self, images_uint8: np.ndarray, targets: np.ndarray, image_ids: np.ndarray) -> None:
            if not len(images_uint8) == len(targets) == len(image_ids):
                raise ValueError(f"lengths differ: {len(images_uint8)} images, {len(targets)} targets, "
                                 f"{len(image_ids)} ids")
            self.images, self.targets, self.image_ids = images_uint8, targets, image_ids

        def __len__(self) -> int:
            return len(self.images)

        def __getitem__(self, i: int) -> tuple[Any, Any, int]:
            image = torch.from_numpy(np.array(self.images[i], dtype=np.float32) / 255.0)
            target = torch.from_numpy(np.asarray(self.targets[i], dtype=np.float32))
            return image, target, int(self.image_ids[i])

    ImageDataset.__module__ = __name__
    ImageDataset.__qualname__ = "ImageDataset"
    return ImageDataset


def __getattr__(name: str) -> Any:
    # ImageDataset subclasses torch's Dataset; building it on first use keeps `import trainable.data`
    # (and so `labeltune data check`) free of torch's ~2 s import.
    if name == "ImageDataset":
        cls = _make_image_dataset()
        globals()["ImageDataset"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
