"""Host-side seconds per trial-epoch of labeltune's own trials, per model, on the CPU: where the time goes
that is not training or validation forward passes.

bench/tune_overhead.py measures Tune's own bookkeeping with trivial trials (no torch, no data, a 1 KB
checkpoint at most). This script runs labeltune's own trainable instead: `search.tuner.build_tuner` (the
product's Tuner, with labeltune's TPE searcher, study kept on disk, reuse_actors=True, per-model resources,
CheckpointPruner) over trainable/trial.py's run_trial and the Gym, so every epoch writes the model's real
checkpoint (its size depends on the model and the optimizer state, not on the image size), computes the real
validation metrics over a 2,000-image val split and calls tune.report with the checkpoint folder.

Per model in trainable.specs.MODEL_SPECS (`--models` picks some), one search of `--trials` (4) identical
trials, `--concurrency` (2) at a time, `--epochs` (3) each, FIFO (no ASHA stop, so every trial runs every
epoch), MLflow tracking off. The trials train tiny: 32 px, batch 32, `--train` (64) images, so the host's
part is what stands out; validation uses `--val` (2,000) images, because the metrics' cost grows with it.
The data is synthetic and in memory (random uint8 128x128 images, targets with the course's label
frequencies and co-occurrence from trainable/synth.py plan_labels): no JPEG is written or decoded.

It reads the `time/` keys every result row carries (trainable/timing.py) and reports, per model:

  checkpoint / metrics / report    the medians over steady epochs (epoch >= 2) of time/checkpoint_s,
                                   time/metrics_s and time/report_s (the previous epoch's tune.report until it
                                   returned: the checkpoint's copy into storage and the driver's round trip);
  other                            time/epoch_s minus those three, train_s and val_forward_s;
  host per trial-epoch             time/epoch_s - time/train_s - time/val_forward_s (target: <= 0.2 s);
  later-trial start                a trial that reuses a worker (time/startup/import_s == 0): placement, from
                                   the driver seeing the worker's previous trial complete (the slot free; Tune
                                   creates and starts the next trial within one step) until the trainable's
                                   entry (`started_at`: the searcher's suggestion, the actor's reset, the data
                                   from the object store), plus set-up, entry until Gym.fit (config, data to the
                                   device from the process cache, model build) (target: <= 1 s);
  cold start                       the same for a new worker, placement from the first step that sees the
                                   trial PENDING (as the MLflow tracker times it: process, imports, actor);
  finish                           a trial's last report call until the driver saw it complete (that report's
                                   checkpoint copy and round trip, in no row);
  worker gap                       a reused worker's previous trial's last report call until the next trial's
                                   entry (finish + the later trial's placement, on the worker's clock);
  train share                      timing.summarise per trial (rows + the driver's placement and finish), median.

Targets are reported, not asserted. Levers before/after: `--label before` from a git worktree of the old
commit, `--label after` from the checkout, then `--compare A.json B.json` prints each lever's table:

    git -C /work/main worktree add /tmp/lt-before 793e722 && cp bench/host_overhead.py /tmp/lt-before/bench/
    cd /tmp/lt-before && PYTHONPATH=/tmp/lt-before /work/main/.venv/bin/python bench/host_overhead.py --label before
    .venv/bin/python bench/host_overhead.py --label after
    .venv/bin/python bench/host_overhead.py --compare bench/results/host_overhead-labelbefore_<date>.json \
        bench/results/host_overhead-labelafter_<date>.json

The Ray workers get the tree this script lives in first on PYTHONPATH (ray.init's runtime_env), and the JSON
records where a worker imported `trainable` from (`parameters.code.worker_trainable_file`); the run stops if
that is not this tree. Wall on 2 quiet cores: ~2.5-3 min for all 7 models (`--estimate` prints the estimate
and exits; `--smoke`: cnn5 only, 2 trials of 2 epochs, 200 val images, ~20-30 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import REPO, bench_root, log, results_variant, table, write_results

HOST_TARGET_S = 0.2
"""target: host seconds per steady trial-epoch (epoch_s - train_s - val_forward_s), every model"""
LATER_START_TARGET_S = 1.0
"""target: a later trial's start in a reused worker (placement + set-up until Gym.fit)"""

