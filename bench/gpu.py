"""The GPU benchmark: the team's ceiling and labeltune, measured side by side in ONE device call.

Sections (--sections, in this order; each has a time budget, --budget NAME=SECONDS, and the whole
stops starting sections at --deadline-s, so one call fits the 8 minutes it is given):
  ceiling       shared/bench/gpu_ceiling.py (copied to .bench/ by bench/prepare_gpu.sh), SECTIONS
                tuned,seed,packed: the tuned, course-style and packed ceilings of this GPU, this run
  trial         per model, the Gym's training img/s (uint8 on the GPU, bf16, channels_last, batch
                256, 128 px) against the tuned ceiling of its model (target >= 0.9); also the Gym's
                set-up time, cold and when the device copy of the data is cached (target < 1 s)
  packed        cnn5 Gym trainings in 1 and in 4 processes sharing the GPU (batch 128, as the
                ceiling): summed img/s, 4 against 1 (target >= 2.5x) and against the packed ceiling
  search_small  a 64-trial search over the small CNNs (10 epochs max, 0.25 GPU per trial, TPE +
                ASHA via search.tuner.build_tuner, tracking off): useful throughput = trial-epochs x
                training images / wall, whole and in steady state (after the first wave of trial
                start-ups), against the packed ceiling (target >= 0.7)
  headline      a 64-trial search over the `default` space on 20,000 synthetic images (10 epochs
                max, GPU share per model): wall time against the course-style pipeline's estimated
                time for the same trials without early stopping (max epochs x training images /
                the ceiling's course-style img/s of the trial's model, one trial after another)

Run on the GPU machine through bench/run_gpu.sh (see bench/README.md); here, `--dry-run` runs
every section on the CPU with tiny sizes (the ceiling is then read from --ceiling-json or
PERF.md's anchor) to catch errors before spending device time.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import (CEILING_MODEL, PERF_ANCHOR, bench_root, ceiling_from_log, epoch_clock, load_decoded, log, ratio,
                    read_ceiling,
                    synth_dataset, table, use_bench_decode_cache, write_results)

SECTIONS = ("ceiling", "trial", "packed", "search_small", "headline")
BUDGET_S = {"ceiling": 120, "trial": 40, "packed": 45, "search_small": 100, "headline": 130}
"""seconds per section on the H200; with --deadline-s 405 the headline gets what is left (~75 s) and the call,
wheel install included, takes ~7.5 minutes. A complete headline needs a call of its own (README.md)."""
TRIAL_MODELS = ("cnn5", "resnet18", "resnet50", "efficientnet_lite0", "cnn3bn", "cnn4")
SMALL_SPACE = {"model": ["cnn3bn", "cnn4", "cnn5"], "batch_size": [128, 256], "image_size": 128, "width": 1.0}
"""search_small: the default space narrowed to the small CNNs at full width and the batch sizes that fill a GPU"""
COURSE_PROXY = {"cnn3bn": "seed_cnn5", "cnn4": "seed_cnn5", "cnn5": "seed_cnn5", "resnet18": "resnet18",
                "resnet50": "resnet50", "efficientnet_lite0": "efficientnet_lite0"}
"""model -> the ceiling's course-style row used for its estimated course time (the 3-4 conv CNNs use the 5-conv one)"""


class Plan:
    """The time left: each section gets min(its budget, what is left before the deadline)."""

    def __init__(self, deadline_s: float, budgets: dict[str, float]) -> None:
        self.start, self.deadline_s, self.budgets = time.time(), deadline_s, budgets

    def left(self) -> float:
        return self.deadline_s - (time.time() - self.start)

    def allow(self, name: str) -> float:
        return max(0.0, min(self.budgets[name], self.left()))


# ---- ceiling ------------------------------------------------------------------------


