"""A synthetic stand-in for the course dataset, written in the course layout.

`labeltune data synth --out DIR` calls `write_dataset`. It writes

    DIR/images/im1.jpg ... im<n>.jpg          128x128 JPEGs, about 10 % grayscale (mode L)
    DIR/annotations/<label>.txt               1-based image numbers, one per line
    DIR/test/images/im<n+1>.jpg ...           unlabelled test images
    DIR/test/truth.tsv                        Filename<TAB>label... then im<N>.jpg and 0/1

with the course's 14 labels at the real dataset's frequencies (`FREQUENCIES_PER_20K`,
scaled to n) and its co-occurrence: female, male and baby only come with people,
portrait mostly does, the scene labels lean towards images without people so that the
unlabelled share (9,824 of 20,000) matches too.

Each label is a bold visual cue (`CUES`: a shape, texture or global tone) drawn at a
random place, scale and colour over a noisy background with small distractors, then
partly occluded, noised and JPEG-compressed. The cues survive a downsampling to 32x32,
so a small CNN learns the frequent labels in a few epochs; rare labels stay hard
because they have few examples and share strokes with frequent ones.

Deterministic per seed: the label plan comes from one generator seeded by `seed`
(exact counts per label), the pixels of image i from a generator seeded by (seed, i),
so the result does not depend on the number of worker processes.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

SIZE = 128

# Positives per 20,000 images in the course dataset.
FREQUENCIES_PER_20K: dict[str, int] = {
    "people": 6403,
    "female": 3227,
    "portrait": 3121,
    "male": 2979,
    "clouds": 1095,
    "flower": 761,
    "night": 598,
    "tree": 525,
    "dog": 448,
    "bird": 360,
    "car": 319,
    "sea": 173,
    "river": 120,
    "baby": 95,
}
UNLABELLED_PER_20K = 9824
LABELS: list[str] = sorted(FREQUENCIES_PER_20K)
PEOPLE_ONLY = ("female", "male", "baby")
"""labels that only occur together with people"""
PORTRAIT_WITH_PEOPLE = 0.9
"""share of portraits that also show people"""
SCENE_LABELS = tuple(
    name for name in LABELS if name not in PEOPLE_ONLY and name not in ("people", "portrait")
)
GRAY_SHARE = 0.1
"""share of images saved as single-channel JPEGs"""

Color = tuple[int, int, int]


# ---------------------------------------------------------------- label plan


def expected_counts(n: int) -> dict[str, int]:
    """Positives per label for n images: the course table scaled to n (at least 1 each)."""
    return {name: max(1, round(n * f / 20000)) for name, f in FREQUENCIES_PER_20K.items()}


def _scene_boost() -> float:
    """How much more often scene labels fall on images without people (vs. their mean rate).

    Independent labels would leave ~10,600 of 20,000 images unlabelled; the course has
    9,824 because scenes and people seldom share an image. With rate a*p among images
    without people and b*p among images with people (a*(1-P) + b*P = 1 keeps the marginal),
    solve P(no label) = UNLABELLED / 20000 for a by bisection.
    """
    p_people = FREQUENCIES_PER_20K["people"] / 20000
    lonely_portraits = (1 - PORTRAIT_WITH_PEOPLE) * FREQUENCIES_PER_20K["portrait"]
    q_portrait = lonely_portraits / (20000 - FREQUENCIES_PER_20K["people"])
    rates = [FREQUENCIES_PER_20K[name] / 20000 for name in SCENE_LABELS]
    target = UNLABELLED_PER_20K / 20000

    def unlabelled(a: float) -> float:
        return (1 - p_people) * (1 - q_portrait) * math.prod(1 - a * r for r in rates)

    lo, hi = 1.0, 1 / (1 - p_people)  # hi: no scene label at all on images with people
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if unlabelled(mid) > target else (lo, mid)
    return (lo + hi) / 2


def plan_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """An n x len(LABELS) uint8 matrix with exactly `expected_counts(n)` positives per label."""
    col = {name: j for j, name in enumerate(LABELS)}
    counts = expected_counts(n)
    targets = np.zeros((n, len(LABELS)), dtype=np.uint8)
    if n == 0:
        return targets

    def pick(pool: np.ndarray, k: int) -> np.ndarray:
        return rng.choice(pool, size=min(k, len(pool)), replace=False)

    everyone = np.arange(n)
    people = pick(everyone, counts["people"])
    targets[people, col["people"]] = 1
    others = np.setdiff1d(everyone, people)
    for name in PEOPLE_ONLY:
        targets[pick(people, counts[name]), col[name]] = 1

    k = counts["portrait"]
    k_with = min(round(PORTRAIT_WITH_PEOPLE * k), len(people))
    targets[pick(people, k_with), col["portrait"]] = 1
    targets[pick(others, k - k_with), col["portrait"]] = 1

    boost = _scene_boost()
    share_people = len(people) / n
    rate_with_people = max(0.0, (1 - boost * (1 - share_people)) / share_people) if len(people) else 0.0
    for name in SCENE_LABELS:
        k = counts[name]
        k_with = min(round(k * rate_with_people * share_people), len(people))
        targets[pick(people, k_with), col[name]] = 1
        targets[pick(others, k - k_with), col[name]] = 1
    return targets


# ---------------------------------------------------------------- drawing helpers


def _luma(c: Sequence[float]) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _contrasting(rng: np.random.Generator, background: float, gap: float = 80) -> Color:
    """A random colour whose luma is at least `gap` away from the background's."""
    c = rng.integers(0, 256, 3).astype(float)
    lum = _luma(c)
    if abs(lum - background) < gap:
        # push towards whichever side leaves room
        up = background + gap <= 255 and (background < 128 or background - gap < 0)
        shift = (background + gap - lum) if up else (background - gap - lum)
        c = np.clip(c + shift, 0, 255)
    return tuple(int(v) for v in c)