TRAIN_S, VAL_FORWARD_S, METRICS_S, CHECKPOINT_S, REPORT_S, EPOCH_S = (
    "time/train_s", "time/val_forward_s", "time/metrics_s", "time/checkpoint_s", "time/report_s", "time/epoch_s")
IMPORT_S, MODEL_BUILD_S, DATA_TO_DEVICE_S = (
    "time/startup/import_s", "time/startup/model_build_s", "time/startup/data_to_device_s")
PLACEMENT_S, FINISH_S = "time/startup/placement_s", "time/finish_s"
"""the keys of trainable/timing.py, spelled out so that the analysis runs without importing labeltune"""

KEPT_KEYS = ("epoch", "training_iteration", "pid", "started_at", "reported_at", "data_setup_s", "data_cached")
"""what the driver keeps of each result row beside its time/ keys"""

LEVERS = (("checkpoint_s", "checkpoint write"), ("metrics_s", "metrics"), ("report_s", "tune.report"),
          ("other_s", "other"), ("host_s", "host per trial-epoch"),
          ("own_host_weights_s", "host per epoch that wrote weights, its own report"),
          ("own_host_record_s", "host per epoch that wrote only its record, its own report"),
          ("weights_share", "share of trial-epochs that wrote weights"),
          ("later_start_s", "later-trial start"), ("train_share", "train share of trial wall"))
"""the per-model figures --compare puts side by side: (key in results.models[model], title)"""

EST_MODEL_S = {"dummy": 8, "cnn4": 17, "cnn3bn": 17, "cnn5": 16, "resnet18": 21, "resnet50": 45,
               "efficientnet_lite0": 31}
"""seconds one model's search took at the defaults on 2 quiet cores (2026-12-04, --label before); the estimate"""
RAY_INIT_S = 8
SMOKE = {"models": ["cnn5"], "trials": 2, "epochs": 2, "val": 200}
"""--smoke's sizes (each only where the command line leaves the default)"""


# ---- the analysis (plain rows, no Ray: tests/test_bench.py builds rows by hand) ----------------------


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def steady_rows(rows: list[dict], from_epoch: int = 2) -> list[dict]:
    """Rows of epochs >= from_epoch that carry timing: the steady state (the first epoch holds the start-up)."""
    return [r for r in rows if r.get(TRAIN_S) is not None and int(r.get("epoch") or 0) >= from_epoch]


def epoch_phases(row: dict) -> dict:
    """A row's host phases: checkpoint, metrics, report, other (epoch - all measured phases), host (epoch - train -
    val forward), and the train, val_forward and epoch seconds themselves."""
    train, val, metrics = row[TRAIN_S], row[VAL_FORWARD_S], row.get(METRICS_S, 0.0)
    ckpt, report, epoch = row.get(CHECKPOINT_S, 0.0), row.get(REPORT_S, 0.0), row[EPOCH_S]
    return {"train_s": train, "val_forward_s": val, "metrics_s": metrics, "checkpoint_s": ckpt, "report_s": report,
            "other_s": epoch - (train + val + metrics + ckpt + report), "host_s": epoch - train - val,
            "epoch_s": epoch}


def weights_of(trial: dict) -> dict[int, bool]:
    """epoch -> whether it wrote weights, as the clock saw its folders (JSON turns the epochs into strings)."""
    return {int(e): bool(w) for e, w in (trial.get("weights") or {}).items()}


def own_epochs(trial: dict, from_epoch: int = 2) -> list[tuple[bool, float]]:
    """(wrote weights, host seconds) of each steady epoch followed by another timed row: the epoch's host phases with
    its OWN tune.report (the next row's time/report_s) instead of the previous epoch's, so that an epoch is charged
    for copying its own folder. `trial["weights"]` (epoch -> bool, from the clock) says which epochs wrote weights;
    an epoch it lacks (a labeltune before the records, whose every epoch wrote weights) counts as weights."""
    rows = [r for r in trial["rows"] if r.get(TRAIN_S) is not None]
    weights = weights_of(trial)
    out = []
    for row, after in zip(rows, rows[1:]):
        epoch = int(row.get("epoch") or 0)
        if epoch >= from_epoch:
            own = epoch_phases(row)["host_s"] - row.get(REPORT_S, 0.0) + after.get(REPORT_S, 0.0)
            out.append((weights.get(epoch, True), own))
    return out