def run_ceiling(args, seconds: float) -> dict:
    """Run gpu_ceiling.py in a subprocess (its own CUDA context); its JSON lands in OUT/ceiling/anchor.json."""
    out = Path(args.out) / "ceiling"
    out.mkdir(parents=True, exist_ok=True)
    try:
        import efficientnet_lite_pytorch  # noqa: F401
        models = "seed_cnn5,resnet18,resnet50,efficientnet_lite0"
    except ImportError:
        models = "seed_cnn5,resnet18,resnet50"
    env = {**os.environ, "OUT": str(out), "MODELS": models, "SECTIONS": args.ceiling_sections}
    t = time.time()
    with open(out / "ceiling_log.txt", "w") as logf:
        # its own process group: on time-out its DataLoader workers and packed processes go too,
        # instead of holding the GPU through the measurements that follow
        proc = subprocess.Popen([sys.executable, args.ceiling_script], env=env, stdout=logf,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = "timeout"
    anchor = out / "anchor.json"
    info = {"rc": rc, "seconds": time.time() - t, "models": models, "sections": args.ceiling_sections}
    text = (out / "ceiling_log.txt").read_text()
    if anchor.exists():
        info["ceiling"] = read_ceiling(anchor)
    else:  # stopped early or failed: keep what it had measured and printed
        info["ceiling"] = ceiling_from_log(text, str(out / "ceiling_log.txt"))
        info["log_tail"] = text[-2000:]
    return info


# ---- trial: the Gym per model -----------------------------------------------------------


def section_trial(args, dataset, images, ceiling: dict, seconds: float) -> dict:
    import torch

    from throughput import gym_rate, make_gym
    from trainable import gym as gym_mod

    models = args.trial_models.split(",")
    per_model = max(1.0, min(args.trial_seconds, seconds / max(1, len(models)) - 4))
    started, rows = time.time(), []
    for name in models:
        if rows and time.time() - started + per_model + 4 > seconds:
            rows.append({"model": name, "skipped": "out of section time"})
            continue
        t = time.perf_counter()
        gym = make_gym(name, images, dataset, image_size=args.image_size, batch=args.trial_batch,
                       device=args.device, optimizer="adamw", lr=1e-3)
        if args.device == "cuda":
            torch.cuda.synchronize()
        setup = time.perf_counter() - t
        rate = gym_rate(gym, per_model, warm_batches=5)
        key = CEILING_MODEL.get(name)
        tuned = ceiling["tuned"].get(key) if key else None
        rows.append({"model": name, "gym_img_s": rate["img_s"], "ceiling_model": key, "ceiling_img_s": tuned,
                     "gym_over_ceiling": ratio(rate["img_s"], tuned), "setup_s": setup, "detail": rate})
        log(f"trial {name}: {rate['img_s']:,.0f} img/s (ceiling {tuned or 0:,.0f}), set-up {setup:.2f} s")
        del gym
        if args.device == "cuda":
            torch.cuda.empty_cache()
    gym_mod._DEVICE_DATA.clear()  # the driver holds no device data into the Ray sections
    if args.device == "cuda":
        torch.cuda.empty_cache()
    # the first Gym copied the data to the device; the others found it cached (same fingerprint, size, colour)
    setups = [r["setup_s"] for r in rows if "setup_s" in r]
    return {"rows": rows, "seconds_per_model": per_model, "batch": args.trial_batch, "image_size": args.image_size,
            "setup_cold_s": setups[0] if setups else None,
            "setup_cached_max_s": max(setups[1:]) if len(setups) > 1 else None}


# ---- packed: K Gym processes on one GPU ------------------------------------------------------


def packed_worker(root: str, model: str, batch: int, image_size: int, device: str, seconds: float,
                  barrier, queue) -> None:
    """One process = one trial's Gym: load (cached) data, warm up, wait for the others, measure."""
    try:
        from throughput import gym_rate, make_gym

        dataset, images = load_decoded(Path(root))
        gym = make_gym(model, images, dataset, image_size=image_size, batch=batch, device=device,
                       optimizer="adamw", lr=1e-3, threads=1)
        gym_rate(gym, 0.5, warm_batches=5)  # autotune and allocator before the common start
        barrier.wait(timeout=300)
        t0 = time.time()
        rate = gym_rate(gym, seconds, warm_batches=1)
        queue.put({"img_s": rate["img_s"], "t0": t0, "t1": time.time(), "pid": os.getpid()})
    except Exception as exc:  # reported to the parent, which records it
        queue.put({"error": f"{type(exc).__name__}: {exc}"})
        try:
            barrier.abort()
        except Exception:
            pass


def run_packed(root: Path, k: int, args, seconds: float) -> dict:
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=packed_worker, args=(str(root), "cnn5", args.packed_batch, args.image_size,
                                                      args.device, seconds, barrier, queue)) for _ in range(k)]
    t = time.time()
    for p in procs:
        p.start()
    results = []
    for _ in procs:
        try:
            results.append(queue.get(timeout=seconds + 240))
        except Exception:
            results.append({"error": "no result in time"})
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    rates = [r["img_s"] for r in results if "img_s" in r]
    overlap = (min(r["t1"] for r in results if "t1" in r) - max(r["t0"] for r in results if "t0" in r)) if rates else None
    return {"k": k, "sum_img_s": sum(rates) if len(rates) == k else None, "per_process": rates,
            "errors": [r["error"] for r in results if "error" in r], "wall_s": time.time() - t,
            "measure_overlap_s": overlap}