def _center(rng: np.random.Generator, half_w: float, half_h: float) -> tuple[float, float]:
    """A centre that keeps at least ~60 % of a (2*half_w x 2*half_h) shape inside the image."""
    mx, my = 0.6 * half_w, 0.6 * half_h
    return float(rng.uniform(mx, SIZE - mx)), float(rng.uniform(my, SIZE - my))


def _scale(rng: np.random.Generator) -> float:
    """Base cue size in pixels (32-58 px at 128x128: 8-14 px after downsampling to 32)."""
    return float(rng.uniform(32, 58))


def _rotate(points: list[tuple[float, float]], cx: float, cy: float, angle: float) -> list[tuple[float, float]]:
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + (x - cx) * ca - (y - cy) * sa, cy + (x - cx) * sa + (y - cy) * ca) for x, y in points]


def _ellipse(draw: ImageDraw.ImageDraw, cx: float, cy: float, rx: float, ry: float, fill: Color) -> None:
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=fill)


# ---------------------------------------------------------------- the cues, one per label
# Each draws onto `draw` with colours that contrast with the background luma `bg`.


def _cue_people(draw: ImageDraw.ImageDraw, rng: np.random.Generator, bg: float) -> None:
    """A person icon: round head over a tall trapezoid body."""
    s = _scale(rng) * 1.1
    cx, cy = _center(rng, 0.35 * s, 0.75 * s)
    color = _contrasting(rng, bg)
    _ellipse(draw, cx, cy - 0.5 * s, 0.2 * s, 0.2 * s, color)
    body = [(cx - 0.18 * s, cy - 0.25 * s), (cx + 0.18 * s, cy - 0.25 * s),
            (cx + 0.35 * s, cy + 0.75 * s), (cx - 0.35 * s, cy + 0.75 * s)]
    draw.polygon(_rotate(body, cx, cy, rng.uniform(-0.2, 0.2)), fill=color)


def _cue_female(draw: ImageDraw.ImageDraw, rng: np.random.Generator, bg: float) -> None:
    """A thick ring."""
    s = _scale(rng)
    r = 0.45 * s
    cx, cy = _center(rng, r, r)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=_contrasting(rng, bg), width=max(4, int(0.2 * s)))


