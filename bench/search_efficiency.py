"""Search efficiency: does Optuna TPE + ASHA reach a good validation micro-F1 on fewer trial-epochs?

Three arms, each run with the same seeds on the same synthetic dataset, in one Ray session:
  tpe_asha     labeltune's own search: search.tuner.build_tuner (OptunaSearch with
               TPESampler(seed, multivariate, group, scaled start-up) + ASHA, reduction 3, grace 1);
  random_asha  the same Tuner with optuna's RandomSampler(seed) in place of TPE;
  random_fifo  RandomSampler and no early stopping (Tune's FIFOScheduler): every trial runs all epochs.
The random arms are build_tuner's own Tuner with only the sampler (and for random_fifo the
scheduler) swapped: trainable, resources, define-by-run space, points_to_evaluate, concurrency
limit, TuneConfig and RunConfig are the same. Tracking is off (SearchOptions(track=False)); a
driver-side callback timestamps every epoch.

Budget is counted in trial-epochs: every epoch any trial reports, in the order the driver receives
them. Per seed and arm:
  epochs_to_target  trial-epochs spent when some trial first reports val/micro_f1 >= target;
  best_at_budget    best val/micro_f1 within the first B trial-epochs, B = the smallest total any
                    arm spent on that seed (equal budget for all three).
The target is, unless --target fixes it, the 80th percentile of the random_fifo arm's final
scores on that seed: a level one random full-length trial in five reaches, so random search
without early stopping is sure to get there and TPE + ASHA has to find it with less.
PERF.md's target: tpe_asha needs at most 1/3 of random_fifo's trial-epochs.

CPU default: FROZEN_CPU_SPACE (the `quick` space of 2026-11-29 at 32 px, width 0.25), 1,500 images,
32 trials x 6 epochs per arm, 5 seeds, 2 trials at a time (1 CPU each). That is the smallest
search where both methods have room: ASHA gets two rungs (1 and 3 epochs) below the top, and TPE
has 24 guided trials after its 8 random start-up ones. 12 trials x 3 epochs left TPE 9 guided
trials and ASHA one rung: it measured noise.
--gpu: the `default` space, 20,000 images, 64 trials x 10 epochs (GPU share per model).

    python bench/search_efficiency.py                 # ~17 min on 2 quiet cores (an estimate is printed first)
    python bench/search_efficiency.py --seeds 0 --trials 4 --epochs 2 --n-images 200   # smoke run
"""

from __future__ import annotations

import argparse
import gc
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from common import (asha_expected_epochs, bench_root, epoch_clock, log, synth_dataset, table,
                    use_bench_decode_cache, results_variant, write_results)
from search.record import SearchRecord  # after common, which puts the repository on sys.path
from search.tuner import SearchOptions
from trainable.models import pretrained_available

ARMS = ("tpe_asha", "random_asha", "random_fifo")
SEARCH_DEFAULTS = SearchOptions(data="", space="")  # labeltune search's own defaults (grace period)


# ---- the space and the tuners -------------------------------------------------------------


FROZEN_CPU_SPACE = {
    "model": ["cnn3bn", "cnn4", "cnn5"],
    "loss": ["bce", "multilabel_soft_margin"],
    "optimizer": ["adamw", "adam", "sgd"],
    "lr_adamw": {"low": 1e-5, "high": 1e-2, "log": True},
    "lr_adam": {"low": 1e-5, "high": 1e-2, "log": True},
    "lr_sgd": {"low": 1e-3, "high": 0.3, "log": True},
    "weight_decay": {"low": 1e-6, "high": 1e-3, "log": True},
    "batch_size": [32, 64],
    "threshold": {"low": 0.2, "high": 0.6},
    "color": ["rgb"],
    "augment": ["none", "flip"],
    "pos_weight": ["off", "auto"],
    "width": 0.25,
    "image_size": 32,
}
"""The CPU space this benchmark measures, frozen here: the `quick` preset of 2026-11-29 narrowed to
32 px and quarter width (2 cores). Later changes to the preset (efficientnet_lite0, asl) do not move it."""


def make_space(gpu: bool) -> dict:
    import copy

    from search import space as spaces

    if gpu:
        return spaces.load_space("default")
    space = copy.deepcopy(FROZEN_CPU_SPACE)
    spaces.validate_space(space, where="search_efficiency CPU space")
    return space