def section_packed(root: Path, args, ceiling: dict, seconds: float) -> dict:
    measure = max(1.0, min(args.packed_seconds, (seconds - 30) / 2))
    one = run_packed(root, 1, args, measure)
    log(f"packed k=1: {one['sum_img_s'] or 0:,.0f} img/s ({one['wall_s']:.0f} s)")
    k = args.packed_k
    many = run_packed(root, k, args, measure)
    log(f"packed k={k}: {many['sum_img_s'] or 0:,.0f} img/s ({many['wall_s']:.0f} s)")
    return {"one": one, "many": many, "k": k, "speedup": ratio(many["sum_img_s"], one["sum_img_s"]),
            "ceiling_k1": ceiling.get("packed_k1"), "ceiling_k4": ceiling.get("packed_k4"),
            "ceiling_speedup": ratio(ceiling.get("packed_k4"), ceiling.get("packed_k1")),
            "many_over_ceiling_k4": ratio(many["sum_img_s"], ceiling.get("packed_k4"))}


# ---- searches ------------------------------------------------------------------------------


def run_search(name: str, space: dict, data, dataset, args, *, trials: int, epochs: int, seconds: float,
               gpus_per_trial: float | None, storage: Path, pretrained: tuple) -> dict:
    """labeltune's build_tuner with tracking off and a driver-side epoch clock; Tune stops at `seconds`."""
    from search.pruning import CheckpointPruner
    from search.record import SearchRecord
    from search.options import SearchOptions
    from search.tuner import build_tuner
    from trainable.metrics import PRIMARY_METRIC, PRIMARY_MODE

    opts = SearchOptions(data=str(dataset.root), space="bench", trials=trials, epochs=epochs, seed=0,
                         track=False, verbose=False, storage=str(storage), gpus_per_trial=gpus_per_trial,
                         time_budget_min=seconds / 60)
    record = SearchRecord(name=name, storage=str(storage), space=space, pretrained_models=list(pretrained),
                          constants={"epochs": epochs, "split_seed": 0, "seed": 0})
    clock = epoch_clock()
    tuner = build_tuner(opts, record, data, [CheckpointPruner(PRIMARY_METRIC, PRIMARY_MODE), clock])
    t0 = time.time()
    grid = tuner.fit()
    t1 = time.time()
    errors = [str(r.error).splitlines()[0][:300] for r in grid if r.error is not None]
    del tuner, grid
    gc.collect()
    shutil.rmtree(storage / name, ignore_errors=True)
    events = sorted(clock.events, key=lambda e: e["t"])
    n_train = int(round(len(dataset) * 0.8))  # TrainConfig's split_fractions (0.8, 0.1, 0.1)
    first_report: dict[str, float] = {}
    for e in events:
        first_report.setdefault(e["trial"], e["t"])
    by_trial: dict[str, list[dict]] = {}
    for e in events:
        by_trial.setdefault(e["trial"], []).append(e)
    in_epoch = [e["img_s"] for evs in by_trial.values() for e in evs[1:] if e["img_s"]]  # first epoch: autotune
    latency = [first_report[t] - clock.starts[t] for t in first_report if t in clock.starts]
    return {"name": name, "trials": trials, "max_epochs": epochs, "gpus_per_trial": gpus_per_trial,
            "trials_started": len(clock.starts), "trials_reported": len(by_trial),
            "trial_epochs": len(events), "errors": errors, "wall_s": t1 - t0, "t0": t0, "t1": t1,
            "events": events, "first_report": first_report, "configs": clock.configs, "n_train": n_train,
            "cut_by_time_budget": t1 - t0 >= seconds - 1,
            "median_in_epoch_img_s": float(np.median(in_epoch)) if in_epoch else None,
            "median_first_result_latency_s": float(np.median(latency)) if latency else None}