def trial_start(trial: dict) -> dict:
    """A trial's start from its first timed row and the driver's clock.

    placement: the driver first saw it PENDING until the trainable's entry (`started_at`): resources, a worker
    process and its imports (a cold start) or a reused actor's reset, the data from the object store; set-up: entry
    until Gym.fit (config, data to the device, model build; reported_at - epoch_s of the first row); start: both.
    Also the start-up keys, whether the worker was reused (import_s 0), and finish: its last report call until the
    driver saw it complete (that report's checkpoint copy and round trip, the trial's exit)."""
    rows = [r for r in trial["rows"] if r.get(TRAIN_S) is not None]
    if not rows:
        return {}
    first, last = rows[0], rows[-1]
    since = trial.get("pending_driver") if trial.get("pending_driver") is not None else trial.get("started_driver")
    placement = first["started_at"] - since if since is not None else None
    setup = first["reported_at"] - first[EPOCH_S] - first["started_at"]
    finish = (trial["completed_driver"] - last["reported_at"]) if trial.get("completed_driver") is not None else None
    return {"reused": first.get(IMPORT_S, 0.0) == 0.0, "placement_s": placement, "setup_s": setup,
            "start_s": None if placement is None else placement + setup, "import_s": first.get(IMPORT_S),
            "model_build_s": first.get(MODEL_BUILD_S), "data_to_device_s": first.get(DATA_TO_DEVICE_S),
            "data_cached": first.get("data_cached"), "finish_s": finish, "pid": first.get("pid"),
            "started_at": first["started_at"], "last_reported_at": last["reported_at"],
            "completed_driver": trial.get("completed_driver")}


def chain_workers(starts: list[dict]) -> None:
    """Link each trial to the one before it in the same worker process (pid), in place: `gap_s`, that trial's last
    report call until this one's entry (worker's clock: that report's checkpoint copy and round trip, Tune switching
    trials), and, for a reused worker, `placement_s` from the driver seeing that trial complete (the slot free)
    until this one's entry. Tune creates and starts a later trial within one step, so no step sees it PENDING."""
    by_pid: dict = {}
    for s in starts:
        if s and s.get("pid") is not None:
            by_pid.setdefault(s["pid"], []).append(s)
    for group in by_pid.values():
        group.sort(key=lambda s: s["started_at"])
        for before, s in zip(group, group[1:]):
            s["gap_s"] = s["started_at"] - before["last_reported_at"]
            if s["reused"] and before.get("completed_driver") is not None:
                s["placement_s"] = s["started_at"] - before["completed_driver"]
                s["start_s"] = s["placement_s"] + s["setup_s"]


def train_share(trial: dict, start: dict, summarise=None) -> float | None:
    """trainable.timing.summarise's train share of one trial, its rows given the placement (first row) and finish
    (last row) of `start` (trial_start, chain_workers), as the tracker gives them; `summarise`: trainable.timing's."""
    if summarise is None:
        from trainable.timing import summarise
    rows = [dict(r) for r in trial["rows"] if r.get(TRAIN_S) is not None]
    if not rows:
        return None
    if start.get("placement_s") is not None:
        rows[0][PLACEMENT_S] = start["placement_s"]
    if start.get("finish_s") is not None:
        rows[-1][FINISH_S] = start["finish_s"]
    return summarise(rows).train_share


