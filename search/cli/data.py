"""`labeltune data synth` and `labeltune data check`: a dataset in the course layout.

No torch, Ray, MLflow or Optuna is imported here (a test checks): these commands start
in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.group()
def data() -> None:
    """Create and validate datasets in the course layout."""


@data.command("synth")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="folder to write images/, annotations/ and test/ into")
@click.option("--n", "n", default=20000, show_default=True, type=click.IntRange(min=1),
              help="annotated images")
@click.option("--test", "test", default=5000, show_default=True, type=click.IntRange(min=0),
              help="unannotated test images (truth in test/truth.tsv)")
@click.option("--seed", default=0, show_default=True, type=int, help="same seed, same dataset")
@click.option("--force", is_flag=True, help="replace images/, annotations/ and test/ if OUT has them")
def synth_cmd(out: Path, n: int, test: int, seed: int, force: bool) -> None:
    """Write a synthetic dataset in the course layout (14 labels, course frequencies)."""
    import shutil
    import time

    from trainable import synth

    existing = [out / sub for sub in ("images", "annotations", "test") if (out / sub).exists()]
    if existing and not force:
        raise click.ClickException(f"{existing[0]} already exists (use --force to replace it)")
    for path in existing:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    start = time.perf_counter()
    counts, unlabelled = synth.write_dataset(out, n=n, test=test, seed=seed)
    seconds = time.perf_counter() - start
    click.echo(f"wrote {n} annotated + {test} test images to {out} in {seconds:.1f} s")
    expected = synth.expected_counts(n)
    click.echo(f"{'label':<10} {'images':>7} {'table':>7}")
    for name in sorted(counts, key=lambda k: -counts[k]):
        click.echo(f"{name:<10} {counts[name]:>7} {expected[name]:>7}")
    click.echo(f"{'unlabelled':<10} {unlabelled:>7} {round(n * synth.UNLABELLED_PER_20K / 20000):>7}")


@data.command("check")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--plot", "plot", type=click.Path(dir_okay=False, path_type=Path),
              help="also write a PNG bar chart of the label counts here")
@click.option("--skip-bad-images", is_flag=True, help="drop unreadable images instead of refusing the dataset")
def check_cmd(root: Path, plot: Path | None, skip_bad_images: bool) -> None:
    """Validate a dataset in the course layout and print its label statistics."""
    from trainable import data as datalib

    ds = datalib.load(root, skip_bad_images=skip_bad_images, progress=True)
    for line in _describe_dataset(ds):
        click.echo(line)
    if plot is not None:
        click.echo(f"plot: {_plot_dataset(ds, plot)}")


def _describe_dataset(ds: Any) -> list[str]:
    """The `data check` report: label counts, labels per image, gray and size tables."""
    from collections import Counter

    import numpy as np

    n = len(ds)
    counts = ds.targets.sum(axis=0, dtype=np.int64)
    lines = [f"{ds.root}: {n} images, {len(ds.labels)} labels, fingerprint {ds.fingerprint[:16]}", ""]
    lines.append(f"{'label':<12} {'images':>7} {'share':>7}")
    for j in sorted(range(len(ds.labels)), key=lambda j: (-counts[j], ds.labels[j])):
        lines.append(f"{ds.labels[j]:<12} {int(counts[j]):>7} {counts[j] / n:>7.1%}")
    per_image = np.bincount(ds.targets.sum(axis=1).astype(np.int64), minlength=1)
    lines += ["", f"{'labels/image':<12} {'images':>7}"]
    lines += [f"{k:<12} {int(c):>7}" for k, c in enumerate(per_image) if c]
    lines += ["", f"unlabelled   {ds.n_unlabelled:>7} {ds.n_unlabelled / n:>7.1%}",
              f"grayscale    {ds.n_gray:>7} {ds.n_gray / n:>7.1%}", ""]
    sizes = Counter((f"{w}x{h}", mode) for (w, h), mode in zip(ds.sizes.tolist(), ds.modes))
    lines.append(f"{'size':<12} {'mode':<6} {'images':>7}")
    lines += [f"{size:<12} {mode:<6} {c:>7}" for (size, mode), c in sorted(sizes.items(), key=lambda kv: -kv[1])]
    notes = {"duplicate numbers": ds.n_duplicates, "ignored files": ds.n_ignored,
             "skipped bad images": ds.n_bad_skipped, "resized to 128x128": ds.n_resized}
    if any(notes.values()):
        lines += [""] + [f"{k}: {v}" for k, v in notes.items() if v]
        lines += [f"  {b}" for b in ds.bad_images[:10]]
    return lines


def _plot_dataset(ds: Any, path: Path) -> Path:
    """Bar charts of positives per label and labels per image (matplotlib, Agg)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = ds.targets.sum(axis=0, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")
    per_image = np.bincount(ds.targets.sum(axis=1).astype(np.int64), minlength=1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    left.bar([ds.labels[j] for j in order], counts[order], color="tab:blue")
    left.set_ylabel("images")
    left.set_title(f"positives per label ({len(ds)} images, {ds.n_unlabelled} unlabelled)")
    left.tick_params(axis="x", rotation=60)
    right.bar(np.arange(len(per_image)), per_image, color="tab:orange")
    right.set_xlabel("labels per image")
    right.set_title("labels per image")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