def useful_throughput(run: dict, slots: int) -> dict:
    """Trial-epochs x training images / wall: whole search, and from the end of the first wave of start-ups."""
    events, n_train = run["events"], run["n_train"]
    whole = len(events) * n_train / run["wall_s"] if run["wall_s"] else None
    firsts = sorted(run["first_report"].values())
    steady = t_wave = None
    if len(firsts) >= slots and events:
        t_wave = firsts[slots - 1]  # by now every slot's first trial has started and trained an epoch
        later = [e for e in events if e["t"] > t_wave]
        if later and events[-1]["t"] > t_wave:
            steady = len(later) * n_train / (events[-1]["t"] - t_wave)
    return {"whole_img_s": whole, "steady_img_s": steady,
            "first_wave_done_s": t_wave - run["t0"] if t_wave else None}


def section_search_small(data, dataset, args, ceiling: dict, seconds: float, storage: Path) -> dict:
    from search import space as spaces

    space = spaces.load_space("default")
    space.update(SMALL_SPACE)
    if args.dry_run:
        space.update(image_size=args.search_image_size, batch_size=[32])
    spaces.validate_space(space, "search_small")
    share = None if args.dry_run else 0.25
    run = run_search("small", space, data, dataset, args, trials=args.small_trials, epochs=args.small_epochs,
                     seconds=seconds, gpus_per_trial=share, storage=storage, pretrained=())
    slots = 4 if not args.dry_run else 2
    tp = useful_throughput(run, slots)
    packed = ceiling.get("packed_k4")
    log(f"search_small: {run['trial_epochs']} trial-epochs in {run['wall_s']:.0f} s, useful "
        f"{tp['whole_img_s'] or 0:,.0f} img/s whole, {tp['steady_img_s'] or 0:,.0f} steady")
    return {**{k: v for k, v in run.items() if k not in ("events", "first_report")}, **tp,
            "space": space, "space_name": "the small CNNs", "ceiling_packed_k4": packed,
            "whole_over_packed_ceiling": ratio(tp["whole_img_s"], packed),
            "steady_over_packed_ceiling": ratio(tp["steady_img_s"], packed)}


def course_seconds(model: str, epochs: int, n_train: int, ceiling: dict) -> float | None:
    rate = ceiling["seed"].get(COURSE_PROXY.get(model, "")) or PERF_ANCHOR["seed"].get(COURSE_PROXY.get(model, ""))
    return epochs * n_train / rate if rate else None


