"""Record labeltune's own learning curves on a full grid of the frozen CPU bench space, for bench/replay.py.

The space is bench/search_efficiency.py's FROZEN_CPU_SPACE, discretised so that every proposal of a replayed
searcher is a recorded point (no snapping):
  model 3 x loss 2 x optimizer 3 x lr 3 x batch 2 x augment 2 x pos_weight 2 = 432 points, where
  lr             per optimizer, the geometric midpoints of three equal log-thirds of its range (adamw, adam:
                 3.16e-5, 3.16e-4, 3.16e-3; sgd: 2.59e-3, 1.73e-2, 1.16e-1): each value stands for a third of
                 the range a continuous sampler draws from;
  weight_decay   fixed at the geometric midpoint of its range (3.16e-5);
  threshold      not a dimension: it only scores, so each epoch's val and test probabilities are stored and the
                 replay scores any threshold afterwards.
A point with a loss other than bce trains exactly like its pos_weight=off twin (trainable/gym.py computes
positive weights only for bce), so 324 distinct configurations are trained and the 108 twins point at them
(manifest `parts`).

Data: synthetic 6,000 images (trainable/synth.py, data seed 0) at 32 px, split seed 0 (600 val, 600 test),
through bench/common.py's synth_dataset and trainable.trial_data.load_trial_data, as search_efficiency.py.
For every configuration and training seed (TrainConfig.seed 0 and 1) one Gym trains up to 6 epochs,
`Gym(cfg, ...).fit(report)`, on one torch thread; per epoch a part stores the val and test probabilities
(float16), the Gym's own seconds for the epoch (train, validation, metrics, checkpoint: the row's
time/epoch_s less the recorder's report, which scores the test split as well) and the val micro-F1 the Gym
reported at threshold 0.5 (from float32 probabilities: the stored float16 ones give it again within ~0.002);
once per part the Gym's set-up seconds (model build; the data's copy to the device apart, as a reused
worker has it) and, for a run that diverged, the epoch.

Folder (`--out`, default .bench/curves/): manifest.json (space, grid, dataset, split seed, image size,
epochs, training seeds, versions, and three fingerprints: space, data, setup) and one part per
(configuration, training seed), `<key>-seed<s>.npz`, written atomically: a run killed mid-way loses at most
the parts it was training, and a rerun skips every complete part. A folder recorded for another space,
dataset or setup is refused with one line naming the fingerprint that differs.

    python bench/curves.py --estimate                         # the cost, then exit
    python bench/curves.py --workers 2                        # the whole table (resumable: run it again)
    python bench/curves.py --limit-points 2 --seeds 0 --epochs 2 --out /tmp/curves-smoke --workers 1  # smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads: 6-30x slower on 2 shared cores

import numpy as np  # noqa: E402

from common import REPO, log, synth_dataset, use_bench_decode_cache, versions  # noqa: E402
from search import space as spaces  # noqa: E402  (after common, which puts the repository on sys.path)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DEFAULT_OUT = REPO / ".bench" / "curves"
LR_STEPS = 3
"""learning rates per optimizer: midpoints of equal log-spaced parts of its range"""
EPOCHS = 6
TRAIN_SEEDS = (0, 1)
DATASET = {"n_images": 6000, "data_seed": 0, "split_seed": 0}
"""the replay's dataset: search_efficiency.py's sizes (6,000 images), seed 0 for data and split"""
THREADS = 1
"""torch threads per recording process (2 processes on the 2 cores)"""
RECORDED_THRESHOLD = 0.5
"""the threshold the Gym reports val micro-F1 at while recording (the replay scores any threshold)"""
ISSUE_EPOCH_S = 2.8
"""issue 26's figure for one epoch, 2 at a time, when --estimate is not calibrated"""


class CurvesError(Exception):
    """A curves folder that cannot be used here: one line that says why."""


# ---- the grid ---------------------------------------------------------------------------------


def log_midpoints(low: float, high: float, steps: int) -> list[float]:
    """The geometric midpoints of `steps` equal log-spaced parts of [low, high]."""
    a, b = math.log10(low), math.log10(high)
    width = (b - a) / steps
    return [float(10 ** (a + width * (k + 0.5))) for k in range(steps)]