def _cue_male(draw: ImageDraw.ImageDraw, rng: np.random.Generator, bg: float) -> None:
    """A thick X."""
    s = _scale(rng)
    h = 0.4 * s
    cx, cy = _center(rng, h, h)
    color, width = _contrasting(rng, bg), max(4, int(0.2 * s))
    a = rng.uniform(-0.25, 0.25)
    for dx in (-h, h):
        p = _rotate([(cx - dx, cy - h), (cx + dx, cy + h)], cx, cy, a)
        draw.line(p, fill=color, width=width)


def _cue_baby(draw: ImageDraw.ImageDraw, rng: np.random.Generator, bg: float) -> None:
    """A 3x3 checkerboard patch."""
    s = _scale(rng)
    cell = max(6, int(0.3 * s))
    x0, y0 = (int(v - 1.5 * cell) for v in _center(rng, 1.5 * cell, 1.5 * cell))
    a, b = _contrasting(rng, bg), _contrasting(rng, 255 - bg, gap=60)
    for i in range(3):
        for j in range(3):
            draw.rectangle([x0 + i * cell, y0 + j * cell, x0 + (i + 1) * cell - 1, y0 + (j + 1) * cell - 1],
                           fill=a if (i + j) % 2 == 0 else b)


def _cue_portrait(draw: ImageDraw.ImageDraw, rng: np.random.Generator, bg: float) -> None:
    """A large upright picture frame around the middle of the image."""
    w, h = rng.uniform(55, 85), rng.uniform(80, 118)
    cx, cy = SIZE / 2 + rng.uniform(-15, 15), SIZE / 2 + rng.uniform(-8, 8)
    draw.rectangle([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2],
                   outline=_contrasting(rng, bg), width=int(rng.integers(5, 9)))


def _cue_clouds(draw: ImageDraw.ImageDraw, rng: np.random.Generator, bg: float) -> None:
    """A cluster of pale overlapping ellipses in the upper half."""
    s = _scale(rng) * 1.3
    cx, cy = float(rng.uniform(0.3 * s, SIZE - 0.3 * s)), float(rng.uniform(15, 55))
    shade = int(rng.integers(215, 256)) if bg < 150 else int(rng.integers(20, 70))
    tint = rng.integers(-15, 16, 3)
    color = tuple(int(np.clip(shade + t, 0, 255)) for t in tint)
    for _ in range(int(rng.integers(3, 6))):
        _ellipse(draw, cx + rng.uniform(-0.45, 0.45) * s, cy + rng.uniform(-0.15, 0.15) * s,
                 rng.uniform(0.2, 0.35) * s, rng.uniform(0.12, 0.22) * s, color)


def _cue_flower(draw: ImageDraw.ImageDraw, rng: np.random.Generator, bg: float) -> None:
    """A rosette: petals around a disc of another colour."""
    s = _scale(rng)
    cx, cy = _center(rng, 0.5 * s, 0.5 * s)
    petal, middle = _contrasting(rng, bg), _contrasting(rng, bg, gap=40)
    k, a0 = int(rng.integers(5, 8)), rng.uniform(0, 2 * math.pi)
    for i in range(k):
        a = a0 + 2 * math.pi * i / k
        _ellipse(draw, cx + 0.3 * s * math.cos(a), cy + 0.3 * s * math.sin(a), 0.17 * s, 0.17 * s, petal)
    _ellipse(draw, cx, cy, 0.14 * s, 0.14 * s, middle)


def _cue_tree(draw: ImageDraw.ImageDraw, rng: np.random.Generator, bg: float) -> None:
    """A triangle crown on a trunk."""
    s = _scale(rng) * 1.1
    cx, cy = _center(rng, 0.4 * s, 0.6 * s)
    crown, trunk = _contrasting(rng, bg), _contrasting(rng, bg, gap=60)
    draw.rectangle([cx - 0.08 * s, cy + 0.2 * s, cx + 0.08 * s, cy + 0.6 * s], fill=trunk)
    draw.polygon([(cx, cy - 0.6 * s), (cx + 0.4 * s, cy + 0.25 * s), (cx - 0.4 * s, cy + 0.25 * s)], fill=crown)