def build_arm(arm: str, opts, record: SearchRecord, data, callbacks: list, baseline_points: bool):
    """tpe_asha: labeltune's build_tuner as it is. The random arms: the same Tuner with optuna's
    RandomSampler(seed), without the baseline points if asked, and for random_fifo no early stopping."""
    from search.tuner import build_tuner

    if arm == "tpe_asha":
        return build_tuner(opts, record, data, callbacks)

    from optuna.samplers import RandomSampler
    from ray.tune.schedulers import FIFOScheduler

    return build_tuner(opts, record, data, callbacks, sampler=RandomSampler(seed=opts.seed),
                       scheduler=FIFOScheduler() if arm == "random_fifo" else None, baseline_points=baseline_points)


def run_arm(arm: str, seed: int, args, space: dict, data, dataset, storage: Path, pretrained: tuple) -> dict:
    from search.pruning import CheckpointPruner
    from trainable.metrics import PRIMARY_METRIC, PRIMARY_MODE

    name = f"{arm}-seed{seed}"
    opts = SearchOptions(data=str(dataset.root), space="bench", trials=args.trials, epochs=args.epochs,
                         concurrency=args.concurrency, seed=seed, split_seed=0, track=False, verbose=False,
                         storage=str(storage), grace_period=args.grace_period)
    constants = {"epochs": opts.epochs, "split_seed": opts.split_seed, "seed": opts.seed}
    record = SearchRecord(name=name, storage=str(storage), space=space, constants=constants,
                          pretrained_models=list(pretrained))
    clock = epoch_clock()
    tuner = build_arm(arm, opts, record, data, [CheckpointPruner(PRIMARY_METRIC, PRIMARY_MODE), clock],
                      args.baseline_points != "none")
    t = time.time()
    grid = tuner.fit()
    wall = time.time() - t
    errors = sum(1 for r in grid if r.error is not None)
    events = sorted(clock.events, key=lambda e: e["t"])
    last: dict[str, dict] = {}
    for e in events:
        last[e["trial"]] = e
    del tuner, grid
    gc.collect()
    if not args.keep:
        shutil.rmtree(storage / name, ignore_errors=True)
    return {"arm": arm, "seed": seed, "wall_s": wall, "errors": errors, "trial_epochs": len(events),
            "trials_reported": len(last),
            "f1_by_epoch": [e["f1"] for e in events],  # in arrival order: the budget curve
            "final_f1": [e["f1"] for e in last.values()],
            "final_epochs": [e["epoch"] for e in last.values()],
            "best_f1": max((e["f1"] for e in events if e["f1"] is not None), default=None)}


# ---- reading the runs ---------------------------------------------------------------------


def epochs_to(curve: list, target: float) -> int | None:
    for k, f1 in enumerate(curve, start=1):
        if f1 is not None and f1 >= target:
            return k
    return None


def best_within(curve: list, budget: int) -> float | None:
    values = [f for f in curve[:budget] if f is not None]
    return max(values) if values else None


def analyse(runs: list[dict], seeds: list[int], fixed_target: float | None, percentile: float) -> dict:
    per_seed = []
    for seed in seeds:
        arms = {r["arm"]: r for r in runs if r["seed"] == seed}
        fifo_final = [f for f in arms["random_fifo"]["final_f1"] if f is not None]
        target = fixed_target if fixed_target is not None else (
            float(np.percentile(fifo_final, percentile)) if fifo_final else None)
        budget = min(r["trial_epochs"] for r in arms.values())
        row = {"seed": seed, "target": target, "equal_budget": budget}
        for arm, r in arms.items():
            row[f"{arm}_to_target"] = epochs_to(r["f1_by_epoch"], target) if target is not None else None
            row[f"{arm}_best_at_budget"] = best_within(r["f1_by_epoch"], budget)
            row[f"{arm}_trial_epochs"] = r["trial_epochs"]
        a, c = row["tpe_asha_to_target"], row["random_fifo_to_target"]
        # tpe_asha missing a target random_fifo reached: an infinite ratio (null in the JSON), a miss
        row["ratio_tpe_asha_over_random_fifo"] = (a / c if a else math.inf) if c else None
        per_seed.append(row)

    summary = {}
    for arm in ARMS:
        reached = [row[f"{arm}_to_target"] for row in per_seed if row[f"{arm}_to_target"] is not None]
        best = [row[f"{arm}_best_at_budget"] for row in per_seed if row[f"{arm}_best_at_budget"] is not None]
        spent = [r["trial_epochs"] for r in runs if r["arm"] == arm]
        walls = [r["wall_s"] for r in runs if r["arm"] == arm]
        summary[arm] = {"reached": f"{len(reached)}/{len(per_seed)}",
                        "median_epochs_to_target": float(np.median(reached)) if reached else None,
                        "mean_best_at_equal_budget": float(np.mean(best)) if best else None,
                        "mean_trial_epochs": float(np.mean(spent)) if spent else None,
                        "mean_wall_s": float(np.mean(walls)) if walls else None,
                        "errors": sum(r["errors"] for r in runs if r["arm"] == arm)}
    known = [row["ratio_tpe_asha_over_random_fifo"] for row in per_seed
             if row["ratio_tpe_asha_over_random_fifo"] is not None]
    passing = sum(1 for x in known if x <= 1 / 3)
    verdict = {"target_ratio": 1 / 3, "median_ratio": float(np.median(known)) if known else None,
               "seeds_meeting_target": f"{passing}/{len(per_seed)}"}
    return {"per_seed": per_seed, "summary": summary, "verdict": verdict}