def grid_space(space: dict, lr_steps: int = LR_STEPS) -> dict:
    """The space a replayed searcher is offered: each lr_<optimizer> a list of `lr_steps` values, every other
    range fixed at its geometric (or arithmetic) midpoint, except the threshold, which stays a range."""
    out = {}
    for name, value in space.items():
        if isinstance(value, dict) and spaces.lr_optimizer(name) is not None:
            out[name] = log_midpoints(float(value["low"]), float(value["high"]), lr_steps)
        elif isinstance(value, dict) and name != "threshold":
            low, high = float(value["low"]), float(value["high"])
            out[name] = float(math.sqrt(low * high)) if value.get("log") else (low + high) / 2
        else:
            out[name] = value
    return out


def grid_names(gspace: dict) -> list[str]:
    """The grid's categorical dimensions in space order (lists of two or more, lr_<optimizer> apart)."""
    return [k for k, v in gspace.items() if isinstance(v, list) and len(v) > 1 and spaces.lr_optimizer(k) is None]


def grid_points(gspace: dict) -> list[dict]:
    """Every point of the grid: one value per dimension and the chosen optimizer's lr_<optimizer> value."""
    names = grid_names(gspace)
    points = []
    for combo in itertools.product(*(gspace[n] for n in names)):
        point = dict(zip(names, combo))
        lr = spaces.lr_param(point.get("optimizer", gspace.get("optimizer")))
        for value in spaces.choices(gspace[lr]):
            points.append({**point, lr: value})
    return points


def trains_as(point: dict) -> dict:
    """The point the Gym really trains: positive weights exist only for bce (trainable/gym.py builds them when
    `cfg.pos_weight == "auto" and cfg.loss == "bce"`), so another loss's pos_weight=auto is its =off twin."""
    if point.get("loss", "bce") != "bce" and point.get("pos_weight") == "auto":
        return {**point, "pos_weight": "off"}
    return dict(point)


def point_key(point: dict) -> str:
    """A short stable name of a point (the file name of its parts)."""
    return spaces.fingerprint(point, {})[:12]


def grid_lookup(points: list[dict]) -> dict[tuple, int]:
    """(sorted (name, value) pairs) -> grid index: how a suggested config finds its point."""
    return {tuple(sorted(p.items())): i for i, p in enumerate(points)}


# ---- the manifest -----------------------------------------------------------------------------


@dataclasses.dataclass
class Manifest:
    """manifest.json of a curves folder: what was recorded, on what, and the parts that hold it."""

    space: dict
    """the space the grid comes from (FROZEN_CPU_SPACE)"""
    lr_steps: int
    grid_space: dict
    """the space a replayed searcher is offered (grid_space)"""
    grid: list
    """every grid point (dicts of the searched categorical values)"""
    parts: list
    """per grid point, the key of the parts that hold its curves (trains_as twins share one)"""
    dataset: dict
    """n_images, data_seed, split_seed, image_size, fingerprint (trainable/data.py), labels"""
    epochs: int
    train_seeds: list
    fingerprints: dict
    """space, data, setup: compared before a folder is resumed or replayed"""
    versions: dict = dataclasses.field(default_factory=dict)
    threads: int = THREADS
    created: str = ""
    format_version: int = FORMAT_VERSION

    def keys(self) -> list[str]:
        """The distinct configurations to train, in grid order."""
        return list(dict.fromkeys(self.parts))

    def point_of(self, key: str) -> dict:
        """The point a part trains (trains_as of the first grid point that points at it)."""
        return trains_as(self.grid[self.parts.index(key)])


def make_manifest(space: dict, dataset: dict, epochs: int = EPOCHS, train_seeds=TRAIN_SEEDS,
                  lr_steps: int = LR_STEPS) -> Manifest:
    """The manifest of a table of `space` on `dataset` (n_images, data_seed, split_seed, image_size,
    fingerprint, labels)."""
    gspace = grid_space(space, lr_steps)
    grid = grid_points(gspace)
    setup = {k: dataset[k] for k in ("n_images", "data_seed", "split_seed", "image_size")}
    fingerprints = {"space": spaces.fingerprint(gspace, {"lr_steps": lr_steps}),
                    "data": dataset["fingerprint"],
                    "setup": spaces.fingerprint({}, {**setup, "epochs": epochs, "train_seeds": list(train_seeds)})}
    return Manifest(space=space, lr_steps=lr_steps, grid_space=gspace, grid=grid,
                    parts=[point_key(trains_as(p)) for p in grid], dataset=dict(dataset), epochs=epochs,
                    train_seeds=list(train_seeds), fingerprints=fingerprints, versions=versions(),
                    created=time.strftime("%Y-%m-%dT%H:%M:%S"))