def analyse_model(trials: list[dict], summarise=None) -> dict:
    """One model's figures from its trials ({"rows": [...], "pending_driver", "started_driver",
    "completed_driver"} each): medians
    over the steady trial-epochs of every phase, the later trials' start (reused workers), the cold start for
    contrast, the train share, and each target met or not (None when there is nothing to judge)."""
    steady = [epoch_phases(r) for t in trials for r in steady_rows(t["rows"])]
    firsts = [epoch_phases(r) for t in trials for r in t["rows"] if r.get(TRAIN_S) is not None and r.get("epoch") == 1]
    starts = [trial_start(t) for t in trials]
    chain_workers(starts)
    later = [s for s in starts if s and s["reused"]]
    cold = [s for s in starts if s and not s["reused"]]
    out = {key: _median(p[key] for p in steady) for key in ("train_s", "val_forward_s", "metrics_s", "checkpoint_s",
                                                              "report_s", "other_s", "host_s", "epoch_s")}
    out["first_epoch_host_s"] = _median(p["host_s"] for p in firsts)
    own = [pair for t in trials for pair in own_epochs(t)]
    out["own_host_weights_s"] = _median(s for w, s in own if w)
    out["own_host_record_s"] = _median(s for w, s in own if not w)
    flags = [weights_of(t).get(int(r.get("epoch") or 0), True) for t in trials for r in t["rows"]
             if r.get(TRAIN_S) is not None]
    out["weights_share"] = sum(flags) / len(flags) if flags else None
    out["steady_trial_epochs"], out["trials"], out["later_trials"] = len(steady), len(trials), len(later)
    for prefix, group in (("later", later), ("cold", cold)):
        for key in ("start_s", "placement_s", "setup_s", "model_build_s", "data_to_device_s", "import_s"):
            out[f"{prefix}_{key}"] = _median(s[key] for s in group)
    out["finish_s"] = _median(s.get("finish_s") for s in starts if s)
    out["worker_gap_s"] = _median(s.get("gap_s") for s in starts if s)
    shares = [train_share(t, s, summarise) for t, s in zip(trials, starts)]
    out["train_share"] = _median(shares)
    out["train_shares"] = shares
    out["host_target_met"] = None if out["host_s"] is None else out["host_s"] <= HOST_TARGET_S
    out["later_start_target_met"] = None if out["later_start_s"] is None else out["later_start_s"] <= LATER_START_TARGET_S
    return out


def analyse(trials_by_model: dict[str, list[dict]], summarise=None) -> dict:
    """results.models (model -> analyse_model) and the targets over all models."""
    models = {m: analyse_model(trials, summarise) for m, trials in trials_by_model.items()}

    def every(key: str) -> bool | None:
        judged = [v[key] for v in models.values() if v[key] is not None]
        return all(judged) if judged else None

    return {"models": models, "targets": {"host_per_trial_epoch_s": HOST_TARGET_S,
                                          "later_trial_start_s": LATER_START_TARGET_S,
                                          "host_met_by_every_model": every("host_target_met"),
                                          "later_start_met_by_every_model": every("later_start_target_met")}}


def compare(before: dict, after: dict) -> dict:
    """Per lever (LEVERS), per model both runs hold: before, after, after - before."""
    a, b = before["results"]["models"], after["results"]["models"]
    out = {}
    for key, _ in LEVERS:
        out[key] = {m: {"before": a[m].get(key), "after": b[m].get(key),
                        "change": None if a[m].get(key) is None or b[m].get(key) is None else b[m][key] - a[m][key]}
                    for m in a if m in b}
    return out


# ---- printing ------------------------------------------------------------------------------------


def summary_rows(models: dict) -> list[dict]:
    return [{"model": m, **v, "checkpoint_mb": v.get("checkpoint_mb")} for m, v in models.items()]


SUMMARY_COLUMNS = [("model", "model", ""), ("checkpoint_mb", "ckpt MB", ".1f"), ("train_s", "train s", ".2f"),
                   ("val_forward_s", "val fwd s", ".2f"), ("checkpoint_s", "ckpt s", ".3f"),
                   ("metrics_s", "metrics s", ".3f"), ("report_s", "report s", ".3f"), ("other_s", "other s", ".3f"),
                   ("host_s", "host/epoch s", ".3f"), ("later_start_s", "later start s", ".2f"),
                   ("cold_start_s", "cold start s", ".2f"), ("finish_s", "finish s", ".2f"),
                   ("worker_gap_s", "worker gap s", ".2f"),
                   ("train_share", "train share", ".3f")]