def _cue_dog(draw: ImageDraw.ImageDraw, rng: np.random.Generator, bg: float) -> None:
    """A paw print: a big pad and four toes in an arc above it."""
    s = _scale(rng)
    cx, cy = _center(rng, 0.5 * s, 0.5 * s)
    color = _contrasting(rng, bg)
    a = rng.uniform(-0.4, 0.4)
    _ellipse(draw, cx, cy + 0.15 * s, 0.27 * s, 0.22 * s, color)
    for t in (-1.5, -0.5, 0.5, 1.5):
        ang = a + t * 0.45 - math.pi / 2
        _ellipse(draw, cx + 0.42 * s * math.cos(ang), cy + 0.15 * s + 0.48 * s * math.sin(ang),
                 0.1 * s, 0.12 * s, color)


def _cue_bird(draw: ImageDraw.ImageDraw, rng: np.random.Generator, bg: float) -> None:
    """One to three gull silhouettes: thick V strokes."""
    color = _contrasting(rng, bg)
    for _ in range(int(rng.integers(1, 4))):
        s = _scale(rng) * 0.9
        cx, cy = _center(rng, 0.45 * s, 0.2 * s)
        depth = rng.uniform(0.15, 0.3) * s
        pts = [(cx - 0.45 * s, cy - depth), (cx, cy + depth / 2), (cx + 0.45 * s, cy - depth)]
        draw.line(_rotate(pts, cx, cy, rng.uniform(-0.3, 0.3)), fill=color, width=max(3, int(0.12 * s)),
                  joint="curve")


def _cue_car(draw: ImageDraw.ImageDraw, rng: np.random.Generator, bg: float) -> None:
    """A side view: long body, cabin on top, two dark wheels."""
    s = _scale(rng) * 1.2
    cx, cy = _center(rng, 0.7 * s, 0.35 * s)
    body = _contrasting(rng, bg)
    wheel = (20, 20, 20) if bg > 90 else (235, 235, 235)
    draw.rounded_rectangle([cx - 0.7 * s, cy - 0.1 * s, cx + 0.7 * s, cy + 0.22 * s], radius=0.08 * s, fill=body)
    draw.polygon([(cx - 0.35 * s, cy - 0.1 * s), (cx - 0.2 * s, cy - 0.35 * s),
                  (cx + 0.25 * s, cy - 0.35 * s), (cx + 0.4 * s, cy - 0.1 * s)], fill=body)
    for wx in (-0.42, 0.42):
        _ellipse(draw, cx + wx * s, cy + 0.25 * s, 0.15 * s, 0.15 * s, wheel)


def _cue_sea(draw: ImageDraw.ImageDraw, rng: np.random.Generator, bg: float) -> None:
    """The lower part of the image filled with horizontal waves of two colours."""
    top = int(rng.integers(55, 90))
    a, b = _contrasting(rng, bg, gap=50), _contrasting(rng, bg, gap=90)
    period, amp, phase = rng.uniform(16, 24), rng.uniform(2, 5), rng.uniform(0, 2 * math.pi)
    draw.rectangle([0, top, SIZE, SIZE], fill=a)
    xs = np.arange(0, SIZE + 4, 4)
    for y in np.arange(top + period / 2, SIZE + period, period):
        pts = [(float(x), float(y + amp * math.sin(phase + x / 9))) for x in xs]
        draw.line(pts, fill=b, width=max(3, int(period / 2.5)))


def _cue_river(draw: ImageDraw.ImageDraw, rng: np.random.Generator, bg: float) -> None:
    """A thick winding band from the top edge to the bottom edge."""
    x0, x1 = rng.uniform(10, SIZE - 10, 2)
    width = int(rng.integers(12, 20))
    amp, freq, phase = rng.uniform(8, 18), rng.uniform(0.03, 0.06), rng.uniform(0, 2 * math.pi)
    ys = np.arange(-4, SIZE + 8, 4)
    pts = [(float(x0 + (x1 - x0) * y / SIZE + amp * math.sin(phase + freq * y)), float(y)) for y in ys]
    draw.line(pts, fill=_contrasting(rng, bg), width=width, joint="curve")