FINGERPRINT_MEANING = {"space": "another space or grid", "data": "another dataset",
                       "setup": "another split seed, image size, epochs or training seeds"}


def check_fingerprints(where: str, found: dict, expected: dict) -> None:
    """Refuse, in one line, a folder or part whose fingerprints differ from `expected` (the first that differs)."""
    for name in ("space", "data", "setup"):
        if name in expected and found.get(name) != expected[name]:
            raise CurvesError(f"{where}: recorded with {name} fingerprint {found.get(name)}, expected "
                              f"{expected[name]} ({FINGERPRINT_MEANING[name]})")


def read_manifest(folder: Path) -> Manifest:
    """The folder's manifest; a folder without one, or of another format version, is refused."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise CurvesError(f"{folder}: no {MANIFEST} (not a curves folder; record one with bench/curves.py)")
    raw = json.loads(path.read_text())
    if raw.get("format_version") != FORMAT_VERSION:
        raise CurvesError(f"{path}: format version {raw.get('format_version')}, this code reads {FORMAT_VERSION}")
    return Manifest(**raw)


def open_folder(folder: Path, manifest: Manifest) -> Manifest:
    """Write the manifest into a new folder, or check an existing one against it (a resume)."""
    from trainable import store

    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        found = read_manifest(folder)
        check_fingerprints(f"curves folder {folder}", found.fingerprints, manifest.fingerprints)
        if found.versions != manifest.versions:
            log(f"{folder}: recorded with {found.versions}, this run has {manifest.versions}")
        return found
    store.write_json(folder / MANIFEST, dataclasses.asdict(manifest))
    return manifest


# ---- parts ----------------------------------------------------------------------------------------


def part_path(folder: Path, key: str, seed: int) -> Path:
    """Where the part of configuration `key` and training seed `seed` lives."""
    return Path(folder) / f"{key}-seed{seed}.npz"


def write_part(folder: Path, manifest: Manifest, key: str, seed: int, arrays: dict) -> Path:
    """One part, atomically (a killed run leaves no half part): the trainer's arrays and what it was made on."""
    from trainable import store

    meta = {"key": key, "seed": seed, "point": manifest.point_of(key), "fingerprints": manifest.fingerprints,
            "torch": versions().get("torch"), "written": time.strftime("%Y-%m-%dT%H:%M:%S")}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to the temporary name
            np.savez_compressed(f, meta=np.array(json.dumps(meta)), **arrays)

    return store.write_atomic(part_path(folder, key, seed), write)


def read_part(path: Path, expected: dict | None = None) -> dict:
    """A part's arrays and meta (a dict); refused when its fingerprints differ from `expected`."""
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    out["meta"] = json.loads(str(out["meta"]))
    if expected is not None:
        check_fingerprints(f"curves part {path}", out["meta"]["fingerprints"], expected)
    return out


def missing_parts(folder: Path, manifest: Manifest, limit_points: int | None = None,
                  seeds: list[int] | None = None) -> list[tuple[str, int]]:
    """(key, seed) of every part not yet in the folder: configurations in grid order (the first
    `limit_points` only), each with every training seed."""
    keys = manifest.keys()[:limit_points] if limit_points else manifest.keys()
    return [(key, seed) for key in keys for seed in (seeds if seeds is not None else manifest.train_seeds)
            if not part_path(folder, key, seed).is_file()]


# ---- training one part --------------------------------------------------------------------------


@dataclasses.dataclass
class Context:
    """What each recording process holds: the manifest and the decoded data (TrialData)."""

    manifest: Manifest
    data: Any


def train_config(point: dict, seed: int, manifest: Manifest):
    """The TrainConfig a search trial of `point` would get: the product's define-by-run over the grid space
    (an optuna FixedTrial answers its questions), then spaces.to_train_config, on the CPU with THREADS threads."""
    import optuna

    constants = {"epochs": manifest.epochs, "split_seed": manifest.dataset["split_seed"], "seed": seed}
    trial = optuna.trial.FixedTrial({**point, "threshold": RECORDED_THRESHOLD})
    config = spaces.define_by_run(trial, manifest.grid_space, constants, ())
    return spaces.to_train_config({**config, "device": "cpu", "threads": manifest.threads})