def section_headline(data, dataset, args, ceiling: dict, seconds: float, storage: Path) -> dict:
    from search import space as spaces
    from trainable.models import pretrained_available

    space = spaces.load_space("default")
    if args.dry_run:
        space.update(image_size=args.search_image_size)
    pretrained = pretrained_available()  # efficientnet_lite0 only with its weights package
    run = run_search("headline", space, data, dataset, args, trials=args.headline_trials,
                     epochs=args.headline_epochs, seconds=seconds, gpus_per_trial=None, storage=storage,
                     pretrained=pretrained)
    epochs_by_trial: dict[str, int] = {}
    for e in run["events"]:
        epochs_by_trial[e["trial"]] = max(epochs_by_trial.get(e["trial"], 0), e["epoch"])
    no_es, same_work, missing = 0.0, 0.0, []
    for trial, cfg in run["configs"].items():
        full = course_seconds(cfg.get("model") or "", args.headline_epochs, run["n_train"], ceiling)
        done = course_seconds(cfg.get("model") or "", epochs_by_trial.get(trial, 0), run["n_train"], ceiling)
        if full is None:
            missing.append(cfg.get("model"))
            continue
        no_es += full
        same_work += done or 0.0
    models: dict[str, int] = {}
    for cfg in run["configs"].values():
        models[cfg.get("model")] = models.get(cfg.get("model"), 0) + 1
    log(f"headline: {run['trials_started']} trials started, {run['trial_epochs']} trial-epochs in "
        f"{run['wall_s']:.0f} s; course-style estimate {no_es:.0f} s without early stopping")
    return {**{k: v for k, v in run.items() if k not in ("events", "first_report")},
            "space_name": "the default space", "pretrained_models": list(pretrained), "models_started": models,
            "course_no_early_stop_s": no_es, "course_same_work_s": same_work,
            "course_rate_missing_for": sorted(set(m for m in missing if m)),
            "speedup_vs_course_no_early_stop": ratio(no_es, run["wall_s"]),
            "speedup_vs_course_same_work": ratio(same_work, run["wall_s"])}