# ---- time estimate ------------------------------------------------------------------------


def calibrate_epoch_s(space: dict, dataset, images: np.ndarray, cpus_per_trial: int) -> float:
    """Seconds of one trial epoch (train + validation), mean over the space's models, with one trial's threads."""
    from search import space as spaces
    from trainable.config import TrainConfig
    from trainable.gym import Gym

    models = spaces.choices(space["model"])
    batches = spaces.choices(space["batch_size"])
    width = spaces.choices(space.get("width", 1.0))[0]
    times = []
    for model in models:
        cfg = TrainConfig(model=model, image_size=space["image_size"], width=width, batch_size=min(batches),
                          threads=cpus_per_trial, device="cpu", epochs=1)
        gym = Gym(cfg, images, dataset.targets, dataset.labels)
        t = time.perf_counter()
        gym.train_one_epoch(1)
        gym.evaluate("val")
        times.append(time.perf_counter() - t)
    return float(np.mean(times))


def estimate_s(args, epoch_s: float, start_s: float = 1.0, report_s: float = 0.4, init_s: float = 15.0,
               search_s: float = 15.0) -> float:
    """ray.init + per seed and arm: a search's fixed cost (new worker processes import torch: ~15 s on 2 cores)
    + (trial-epochs x (epoch + report) + trials x start-up) / concurrency. Rough, from 2-core measurements."""
    asha = asha_expected_epochs(args.trials, args.epochs)
    per_seed = sum(search_s + ((asha if arm != "random_fifo" else args.trials * args.epochs) * (epoch_s + report_s)
                               + args.trials * start_s) / max(1, args.concurrency or 1) for arm in ARMS)
    return init_s + len(args.seeds) * per_seed