def print_summary(results: dict, label: str) -> None:
    print(table(summary_rows(results["models"]), SUMMARY_COLUMNS,
                title=f"Host overhead per trial-epoch (medians of steady epochs >= 2){' — ' + label if label else ''}; "
                      f"targets: host <= {HOST_TARGET_S} s, later start <= {LATER_START_TARGET_S} s"))
    t = results["targets"]
    print(f"host target met by every model: {t['host_met_by_every_model']}; "
          f"later-start target met by every model: {t['later_start_met_by_every_model']}")


def print_compare(comparison: dict, labels: tuple[str, str]) -> None:
    for key, title in LEVERS:
        rows = [{"model": m, **v} for m, v in comparison[key].items()]
        spec = ".3f" if key != "later_start_s" else ".2f"
        print(table(rows, [("model", "model", ""), ("before", labels[0], spec), ("after", labels[1], spec),
                           ("change", "change", "+" + spec)], title=f"\n{title} ({key})"))


# ---- the run ---------------------------------------------------------------------------------------


def make_data(n_train: int, n_val: int, n_test: int, seed: int = 0):
    """A TrialData of random uint8 128x128 RGB images (as a search's decoded data) and targets with the course's
    label frequencies and co-occurrence (trainable.synth.plan_labels), plus the split_fractions that give exactly
    these split sizes."""
    import numpy as np

    from trainable import synth
    from trainable.trial_data import TrialData

    n = n_train + n_val + n_test
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, synth.SIZE, synth.SIZE), dtype=np.uint8)
    targets = synth.plan_labels(n, rng)
    data = TrialData(images, np.ascontiguousarray(targets), list(synth.LABELS), f"host-overhead-n{n}-seed{seed}")
    return data, (n_train / n, n_val / n, n_test / n)


def make_clock():
    """A Tune Callback keeping, per trial, the driver's start and completion times, each result's time/ keys and
    wall clocks, and the size of each checkpoint."""
    from ray.tune import Callback

    class TrialClock(Callback):
        def __init__(self) -> None:
            self.trials: dict[str, dict] = {}
            self.checkpoint_bytes: list[int] = []

        def _trial(self, trial) -> dict:
            return self.trials.setdefault(trial.trial_id, {"rows": [], "pending_driver": None, "started_driver": None,
                                                           "completed_driver": None})

        def on_step_begin(self, iteration, trials, **info):
            now = time.time()  # as the MLflow tracker: placement is timed from the first step that sees it PENDING
            for trial in trials:
                if trial.status == "PENDING" and self._trial(trial)["pending_driver"] is None:
                    self._trial(trial)["pending_driver"] = now

        def on_trial_start(self, iteration, trials, trial, **info):
            self._trial(trial)["started_driver"] = time.time()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self._trial(trial)["rows"].append({k: v for k, v in result.items()
                                               if k.startswith("time/") or k in KEPT_KEYS})

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._trial(trial)["completed_driver"] = time.time()

        def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
            folder = Path(checkpoint.path)
            try:
                weights = (folder / "checkpoint.pt").is_file()
                if weights:  # the size of a weights checkpoint; a record-only folder is a few KB
                    self.checkpoint_bytes.append(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()))
                if (folder / "epoch.json").is_file():  # a labeltune before the records: every epoch wrote weights
                    epoch = json.loads((folder / "epoch.json").read_text())["epoch"]
                    self._trial(trial).setdefault("weights", {})[int(epoch)] = weights
            except (OSError, ValueError, KeyError):
                pass  # pruned already

    return TrialClock()