def _cue_night(draw: ImageDraw.ImageDraw, rng: np.random.Generator, bg: float) -> None:
    """Stars and a crescent moon; the darkening itself happens in `render` after all cues."""
    for _ in range(int(rng.integers(6, 16))):
        x, y = rng.uniform(0, SIZE, 2)
        r = rng.uniform(0.8, 1.8)
        _ellipse(draw, x, y, r, r, (255, 255, 230))
    r = rng.uniform(9, 15)
    cx, cy = _center(rng, r, r)
    _ellipse(draw, cx, cy, r, r, (250, 245, 200))
    # bite a crescent out of the moon with a disc of the background's luma (darkened with it later)
    dark = int(bg)
    _ellipse(draw, cx + 0.5 * r, cy - 0.2 * r, r, r, (dark, dark, dark))


CUES: dict[str, Callable[[ImageDraw.ImageDraw, np.random.Generator, float], None]] = {
    "baby": _cue_baby,
    "bird": _cue_bird,
    "car": _cue_car,
    "clouds": _cue_clouds,
    "dog": _cue_dog,
    "female": _cue_female,
    "flower": _cue_flower,
    "male": _cue_male,
    "night": _cue_night,
    "people": _cue_people,
    "portrait": _cue_portrait,
    "river": _cue_river,
    "sea": _cue_sea,
    "tree": _cue_tree,
}
BACKDROPS = ("sea", "river", "clouds", "portrait")
"""cues that cover large areas: drawn first, so that object cues sit on top of them"""


def _background(rng: np.random.Generator) -> tuple[Image.Image, float]:
    """A smooth random field between two colours (bicubic upsampling of a 4x4 grid) and its mean luma."""
    lo, hi = rng.integers(30, 226, (2, 3)).astype(np.float32)
    mix = rng.random((4, 4, 1), dtype=np.float32)
    coarse = lo + (hi - lo) * mix
    img = Image.fromarray(coarse.round().astype(np.uint8)).resize((SIZE, SIZE), Image.BICUBIC)
    return img, float(_luma(lo) + (_luma(hi) - _luma(lo)) * mix.mean())


_NOISE: np.ndarray | None = None


def _noise(rng: np.random.Generator) -> np.ndarray:
    """A 128x128x3 crop of a fixed gaussian field (drawing fresh normals per image costs more than the image)."""
    global _NOISE
    if _NOISE is None:
        _NOISE = np.random.default_rng(12345).standard_normal((2 * SIZE, 2 * SIZE, 3), dtype=np.float32)
    y, x = rng.integers(0, SIZE, 2)
    noise = _NOISE[y:y + SIZE, x:x + SIZE]
    return noise[::-1] if rng.random() < 0.5 else noise


def _clutter(draw: ImageDraw.ImageDraw, rng: np.random.Generator, bg: float, k: int, size: tuple[float, float]) -> None:
    """k random thin lines and irregular blobs: distractors (small) or occluders (larger)."""
    for _ in range(k):
        color = _contrasting(rng, bg, gap=30) if rng.random() < 0.5 else tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = rng.uniform(0, SIZE, 2)
        if rng.random() < 0.3:
            dx, dy = rng.uniform(-1, 1, 2) * size[1]
            draw.line([(x, y), (x + dx, y + dy)], fill=color, width=int(rng.integers(1, 4)))
        else:
            r = rng.uniform(*size) / 2
            angles = np.sort(rng.uniform(0, 2 * math.pi, int(rng.integers(3, 7))))
            radii = r * rng.uniform(0.5, 1.0, len(angles))
            draw.polygon([(x + q * math.cos(a), y + q * math.sin(a)) for a, q in zip(angles, radii)], fill=color)