def train_part(key: str, seed: int, ctx: Context) -> dict:
    """Train one configuration with one seed; per epoch its val and test probabilities and seconds."""
    from trainable import timing
    from trainable.gym import Gym, TrialDiverged
    from trainable.metrics import PRIMARY_METRIC

    cfg = train_config(ctx.manifest.point_of(key), seed, ctx.manifest)
    data = ctx.data
    start = time.perf_counter()
    gym = Gym(cfg, data.images, data.targets, data.labels, data_fingerprint=data.fingerprint)
    out: dict[str, list] = {"val": [], "test": [], "epoch_s": [], "train_s": [], "val_f1": []}
    targets, last = {}, [time.perf_counter()]
    # a search's later trials find the data on the device already (reuse_actors): the set-up a trial pays is
    # the model's build; the data's copy is kept apart (this process's first part pays it)
    data_s = gym.startup.get(timing.DATA_TO_DEVICE, 0.0)
    startup_s = last[0] - start - data_s

    def report(row: dict, _folder) -> None:
        # the Gym's own epoch: time/epoch_s spans from the previous report's call, whose time is time/report_s
        out["epoch_s"].append(row[timing.EPOCH] - row[timing.REPORT])
        out["train_s"].append(row[timing.TRAIN])
        out["val_f1"].append(row[PRIMARY_METRIC])
        for split in ("val", "test"):
            probs, targets[split], _ = gym.outputs(split)
            out[split].append(probs.astype(np.float16))
        last[0] = time.perf_counter()

    diverged, diverged_s = 0, 0.0
    try:
        gym.fit(report)
    except TrialDiverged:
        diverged, diverged_s = len(out["epoch_s"]) + 1, time.perf_counter() - last[0]
    if not targets:  # diverged in its first epoch: the targets come without a trained epoch
        for split in ("val", "test"):
            targets[split] = gym.outputs(split)[1]
    labels = len(data.labels)
    return {"val": np.asarray(out["val"], np.float16).reshape(-1, len(targets["val"]), labels),
            "test": np.asarray(out["test"], np.float16).reshape(-1, len(targets["test"]), labels),
            "val_targets": targets["val"].astype(np.uint8), "test_targets": targets["test"].astype(np.uint8),
            "epoch_s": np.asarray(out["epoch_s"], np.float64), "train_s": np.asarray(out["train_s"], np.float64),
            "val_f1_recorded": np.asarray(out["val_f1"], np.float64), "startup_s": np.float64(startup_s),
            "data_to_device_s": np.float64(data_s),
            "diverged": np.int64(diverged), "diverged_s": np.float64(diverged_s)}


# ---- the recording loop ---------------------------------------------------------------------------

_WORKER: dict = {}
"""per recording process: its Context (set by _start_worker)"""


def load_context(manifest: Manifest) -> Context:
    """The manifest's dataset loaded and decoded (cached) as a search's driver loads it, and this process warmed."""
    from trainable.trial_data import load_trial_data

    from trainable.gym import Gym

    use_bench_decode_cache()
    root = synth_dataset(manifest.dataset["n_images"], manifest.dataset["data_seed"])
    _, data = load_trial_data(str(root), 0, False)
    # a throwaway Gym: the process's first one pays torch's and the data's set-up (~2-3 s), which a part would
    # otherwise record as its own start-up
    cfg = train_config(manifest.point_of(manifest.keys()[0]), manifest.train_seeds[0], manifest)
    Gym(cfg, data.images, data.targets, data.labels, data_fingerprint=data.fingerprint)
    return Context(manifest, data)


def _start_worker(manifest: dict) -> None:
    _WORKER["ctx"] = load_context(Manifest(**manifest))


def _record_in_worker(folder: str, key: str, seed: int) -> tuple[str, int, float]:
    ctx = _WORKER["ctx"]
    arrays = train_part(key, seed, ctx)
    write_part(Path(folder), ctx.manifest, key, seed, arrays)
    return key, seed, float(arrays["epoch_s"].sum())