def run_model(model: str, args, data, fractions, storage: Path, pretrained: tuple[str, ...]) -> dict:
    """One search of `args.trials` identical trials of `model` through build_tuner; the clock's trials."""
    from ray.tune.schedulers import FIFOScheduler

    from search.options import SearchOptions
    from search.pruning import CheckpointPruner
    from search.record import SearchRecord
    from search.tuner import TunerParts, build_tuner
    from trainable.config import PRIMARY_METRIC, PRIMARY_MODE

    name = f"host-overhead-{model}"
    opts = SearchOptions(data="in-memory", space="bench", trials=args.trials, epochs=args.epochs,
                         concurrency=args.concurrency, track=False, verbose=False, storage=str(storage))
    constants = {"epochs": args.epochs, "split_seed": 0, "seed": 0, "split_fractions": list(fractions),
                 "image_size": args.image_size, "batch_size": args.batch_size, "lr": 1e-3, "device": "cpu"}
    record = SearchRecord(name=name, storage=str(storage), space={"model": model, "optimizer": "adamw", "loss": "bce"},
                          constants=constants, pretrained_models=list(pretrained))
    clock = make_clock()
    # FIFO: every trial trains every epoch (ASHA could stop half of them at the first rung); first points off:
    # the space fixes everything, there is nothing to try first.
    tuner = build_tuner(opts, record, data, [CheckpointPruner(PRIMARY_METRIC, PRIMARY_MODE), clock],
                        parts=TunerParts(scheduler=FIFOScheduler(), baseline_points=False))
    t = time.time()
    grid = tuner.fit()
    wall = time.time() - t
    errors = [str(r.error).splitlines()[0] for r in grid if r.error is not None]
    shutil.rmtree(storage / name, ignore_errors=True)
    sizes = clock.checkpoint_bytes
    return {"wall_s": wall, "errors": errors, "trials": list(clock.trials.values()),
            "checkpoint_mb": statistics.median(sizes) / 2**20 if sizes else None,
            "pretrained": model in pretrained}


def code_state() -> dict:
    """The tree this script runs from (a worktree of an old commit, or the checkout): commit and changed files."""
    def git(*words: str) -> str:
        out = subprocess.run(["git", *words], cwd=REPO, capture_output=True, text=True, timeout=30)
        return out.stdout.rstrip("\n") if out.returncode == 0 else ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "trainable", "search").splitlines()]
    return {"tree": str(REPO), "head": git("rev-parse", "HEAD").strip() or None, "uncommitted_files": dirty}


def worker_trainable_file() -> str:
    """Where a Ray worker of this job imports `trainable` from (the runtime_env's PYTHONPATH must win)."""
    import ray

    @ray.remote(num_cpus=0)
    def where() -> str:
        import trainable

        return str(Path(trainable.__file__).resolve())

    return ray.get(where.remote())


def estimate_s(models: list[str], args) -> float:
    """Expected wall: ray.init + per model its measured seconds, scaled by trial-epochs and val size."""
    scale = (args.trials * args.epochs) / (4 * 3) * (0.4 + 0.6 * args.val / 2000)
    return RAY_INIT_S + sum(EST_MODEL_S.get(m, 60) * max(scale, 0.3) for m in models)


def parse_args(argv=None) -> argparse.Namespace:
    from trainable.specs import MODEL_NAMES

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=lambda s: [m for m in s.split(",") if m], default=list(MODEL_NAMES),
                   help=f"comma-separated models (default: every model: {','.join(MODEL_NAMES)})")
    p.add_argument("--trials", type=int, default=4, help="trials per model (later ones reuse the workers)")
    p.add_argument("--concurrency", type=int, default=2, help="trials at a time (1 CPU each)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per trial (>= 2: epoch 1 holds the start-up)")
    p.add_argument("--train", type=int, default=64, help="images in the train split")
    p.add_argument("--val", type=int, default=2000, help="images in the val split (the metrics' cost grows with it)")
    p.add_argument("--test", type=int, default=64, help="images in the test split (not used by a trial)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--cpus", type=int, default=2, help="CPUs given to Ray")
    p.add_argument("--label", default="", help="a name for this run (before, after): in the JSON and its file name")
    p.add_argument("--smoke", action="store_true", help="tiny run: cnn5, 2 trials x 2 epochs, 200 val images")
    p.add_argument("--estimate", action="store_true", help="print the expected wall time and exit")
    p.add_argument("--compare", nargs=2, metavar=("BEFORE_JSON", "AFTER_JSON"), default=None,
                   help="print each lever's before/after table of two runs and write a compare JSON; runs nothing")
    p.add_argument("--results-dir", default=None)
    args = p.parse_args(argv)
    if args.smoke:  # its sizes become the defaults: what the command line gives still wins
        p.set_defaults(**SMOKE)
        args = p.parse_args(argv)
    unknown = sorted(set(args.models) - set(MODEL_NAMES))
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; models: {', '.join(MODEL_NAMES)}")
    if args.epochs < 2:
        p.error("--epochs must be >= 2: the steady epochs are those after the first")
    return args