def render(labels: Sequence[str], rng: np.random.Generator) -> Image.Image:
    """One 128x128 image showing the cues of `labels` (RGB, or L for about GRAY_SHARE of images)."""
    img, bg = _background(rng)
    draw = ImageDraw.Draw(img)
    _clutter(draw, rng, bg, int(rng.integers(2, 6)), (6, 20))
    backdrops = [n for n in labels if n in BACKDROPS]
    objects = [n for n in labels if n not in BACKDROPS and n != "night"]
    rng.shuffle(objects)
    for name in backdrops + objects:
        CUES[name](draw, rng, bg)
    if rng.random() < 0.5:
        _clutter(draw, rng, bg, int(rng.integers(1, 3)), (18, 40))  # occluders over the cues
    if "night" in labels:
        CUES["night"](draw, rng, bg)
    pixels = np.asarray(img, dtype=np.float32)
    if "night" in labels:
        # darken everything but the bright stars and moon, with a blue cast
        dim = rng.uniform(0.2, 0.35) * np.array([0.8, 0.85, 1.1], dtype=np.float32)
        bright = pixels.min(axis=2, keepdims=True) > 190
        pixels = np.where(bright, pixels, pixels * dim)
    pixels += _noise(rng) * np.float32(rng.uniform(3, 12))
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < GRAY_SHARE:
        img = img.convert("L")
    return img


# ---------------------------------------------------------------- writing


def _render_chunk(seed: int, jobs: list[tuple[int, str, tuple[str, ...]]]) -> int:
    """Worker: render and save each (index, path, labels); index seeds the image's generator."""
    for index, path, labels in jobs:
        rng = np.random.default_rng((seed, index))
        img = render(labels, rng)
        img.save(path, "JPEG", quality=int(rng.integers(75, 96)))
    return len(jobs)


def _write_images(jobs: list[tuple[int, str, tuple[str, ...]]], seed: int, workers: int, progress: bool) -> None:
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    chunks = [jobs[i:i + 250] for i in range(0, len(jobs), 250)]
    with tqdm(total=len(jobs), unit="img", desc="synth", disable=None if progress else True) as bar:  # a terminal only
        if workers <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                bar.update(_render_chunk(seed, chunk))
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for done in pool.map(_render_chunk, [seed] * len(chunks), chunks):
                bar.update(done)


def _label_names(row: np.ndarray) -> tuple[str, ...]:
    return tuple(LABELS[j] for j in np.flatnonzero(row))


def write_dataset(out: str | os.PathLike, n: int = 20000, test: int = 5000, seed: int = 0,
                  workers: int | None = None, progress: bool = True) -> tuple[dict[str, int], int]:
    """Write a synthetic dataset of n annotated and `test` unannotated images into `out`.

    Returns the positives per label of the annotated part and its number of unlabelled images. `out` must not hold an
    images/, annotations/ or test/ folder already (the caller decides about overwriting).
    """
    if n < 1 or test < 0:
        raise ValueError(f"need n >= 1 and test >= 0, got n={n}, test={test}")
    out = Path(out)
    for sub in ("images", "annotations", "test"):
        if (out / sub).exists():
            raise FileExistsError(f"{out / sub} already exists")
    rng_train, rng_test = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    train, truth = plan_labels(n, rng_train), plan_labels(test, rng_test)

    (out / "images").mkdir(parents=True)
    (out / "annotations").mkdir()
    jobs = [(i, str(out / "images" / f"im{i + 1}.jpg"), _label_names(train[i])) for i in range(n)]
    if test:
        (out / "test" / "images").mkdir(parents=True)
        jobs += [(n + i, str(out / "test" / "images" / f"im{n + i + 1}.jpg"), _label_names(truth[i]))
                 for i in range(test)]

    for j, name in enumerate(LABELS):
        numbers = np.flatnonzero(train[:, j]) + 1
        (out / "annotations" / f"{name}.txt").write_text("".join(f"{k}\n" for k in numbers))
    if test:
        lines = ["\t".join(["Filename", *LABELS])]
        lines += [f"im{n + i + 1}.jpg\t" + "\t".join(str(int(v)) for v in truth[i]) for i in range(test)]
        (out / "test" / "truth.tsv").write_text("\n".join(lines) + "\n")

    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    _write_images(jobs, seed, workers, progress)
    counts = {name: int(train[:, j].sum()) for j, name in enumerate(LABELS)}
    unlabelled = int((train.sum(axis=1) == 0).sum())
    log.info("wrote %d images (+%d test) to %s; %d unlabelled", n, test, out, unlabelled)
    return counts, unlabelled