def record(folder: Path, manifest: Manifest, todo: list[tuple[str, int]], workers: int = 1,
           train: Callable[[str, int], dict] | None = None) -> int:
    """Train and write every (key, seed) of `todo`; returns how many parts were written. workers=1 trains in this
    process with `train(key, seed)` (default: train_part on the manifest's data); more start that many spawned
    processes, each with the data loaded once and one torch thread."""
    started, done = time.time(), 0

    def progress(key: str, seed: int, seconds: float) -> None:
        nonlocal done
        done += 1
        left = (time.time() - started) / done * (len(todo) - done)
        log(f"part {done}/{len(todo)}: {key} seed {seed} ({seconds:.1f} s of epochs); ~{left / 60:.0f} min left")

    if workers <= 1:
        train = train or functools.partial(train_part, ctx=load_context(manifest))
        for key, seed in todo:
            arrays = train(key, seed)
            write_part(folder, manifest, key, seed, arrays)
            progress(key, seed, float(np.sum(arrays["epoch_s"])))
        return done
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                             initargs=(dataclasses.asdict(manifest),)) as pool:
        for future in as_completed([pool.submit(_record_in_worker, str(folder), k, s) for k, s in todo]):
            progress(*future.result())
    return done


# ---- the estimate and the command line -----------------------------------------------------------


def calibrate_epoch_s(manifest: Manifest) -> float:
    """search_efficiency.py's calibration on this dataset: one epoch per model and batch size, one thread."""
    import search_efficiency as se

    data = load_context(manifest).data  # TrialData has the targets and labels calibrate_epoch_s reads
    return se.calibrate_epoch_s(manifest.grid_space, data, data.images, cpus_per_trial=THREADS)


def estimate_s(parts: int, epochs: int, epoch_s: float, workers: int, startup_s: float = 0.5,
               score_s: float = 0.3) -> float:
    """Wall seconds of `parts` parts: epochs x (epoch + the recorder's val/test scoring) + set-up, `workers` at once."""
    return parts * (epochs * (epoch_s + score_s) + startup_s) / max(1, workers)


def dataset_spec(root: Path, image_size: int) -> dict:
    """The manifest's dataset entry for a synthetic dataset folder (its fingerprint read from the files)."""
    from trainable import data as data_mod

    dataset = data_mod.load(str(root))
    return {**DATASET, "image_size": image_size, "fingerprint": dataset.fingerprint, "labels": list(dataset.labels)}


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the curves folder (default {DEFAULT_OUT})")
    p.add_argument("--estimate", action="store_true", help="print the cost of what is missing and exit")
    p.add_argument("--epoch-s", type=float, default=None,
                   help=f"seconds per epoch for the estimate (default: calibrated; the issue says {ISSUE_EPOCH_S})")
    p.add_argument("--limit-points", type=int, default=None, help="only the first N configurations (grid order)")
    p.add_argument("--workers", type=int, default=2, help="recording processes, one torch thread each")
    p.add_argument("--epochs", type=int, default=EPOCHS, help="epochs per part (part of the setup fingerprint)")
    p.add_argument("--seeds", default=",".join(map(str, TRAIN_SEEDS)), help="training seeds to record")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Open (or resume) the folder, print the estimate, record what is missing; 2 for a refused folder."""
    args = parse_args(argv)
    import search_efficiency as se

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    root = synth_dataset(DATASET["n_images"], DATASET["data_seed"])
    space = se.make_space(gpu=False)
    manifest = make_manifest(space, dataset_spec(root, space["image_size"]), args.epochs, seeds)
    try:
        manifest = open_folder(args.out, manifest) if not args.estimate else manifest
        if args.estimate and (args.out / MANIFEST).is_file():
            check_fingerprints(f"curves folder {args.out}", read_manifest(args.out).fingerprints,
                               manifest.fingerprints)
    except CurvesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    todo = missing_parts(args.out, manifest, args.limit_points, seeds)
    epoch_s = args.epoch_s if args.epoch_s is not None else calibrate_epoch_s(manifest)
    total = estimate_s(len(todo), manifest.epochs, epoch_s, args.workers)
    how = "given" if args.epoch_s is not None else "calibrated, one process alone"
    issue = estimate_s(len(todo), manifest.epochs, ISSUE_EPOCH_S, args.workers)
    print(f"{len(manifest.grid)} grid points, {len(manifest.keys())} distinct configurations x {len(seeds)} seeds; "
          f"{len(todo)} parts to record x {manifest.epochs} epochs at ~{epoch_s:.2f} s ({how}), {args.workers} at a "
          f"time: ~{total / 3600:.2f} h ({total / 60:.0f} min); at issue 26's {ISSUE_EPOCH_S} s per epoch 2 at a "
          f"time: ~{issue / 3600:.2f} h ({args.out})", flush=True)
    if args.estimate or not todo:
        return 0
    record(args.out, manifest, todo, args.workers)
    log(f"done: {len(missing_parts(args.out, manifest, None, seeds))} parts still missing in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