def main_compare(args) -> dict:
    before, after = (json.loads(Path(p).read_text()) for p in args.compare)
    for run in (before, after):  # figures added since a run was written are computed from its raw trials
        if run["results"].get("trials"):
            fresh = analyse(run["results"]["trials"])["models"]
            for model, figures in run["results"]["models"].items():
                figures.update({k: v for k, v in fresh.get(model, {}).items() if k not in figures})
    labels = tuple(r["parameters"].get("label") or Path(p).stem for r, p in zip((before, after), args.compare))
    comparison = compare(before, after)
    print_compare(comparison, labels)
    params = {"before": args.compare[0], "after": args.compare[1], "labels": list(labels),
              "before_code": before["parameters"].get("code"), "after_code": after["parameters"].get("code"),
              "before_load": before["machine"], "after_load": after["machine"]}
    path = write_results("host_overhead", params, {"levers": comparison}, args.results_dir,
                         variant=f"compare-{labels[0]}-{labels[1]}")
    print(f"wrote {path}")
    return comparison


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.compare:
        return main_compare(args)
    est = estimate_s(args.models, args)
    log(f"{len(args.models)} models x {args.trials} trials x {args.epochs} epochs, {args.concurrency} at a time, "
        f"val {args.val} images: expect ~{est / 60:.1f} min on 2 quiet cores")
    if args.estimate:
        print(f"expected wall ~{est / 60:.1f} min ({est:.0f} s)")
        return {"estimated_s": est}
    import ray

    from search.console import quiet_ray
    from trainable.models import pretrained_available

    quiet_ray()
    started = time.time()
    data, fractions = make_data(args.train, args.val, args.test)
    pretrained = pretrained_available()  # as a search records them: these train pretrained (efficientnet_lite0)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")  # as init_ray
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=max(300 * 2**20, 3 * data.images.nbytes),
             runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
    code = code_state()
    storage = Path(tempfile.mkdtemp(prefix="host-overhead-", dir=bench_root()))
    runs: dict[str, dict] = {}
    try:
        code["worker_trainable_file"] = worker_trainable_file()
        if not code["worker_trainable_file"].startswith(str(REPO) + os.sep):
            raise SystemExit(f"Ray workers import trainable from {code['worker_trainable_file']}, not from {REPO}")
        log(f"workers import trainable from {code['worker_trainable_file']} (tree {REPO}, head {code['head']})")
        for model in args.models:
            log(f"{model}: {args.trials} trials x {args.epochs} epochs")
            runs[model] = run_model(model, args, data, fractions, storage, pretrained)
            r = runs[model]
            log(f"{model}: {r['wall_s']:.0f} s, {sum(len(t['rows']) for t in r['trials'])} trial-epochs, "
                f"checkpoint {r['checkpoint_mb'] or 0:.1f} MB, {len(r['errors'])} errors {r['errors'][:1]}")
    finally:
        ray.shutdown()
        shutil.rmtree(storage, ignore_errors=True)

    results = analyse({m: r["trials"] for m, r in runs.items()})
    for m, r in runs.items():
        results["models"][m].update(checkpoint_mb=r["checkpoint_mb"], search_wall_s=r["wall_s"], errors=r["errors"],
                                    pretrained=r["pretrained"])
    results["trials"] = {m: r["trials"] for m, r in runs.items()}
    results["estimated_s"] = est
    print_summary(results, args.label)
    params = {**vars(args), "split_fractions": list(fractions), "pretrained_models": list(pretrained),
              "optimizer": "adamw", "scheduler": "FIFO", "tracking": "off", "code": code}
    variant = results_variant(args, parse_args, ignore=("estimate", "compare"))
    path = write_results("host_overhead", params, results, args.results_dir, started, variant=variant)
    print(f"wall {(time.time() - started) / 60:.1f} min (estimated {est / 60:.1f} min); wrote {path}")
    return results


if __name__ == "__main__":
    main()