# ---- the run -----------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    p.add_argument("--budget", action="append", default=[], metavar="NAME=SECONDS",
                   help=f"time budget of a section (defaults {BUDGET_S})")
    p.add_argument("--deadline-s", type=float, default=405, help="start no section after this (from the script's start)")
    p.add_argument("--out", default=os.environ.get("OUT") or None, help="result folder (default $OUT, else bench/results)")
    p.add_argument("--ceiling-script", default=".bench/gpu_ceiling.py")
    p.add_argument("--ceiling-sections", default="tuned,seed,packed", help="gpu_ceiling.py's SECTIONS")
    p.add_argument("--ceiling-json", default=None, help="use this anchor JSON instead of (or when missing) a measured one")
    p.add_argument("--n-images", type=int, default=20000)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--trial-models", default=",".join(TRIAL_MODELS))
    p.add_argument("--trial-batch", type=int, default=256)
    p.add_argument("--trial-seconds", type=float, default=5.0)
    p.add_argument("--packed-k", type=int, default=4)
    p.add_argument("--packed-batch", type=int, default=128)
    p.add_argument("--packed-seconds", type=float, default=6.0)
    p.add_argument("--small-trials", type=int, default=64)
    p.add_argument("--small-epochs", type=int, default=10)
    p.add_argument("--headline-trials", type=int, default=64)
    p.add_argument("--headline-epochs", type=int, default=10)
    p.add_argument("--search-image-size", type=int, default=128, help="image size forced on both searches (dry run)")
    p.add_argument("--dry-run", action="store_true",
                   help="CPU, tiny: 240 images, 32 px, 2 processes, 4-trial x 2-epoch searches, short budgets")
    args = p.parse_args(argv)
    budgets = dict(BUDGET_S)
    if args.dry_run:
        budgets = {"ceiling": 0, "trial": 40, "packed": 120, "search_small": 150, "headline": 240}
        args.deadline_s = max(args.deadline_s, 900)
        args.n_images, args.image_size, args.search_image_size = 240, 32, 32
        args.trial_models, args.trial_batch, args.trial_seconds = "dummy,cnn3bn", 32, 1.0
        args.packed_k, args.packed_batch, args.packed_seconds = 2, 32, 1.0
        args.small_trials, args.small_epochs, args.headline_trials, args.headline_epochs = 4, 2, 4, 2
    for item in args.budget:
        name, _, value = item.partition("=")
        if name not in SECTIONS:
            p.error(f"--budget {item}: unknown section {name!r}")
        budgets[name] = float(value)
    args.budgets = budgets
    args.sections = [s for s in args.sections.split(",") if s]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    args.device = "cpu" if args.dry_run else "cuda"
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    plan = Plan(args.deadline_s, args.budgets)
    started = time.time()
    out = Path(args.out) if args.out else None
    args.out = str(out or Path(tempfile.mkdtemp(prefix="gpu-bench-out-")))
    log(f"sections {', '.join(args.sections)}; budgets "
        f"{', '.join(f'{s} {args.budgets[s]:.0f} s' for s in args.sections)}; deadline {args.deadline_s:.0f} s")
    results: dict = {"sections_run": [], "sections_skipped": {}}

    ceiling = None
    if "ceiling" in args.sections and not args.dry_run:
        log("ceiling: shared/bench/gpu_ceiling.py")
        info = run_ceiling(args, plan.allow("ceiling"))
        results["ceiling_run"] = info
        ceiling = info.get("ceiling")
        results["sections_run"].append("ceiling")
        log(f"ceiling: rc {info['rc']} in {info['seconds']:.0f} s")
    if ceiling is None and args.ceiling_json and Path(args.ceiling_json).exists():
        ceiling = read_ceiling(args.ceiling_json)
    if ceiling is None:
        ceiling = {**PERF_ANCHOR, "gpu": "NVIDIA H200 (PERF.md, another day)"}
    results["ceiling"] = ceiling
    log(f"ceiling from {ceiling['source']}")

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run this on the GPU machine, or with --dry-run here")
    t = time.time()
    use_bench_decode_cache()
    root = synth_dataset(args.n_images)
    t_synth = time.time() - t
    from trainable.trial_data import load_trial_data

    t = time.time()
    dataset, data = load_trial_data(str(root), 0, False)
    t_load = time.time() - t
    t = time.time()
    load_trial_data(str(root), 0, False)  # the second search's view: the decode cache must make this cheap
    results["data"] = {"n_images": len(dataset), "synth_s": t_synth, "load_decode_s": t_load,
                       "reload_s": time.time() - t}
    log(f"data: {len(dataset)} images, synth {t_synth:.0f} s, load+decode {t_load:.1f} s, "
        f"reload {results['data']['reload_s']:.1f} s")

    def run(name, fn):
        if name not in args.sections:
            return
        seconds = plan.allow(name)
        if seconds < 15:
            results["sections_skipped"][name] = f"{plan.left():.0f} s left before the deadline"
            log(f"{name}: skipped, out of time")
            return
        log(f"{name}: up to {seconds:.0f} s")
        t = time.time()
        try:
            results[name] = fn(seconds)
        except Exception as exc:  # one broken section must not lose the others' figures
            import traceback

            results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
            log(f"{name}: FAILED {type(exc).__name__}: {exc}")
        results[name]["section_s"] = time.time() - t
        results["sections_run"].append(name)

    run("trial", lambda s: section_trial(args, dataset, data.images, ceiling, s))
    run("packed", lambda s: section_packed(root, args, ceiling, s))

    if "search_small" in args.sections or "headline" in args.sections:
        import ray

        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        t = time.time()
        ray.init(num_cpus=os.cpu_count(), num_gpus=0 if args.dry_run else 1,
                 object_store_memory=max(300 * 2**20, 4 * data.images.nbytes),
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
        results["ray_init_s"] = time.time() - t
        storage = Path(tempfile.mkdtemp(prefix="gpu-bench-runs-", dir=bench_root()))
        try:
            run("search_small", lambda s: section_search_small(data, dataset, args, ceiling, s, storage))
            run("headline", lambda s: section_headline(data, dataset, args, ceiling, s, storage))
        finally:
            ray.shutdown()
            shutil.rmtree(storage, ignore_errors=True)

    report(results)
    params = {k: v for k, v in vars(args).items()}
    path = write_results("gpu", params, results, args.out, started)
    print(f"wrote {path}")
    return results


def report(r: dict) -> None:
    c = r["ceiling"]
    print(f"\nceiling: {c.get('source')} ({c.get('gpu')})")
    if "trial" in r and "rows" in r["trial"]:
        print(table(r["trial"]["rows"], [("model", "model", ""), ("gym_img_s", "gym img/s", ",.0f"),
                                         ("ceiling_img_s", "ceiling img/s", ",.0f"),
                                         ("gym_over_ceiling", "gym/ceiling (>= 0.90)", ".2f"),
                                         ("setup_s", "Gym set-up s", ".2f"), ("skipped", "note", "")],
                    title=f"\none trial's training throughput, batch {r['trial']['batch']}, "
                          f"{r['trial']['image_size']} px"))
    if "packed" in r and "one" in r["packed"]:
        p = r["packed"]
        print(table([{"what": "labeltune Gym (cnn5)", "one": p["one"]["sum_img_s"], "many": p["many"]["sum_img_s"],
                      "x": p["speedup"], "vs": p["many_over_ceiling_k4"]},
                     {"what": "ceiling (course 5-conv CNN)", "one": c.get("packed_k1"), "many": c.get("packed_k4"),
                      "x": p["ceiling_speedup"], "vs": 1.0 if c.get("packed_k4") else None}],
                    [("what", "", ""), ("one", "1 process img/s", ",.0f"), ("many", f"{p['k']} processes img/s", ",.0f"),
                     ("x", f"{p['k']} vs 1 (>= 2.5)", ".2f"), ("vs", "vs packed ceiling", ".2f")],
                    title="\nsmall-CNN trainings packed on one GPU"))
    for name in ("search_small", "headline"):
        s = r.get(name)
        if not s or "error" in s:
            if s:
                print(f"\n{name}: FAILED {s['error']}")
            continue
        share = f"{s['gpus_per_trial']} GPU per trial" if s.get("gpus_per_trial") else "GPU share by model"
        title = f"{name}: {s['trials']}-trial search over {s['space_name']}, <= {s['max_epochs']} epochs, {share}"
        print(f"\n{title}: {s['trials_started']} trials started, {s['trial_epochs']} trial-epochs, "
              f"wall {s['wall_s']:.0f} s{' (cut by its time budget)' if s['cut_by_time_budget'] else ''}, "
              f"{len(s['errors'])} errors; median in-epoch {s['median_in_epoch_img_s'] or 0:,.0f} img/s per trial; "
              f"median start-to-first-result {s['median_first_result_latency_s'] or 0:.1f} s")
        if name == "search_small":
            print(f"  useful throughput: whole {s['whole_img_s'] or 0:,.0f} img/s "
                  f"({s['whole_over_packed_ceiling'] or 0:.2f} of the packed ceiling), steady "
                  f"{s['steady_img_s'] or 0:,.0f} img/s ({s['steady_over_packed_ceiling'] or 0:.2f}; target >= 0.70)")
        else:
            print(f"  course-style estimate for the same trials without early stopping: "
                  f"{s['course_no_early_stop_s']:,.1f} s -> {s['speedup_vs_course_no_early_stop'] or 0:.2f}x the wall; "
                  f"same work: {s['course_same_work_s']:,.1f} s; models {s['models_started']}")
    if r["sections_skipped"]:
        print(f"\nskipped: {r['sections_skipped']}")


if __name__ == "__main__":
    main()