# ---- the run ----------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gpu", action="store_true", help="default space, 20k images, 64 trials x 10 epochs")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma list; each seed runs all three arms")
    p.add_argument("--trials", type=int, default=None, help="trials per arm and seed (32 CPU, 64 GPU)")
    p.add_argument("--epochs", type=int, default=None, help="max epochs per trial (6 CPU, 10 GPU)")
    p.add_argument("--n-images", type=int, default=None, help="synthetic images (1500 CPU, 20000 GPU)")
    p.add_argument("--concurrency", type=int, default=None, help="trials at once (2 CPU; 0 = as resources allow)")
    p.add_argument("--cpus", type=int, default=None, help="CPUs given to Ray (default: all cores)")
    p.add_argument("--grace-period", type=int, default=SEARCH_DEFAULTS.grace_period,
                   help="ASHA's first rung, epochs, in both ASHA arms (default: labeltune search's)")
    p.add_argument("--target", type=float, default=None, help="fixed target val/micro_f1 (default: percentile)")
    p.add_argument("--percentile", type=float, default=80.0, help="of random_fifo's final scores, per seed")
    p.add_argument("--baseline-points", choices=("same", "none"), default="same",
                   help="random arms start from labeltune's points_to_evaluate too (same) or not (none)")
    p.add_argument("--keep", action="store_true", help="keep the searches' Tune folders")
    p.add_argument("--no-estimate", action="store_true", help="skip the timing calibration")
    p.add_argument("--results-dir", default=None)
    args = p.parse_args(argv)
    for name, cpu, gpu in (("trials", 32, 64), ("epochs", 6, 10), ("n_images", 1500, 20000), ("concurrency", 2, 0)):
        if getattr(args, name) is None:
            setattr(args, name, gpu if args.gpu else cpu)
    args.seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    import os

    import ray

    from search.tuner import load_trial_data

    started = time.time()
    use_bench_decode_cache()
    space = make_space(args.gpu)
    root = synth_dataset(args.n_images)
    dataset, data = load_trial_data(str(root), 0, False)  # labeltune's own driver-side load + decode
    images = data.images
    if not args.gpu and not args.no_estimate:
        epoch_s = calibrate_epoch_s(space, dataset, images, cpus_per_trial=1)
        est = estimate_s(args, epoch_s)
        log(f"calibration: one trial epoch ~{epoch_s:.2f} s -> expected wall of this run ~{est / 60:.1f} min "
            f"({len(args.seeds)} seeds x 3 arms x {args.trials} trials x <= {args.epochs} epochs, "
            f"{args.concurrency} at a time)")
    else:
        total = len(args.seeds) * (2 * asha_expected_epochs(args.trials, args.epochs) + args.trials * args.epochs)
        log(f"expected ~{total:.0f} trial-epochs in all; at 2-6 s each (20k images), 4 at a time: "
            f"~{total * 2 / 4 / 60:.0f}-{total * 6 / 4 / 60:.0f} min")
        est = None
    pretrained = pretrained_available()  # efficientnet_lite0 only with its weights package

    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")  # as init_ray
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=max(300 * 2**20, 4 * data.images.nbytes))
    storage = Path(tempfile.mkdtemp(prefix="search-efficiency-", dir=bench_root()))
    runs = []
    try:
        for seed in args.seeds:
            for arm in ARMS:
                log(f"seed {seed}: {arm} ({args.trials} trials x <= {args.epochs} epochs)")
                run = run_arm(arm, seed, args, space, data, dataset, storage, pretrained)
                runs.append(run)
                log(f"seed {seed}: {arm}: {run['trial_epochs']} trial-epochs, best {run['best_f1'] or 0:.4f}, "
                    f"{run['wall_s']:.0f} s, {run['errors']} errors")
    finally:
        ray.shutdown()
        if not args.keep:
            shutil.rmtree(storage, ignore_errors=True)

    analysis = analyse(runs, args.seeds, args.target, args.percentile)
    long_rows = [{"seed": row["seed"], "arm": arm, "target": row["target"], "spent": row[f"{arm}_trial_epochs"],
                  "to_target": row[f"{arm}_to_target"], "budget": row["equal_budget"],
                  "best": row[f"{arm}_best_at_budget"],
                  "ratio": row["ratio_tpe_asha_over_random_fifo"] if arm == "tpe_asha" else None}
                 for row in analysis["per_seed"] for arm in ARMS]
    print(table(long_rows, [("seed", "seed", ""), ("arm", "arm", ""), ("target", "target F1", ".4f"),
                            ("spent", "trial-epochs", ""), ("to_target", "to target", ""),
                            ("budget", "equal budget", ""), ("best", "best F1 @budget", ".4f"),
                            ("ratio", "to target vs random_fifo", ".2f")],
                title="per seed: trial-epochs spent, trial-epochs to reach the target, best val/micro_f1 at equal budget"))
    print(table([{"arm": arm, **analysis["summary"][arm]} for arm in ARMS],
                [("arm", "arm", ""), ("reached", "reached", ""), ("median_epochs_to_target", "median to target", ".1f"),
                 ("mean_best_at_equal_budget", "mean best@budget", ".4f"), ("mean_trial_epochs", "mean spent", ".1f"),
                 ("mean_wall_s", "mean wall s", ".0f"), ("errors", "errors", "")], title="over seeds"))
    v = analysis["verdict"]
    print(f"target: tpe_asha needs <= 1/3 of random_fifo's trial-epochs; median ratio "
          f"{v['median_ratio'] if v['median_ratio'] is None else round(v['median_ratio'], 2)}, "
          f"seeds meeting it {v['seeds_meeting_target']}")
    wall = time.time() - started
    print(f"wall {wall / 60:.1f} min" + (f" (estimated {est / 60:.1f} min)" if est else ""))
    params = {**vars(args), "space": space, "pretrained_models": list(pretrained), "estimated_s": est,
              "target_rule": "fixed" if args.target is not None else f"p{args.percentile:g} of random_fifo final F1 per seed"}
    variant = results_variant(args, parse_args, ignore=("no_estimate",))  # other options: a file of their own
    path = write_results("search_efficiency", params, {**analysis, "runs": runs}, args.results_dir, started,
                         variant=variant)
    print(f"wrote {path}")
    return analysis


if __name__ == "__main__":
    main()
