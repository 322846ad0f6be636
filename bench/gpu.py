"""The GPU benchmark: the team's ceiling and labeltune, measured side by side in ONE device call.

Sections (--sections, in this order; each has a time budget, --budget NAME=SECONDS, and the whole
stops starting sections at --deadline-s, so one call fits the minutes it is given):
  ceiling       shared/bench/gpu_ceiling.py (copied to .bench/ by bench/prepare_gpu.sh), SECTIONS
                tuned,seed,packed: the tuned, course-style and packed ceilings of this GPU, this run
  trial         per model, the Gym's training img/s (uint8 on the GPU, bf16, channels_last, batch
                256, 128 px) against the tuned ceiling of its model (target >= 0.9); also the Gym's
                set-up time, cold and when the device copy of the data is cached (target < 1 s)
  timesplit     a 12-trial random search of the `default` space (<= 4 epochs, GPU share by model): per
                model, the share of a trial's wall time spent training (target >= 0.8 for the small
                CNNs), of the trainable's own wall and of the driver's (placement and worker start
                included), and the median seconds per trial-epoch of each phase (train, validation
                forward, metrics, checkpoint, report, other) and of each start-up phase: the `time/`
                keys of the trials' result rows (trainable/timing.py)
  packed        cnn5 Gym trainings in 1 and in 4 processes sharing the GPU (batch 128, as the
                ceiling), per MPS mode: summed img/s, 4 against 1 (target with MPS: >= 2x one
                without) and against the packed ceiling
  search_small  a 64-trial search over the small CNNs (10 epochs max, 0.25 GPU per trial, TPE +
                ASHA via search.tuner.build_tuner, tracking off), per MPS mode, each with half the
                section's time: useful throughput = trial-epochs x training images / wall, whole and
                in steady state (after the first wave of trial start-ups), against the packed ceiling
                (target >= 0.7), and the train share by model as in timesplit
  headline      a 64-trial search over the `default` space on 20,000 synthetic images (10 epochs
                max, GPU share per model; --headline-mps, off by default): wall time against the
                course-style pipeline's estimated time for the same trials without early stopping
                (max epochs x training images / the ceiling's course-style img/s of the trial's
                model, one trial after another)

MPS (--mps off,on): packed and search_small run once without NVIDIA MPS and once with it, in that
order. For `on` this script starts the control daemon itself (`nvidia-cuda-mps-control -d`: the lent
machine runs it as root), with the pipe folder at CUDA's default, and quits it (`quit`) in a finally
before it ends; bench/run_gpu.sh has a trap for the same. No GPU setting (compute mode or other) is
touched. A missing binary is recorded (results.mps.binary_missing) and the `on` arms are skipped; a
daemon already running is recorded and left alone. Processes that started CUDA before the daemon
(the trial section's, in this process) stay without MPS; every Gym and trial started later uses it.

Run on the GPU machine through bench/run_gpu.sh (see bench/README.md); here, `--dry-run` runs
every section on the CPU with tiny sizes (the ceiling is then read from --ceiling-json or
PERF.md's anchor; both MPS arms run, the `on` one without a daemon, to run its code) to catch
errors before spending device time.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
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

SECTIONS = ("ceiling", "trial", "timesplit", "packed", "search_small", "headline")
BUDGET_S = {"ceiling": 120, "trial": 40, "timesplit": 75, "packed": 90, "search_small": 160, "headline": 130}
"""seconds per section on the H200 (packed and search_small hold both MPS arms); the sections after a
deadline's reach are skipped. The calls of issue 24: `--sections headline --budget headline=480
--deadline-s 500`, then `--sections timesplit,packed,search_small --deadline-s 330` (README.md)."""
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


# ---- NVIDIA MPS: the daemon this benchmark starts and quits ----------------------------------------------

MPS_DIRS = {"CUDA_MPS_PIPE_DIRECTORY": "/tmp/nvidia-mps", "CUDA_MPS_LOG_DIRECTORY": "/tmp/nvidia-log"}
"""the daemon's pipe and log folders: the pipe folder is CUDA's default, so every CUDA process that starts while the
daemon runs (a spawned Gym, a Ray worker started before it) becomes its client; cluster.yaml uses the same"""
MPS_MODES = ("off", "on")


class MpsDaemon:
    """nvidia-cuda-mps-control, started with `-d` and quit with `quit` by this benchmark (root on the lent machine).

    Nothing else changes: no compute mode, no other GPU setting. A daemon found running at the start is not
    ours: it is recorded, used for the `on` arms, and neither quit nor restarted (the `off` arms then say so).
    """

    def __init__(self) -> None:
        from search.cluster import probe_mps

        self.binary = shutil.which("nvidia-cuda-mps-control")
        self.ours = False
        self.preexisting = probe_mps(MPS_DIRS["CUDA_MPS_PIPE_DIRECTORY"])["active"]
        self.events: list[dict] = []

    def state(self) -> dict:
        from search.cluster import probe_mps

        return probe_mps(MPS_DIRS["CUDA_MPS_PIPE_DIRECTORY"])

    def _control(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, *args], input=stdin, env={**os.environ, **MPS_DIRS},
                              capture_output=True, text=True, timeout=30)

    def _wait(self, active: bool, seconds: float = 15.0) -> bool:
        end = time.time() + seconds
        while bool(self.state()["active"]) != active and time.time() < end:
            time.sleep(0.2)
        return bool(self.state()["active"]) == active

    def set(self, mode: str) -> dict:
        """Make the GPU run with (`on`) or without (`off`) MPS for the processes started next; what it is now."""
        t = time.time()
        if mode == "on" and not self.state()["active"]:
            if self.binary is None:
                self.events.append({"mode": mode, "error": "nvidia-cuda-mps-control not found (binary missing)"})
            else:
                for folder in MPS_DIRS.values():
                    Path(folder).mkdir(parents=True, exist_ok=True)
                proc = self._control("-d")
                self.ours = proc.returncode == 0
                if not self.ours:
                    self.events.append({"mode": mode, "error": f"-d exited {proc.returncode}: {proc.stderr[-300:]}"})
                self._wait(True)
        elif mode == "off" and self.ours:
            self.stop()
        if mode == "on":
            os.environ.update(MPS_DIRS)
        else:
            for key in MPS_DIRS:
                os.environ.pop(key, None)
        now = {"mode": mode, **self.state(), "ours": self.ours, "preexisting": self.preexisting,
               "binary": self.binary, "set_s": time.time() - t}
        self.events.append(now)
        return now

    def servers(self) -> str | None:
        """The daemon's `get_server_list` (MPS server pids: one appeared if some client connected); None without it."""
        if self.binary is None or not self.state()["active"]:
            return None
        return self._control(stdin="get_server_list\n").stdout.strip()

    def stop(self) -> None:
        """Quit the daemon if this benchmark started it (the finally of main, and `off`)."""
        if not self.ours:
            return
        proc = self._control(stdin="quit\n")
        gone = self._wait(False)
        self.ours = not gone
        self.events.append({"mode": "quit", "rc": proc.returncode, "gone": gone})

    def record(self) -> dict:
        return {"binary": self.binary, "binary_missing": self.binary is None, "preexisting": self.preexisting,
                "dirs": MPS_DIRS, "events": self.events}


# ---- ceiling ------------------------------------------------------------------------


def run_ceiling(args, seconds: float) -> dict:
    """Run gpu_ceiling.py in a subprocess (its own CUDA context); its JSON lands in OUT/ceiling/anchor.json."""
    out = Path(args.out) / "ceiling"
    out.mkdir(parents=True, exist_ok=True)
    models = "seed_cnn5,resnet18,resnet50"
    if importlib.util.find_spec("efficientnet_lite_pytorch") is not None:
        models += ",efficientnet_lite0"
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


def mps_arms(args, daemon: MpsDaemon):
    """Yield (mode, the daemon's state) for each --mps mode, the daemon set first; a mode it cannot give is
    yielded with its state all the same in a dry run (to run the code), and skipped on the GPU."""
    for mode in args.mps:
        state = daemon.set(mode)
        if mode == "on" and not state["active"]:
            why = "; ".join(e["error"] for e in daemon.events if "error" in e) or "the daemon is not active"
            if not args.dry_run:
                yield mode, {**state, "skipped": f"MPS could not be started: {why}"}
                continue
            state = {**state, "note": f"dry run: {why}; the arm runs without MPS, to run its code"}
        yield mode, state


def section_packed(root: Path, args, ceiling: dict, seconds: float, daemon: MpsDaemon) -> dict:
    """cnn5 Gyms in 1 and in K processes, per MPS mode: the first mode runs 1 then K, a later one K then 1 (if time)."""
    started = time.time()
    measure = max(1.0, min(args.packed_seconds, (seconds - 30) / (2 * len(args.mps))))
    arms, run_s = {}, None
    for i, (mode, state) in enumerate(mps_arms(args, daemon)):
        arm = {"mps": state}
        arms[mode] = arm
        if "skipped" in state:
            continue
        for k in ((1, args.packed_k) if i == 0 else (args.packed_k, 1)):
            if run_s is not None and time.time() - started + run_s > seconds:
                arm[f"k{k}"] = {"skipped": "out of section time"}
                continue
            arm[f"k{k}"] = run = run_packed(root, k, args, measure)
            run_s = max(run_s or 0.0, run["wall_s"])
            log(f"packed k={k}, MPS {mode}: {run['sum_img_s'] or 0:,.0f} img/s ({run['wall_s']:.0f} s)")
        if mode == "on":
            arm["mps_servers"] = daemon.servers()
    k = args.packed_k
    rate = {(mode, n): arms.get(mode, {}).get(f"k{n}", {}).get("sum_img_s") for mode in MPS_MODES for n in (1, k)}
    first = arms[args.mps[0]]
    return {"arms": arms, "k": k, "measure_s": measure, "one": first.get("k1"), "many": first.get(f"k{k}"),
            "speedup": ratio(rate[(args.mps[0], k)], rate[(args.mps[0], 1)]),
            "speedup_off": ratio(rate[("off", k)], rate[("off", 1)]),
            "speedup_on_vs_one_off": ratio(rate[("on", k)], rate[("off", 1)]),
            "mps_gain_k": ratio(rate[("on", k)], rate[("off", k)]),
            "ceiling_k1": ceiling.get("packed_k1"), "ceiling_k4": ceiling.get("packed_k4"),
            "ceiling_speedup": ratio(ceiling.get("packed_k4"), ceiling.get("packed_k1")),
            "many_over_ceiling_k4": ratio(rate[(args.mps[0], k)], ceiling.get("packed_k4")),
            "many_on_over_ceiling_k4": ratio(rate[("on", k)], ceiling.get("packed_k4"))}


# ---- searches ------------------------------------------------------------------------------


def run_search(name: str, space: dict, data, dataset, args, *, trials: int, epochs: int, seconds: float,
               gpus_per_trial: float | None, storage: Path, pretrained: tuple, parts=None) -> dict:
    """labeltune's build_tuner with tracking off and a driver-side epoch clock; Tune stops at `seconds`.

    `parts`: search.tuner.TunerParts for what a section swaps in (timesplit: random sampling); None: labeltune's own.
    """
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
    clock, rows = epoch_clock(), time_rows()
    callbacks = [CheckpointPruner(PRIMARY_METRIC, PRIMARY_MODE), clock, rows]
    tuner = build_tuner(opts, record, data, callbacks, **({"parts": parts} if parts is not None else {}))
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
            "time_rows": rows.rows, "driver_starts": clock.starts,
            "cut_by_time_budget": t1 - t0 >= seconds - 1,
            "median_in_epoch_img_s": float(np.median(in_epoch)) if in_epoch else None,
            "median_first_result_latency_s": float(np.median(latency)) if latency else None}


def time_rows():
    """A Tune Callback keeping, per trial, the `time/` keys and wall clocks of every result (trainable/timing.py)."""
    from ray.tune import Callback

    from trainable import timing

    keep = (*timing.EPOCH_PHASES, timing.EPOCH, *timing.STARTUP, "epoch", "training_iteration", "started_at",
            "reported_at")

    class TimeRows(Callback):
        def __init__(self) -> None:
            self.rows: dict[str, list[dict]] = {}

        def on_trial_result(self, iteration, trials, trial, result, **info):
            row = {k: result[k] for k in keep if k in result}
            self.rows.setdefault(trial.trial_id, []).append({**row, "seen_at": time.time()})

    return TimeRows()


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


SEARCH_BULK = ("events", "first_report", "time_rows", "driver_starts")
"""run_search's per-event lists: summarised in the JSON, not copied into it"""


def section_search_small(data, dataset, args, ceiling: dict, seconds: float, storage: Path,
                         daemon: MpsDaemon) -> dict:
    """The small-CNN search once per --mps mode, each with an even share of the section's time left."""
    from search import space as spaces

    space = spaces.load_space("default")
    space.update(SMALL_SPACE)
    if args.dry_run:
        space.update(image_size=args.search_image_size, batch_size=[32])
    spaces.validate_space(space, "search_small")
    share = None if args.dry_run else 0.25
    slots = 4 if not args.dry_run else 2
    packed = ceiling.get("packed_k4")
    started, arms = time.time(), {}
    for i, (mode, state) in enumerate(mps_arms(args, daemon)):
        if "skipped" in state:
            arms[mode] = {"mps": state}
            continue
        budget = (seconds - (time.time() - started)) / (len(args.mps) - i)
        run = run_search(f"small-{mode}", space, data, dataset, args, trials=args.small_trials,
                         epochs=args.small_epochs, seconds=budget, gpus_per_trial=share, storage=storage, pretrained=())
        tp = useful_throughput(run, slots)
        log(f"search_small, MPS {mode}: {run['trial_epochs']} trial-epochs in {run['wall_s']:.0f} s, useful "
            f"{tp['whole_img_s'] or 0:,.0f} img/s whole, {tp['steady_img_s'] or 0:,.0f} steady")
        arms[mode] = {**{k: v for k, v in run.items() if k not in SEARCH_BULK}, **tp, "mps": state,
                      "mps_servers": daemon.servers() if mode == "on" else None,
                      "whole_over_packed_ceiling": ratio(tp["whole_img_s"], packed),
                      "steady_over_packed_ceiling": ratio(tp["steady_img_s"], packed),
                      "train_share": timesplit_by_model(run)}
    steady = {mode: arms.get(mode, {}).get("steady_img_s") for mode in MPS_MODES}
    return {"arms": arms, "space": space, "space_name": "the small CNNs", "ceiling_packed_k4": packed,
            "slots": slots, "mps_gain_steady": ratio(steady["on"], steady["off"])}


# ---- timesplit: where a trial's time goes, per model ----------------------------------------------------


def trial_time_split(rows: list[dict], driver_start: float | None) -> dict | None:
    """One trial's time from its result rows (trainable/timing.py), also as the driver saw it; None if untimed.

    train_share: training seconds / the trainable's own wall (entry to last report); driver_train_share: the
    same seconds / the driver's wall (trial started, including placement and worker start, to its last result).
    """
    from trainable import timing

    summary = timing.summarise(rows)
    if not summary.epochs:
        return None
    n = summary.epochs
    per_epoch = {key.split("/")[-1]: summary.totals[key] / n for key in (*timing.EPOCH_PHASES, timing.EPOCH)}
    per_epoch["other_s"] = per_epoch["epoch_s"] - sum(summary.totals[key] / n for key in timing.EPOCH_PHASES)
    entered = [r["started_at"] for r in rows if isinstance(r.get("started_at"), (int, float))]
    driver_wall = max(r["seen_at"] for r in rows) - driver_start if driver_start else None
    return {"epochs": n, "wall_s": summary.wall_s, "train_share": summary.train_share,
            "driver_wall_s": driver_wall,
            "driver_train_share": ratio(summary.totals[timing.TRAIN], driver_wall),
            "per_epoch": per_epoch, "startup": {k.split("/")[-1]: v for k, v in summary.startup.items()},
            # one machine, one clock: the driver's start of the trial to the trainable's entry
            "placement_s": min(entered) - driver_start if entered and driver_start else None}


def timesplit_by_model(run: dict) -> dict:
    """model -> trials, and the median over its trials of each share, per-epoch phase and start-up phase."""
    trials: dict[str, list[dict]] = {}
    for trial, rows in run["time_rows"].items():
        split = trial_time_split(rows, run["driver_starts"].get(trial))
        if split is not None:
            trials.setdefault(run["configs"].get(trial, {}).get("model") or "?", []).append(split)

    def median(values):
        values = [v for v in values if isinstance(v, (int, float))]
        return float(np.median(values)) if values else None

    out = {}
    for model, splits in sorted(trials.items()):
        out[model] = {"trials": len(splits), "epochs": sum(s["epochs"] for s in splits),
                      **{key: median(s[key] for s in splits) for key in
                         ("train_share", "driver_train_share", "placement_s")},
                      "per_epoch": {key: median(s["per_epoch"][key] for s in splits) for key in splits[0]["per_epoch"]},
                      "startup": {key: median(s["startup"].get(key) for s in splits)
                                  for key in sorted({k for s in splits for k in s["startup"]})}}
    return out


def section_timesplit(data, dataset, args, seconds: float, storage: Path, daemon: MpsDaemon) -> dict:
    """A search over the `default` space as a user has it (GPU share by model), its trials' time split per model.

    Sampled at random (Optuna's RandomSampler, no recipe points first): where the time goes does not depend on
    the sampler, and random draws spread the trials over the models (TPE would dwell on the best, the recipes
    are all efficientnet_lite0). ASHA still stops trials as in a search.
    """
    import optuna
    from optuna.samplers import RandomSampler

    from search import space as spaces
    from search.tuner import TunerParts
    from trainable.models import pretrained_available

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory" (no kept study here)
    space = spaces.load_space("default")
    if args.dry_run:
        space.update(image_size=args.search_image_size)
    state = daemon.state()  # whatever the machine has at this point (no daemon of ours yet)
    run = run_search("timesplit", space, data, dataset, args, trials=args.timesplit_trials,
                     epochs=args.timesplit_epochs, seconds=seconds, gpus_per_trial=None, storage=storage,
                     pretrained=pretrained_available(),
                     parts=TunerParts(sampler=RandomSampler(seed=0), baseline_points=False, keep_study=False))
    models = timesplit_by_model(run)
    for model, m in models.items():
        log(f"timesplit {model}: {m['trials']} trials, train share {m['train_share'] or 0:.2f} of the trainable's "
            f"wall, {m['driver_train_share'] or 0:.2f} of the driver's; epoch {m['per_epoch']['epoch_s'] or 0:.2f} s")
    return {**{k: v for k, v in run.items() if k not in SEARCH_BULK}, "space_name": "the default space",
            "sampler": "random (optuna RandomSampler, seed 0), no recipe points", "mps": state, "models": models,
            "models_not_started": sorted(set(spaces.choices(space["model"])) - set(models))}


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
    return {**{k: v for k, v in run.items() if k not in SEARCH_BULK},
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
    p.add_argument("--mps", default=",".join(MPS_MODES),
                   help="MPS modes of packed and search_small, in order: off (no daemon), on (the daemon started here)")
    p.add_argument("--headline-mps", choices=MPS_MODES, default="off", help="the headline's MPS mode")
    p.add_argument("--n-images", type=int, default=20000)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--trial-models", default=",".join(TRIAL_MODELS))
    p.add_argument("--trial-batch", type=int, default=256)
    p.add_argument("--trial-seconds", type=float, default=5.0)
    p.add_argument("--packed-k", type=int, default=4)
    p.add_argument("--packed-batch", type=int, default=128)
    p.add_argument("--packed-seconds", type=float, default=6.0)
    p.add_argument("--timesplit-trials", type=int, default=12)
    p.add_argument("--timesplit-epochs", type=int, default=4)
    p.add_argument("--small-trials", type=int, default=64)
    p.add_argument("--small-epochs", type=int, default=10)
    p.add_argument("--headline-trials", type=int, default=64)
    p.add_argument("--headline-epochs", type=int, default=10)
    p.add_argument("--search-image-size", type=int, default=128, help="image size forced on the searches (dry run)")
    p.add_argument("--dry-run", action="store_true",
                   help="CPU, tiny: 240 images, 32 px, 2 processes, 4-trial x 2-epoch searches, short budgets")
    args = p.parse_args(argv)
    budgets = dict(BUDGET_S)
    if args.dry_run:
        budgets = {"ceiling": 0, "trial": 40, "timesplit": 150, "packed": 200, "search_small": 240, "headline": 240}
        args.deadline_s = max(args.deadline_s, 1200)
        args.n_images, args.image_size, args.search_image_size = 240, 32, 32
        args.trial_models, args.trial_batch, args.trial_seconds = "dummy,cnn3bn", 32, 1.0
        args.packed_k, args.packed_batch, args.packed_seconds = 2, 32, 1.0
        args.small_trials, args.small_epochs, args.headline_trials, args.headline_epochs = 4, 2, 4, 2
        args.timesplit_trials, args.timesplit_epochs = 4, 2
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
    args.mps = [m for m in args.mps.split(",") if m]
    if not args.mps or any(m not in MPS_MODES for m in args.mps) or len(set(args.mps)) != len(args.mps):
        p.error(f"--mps: a comma list of distinct modes from {', '.join(MPS_MODES)}")
    args.device = "cpu" if args.dry_run else "cuda"
    return args


RAY_SECTIONS = ("timesplit", "search_small", "headline")


def main(argv=None) -> dict:
    from search.console import quiet

    quiet()  # Ray's token-auth notice and Tune's "Failed to fetch metrics" blocks off (search/console.py)
    args = parse_args(argv)
    plan = Plan(args.deadline_s, args.budgets)
    started = time.time()
    out = Path(args.out) if args.out else None
    args.out = str(out or Path(tempfile.mkdtemp(prefix="gpu-bench-out-")))
    log(f"sections {', '.join(args.sections)}; budgets "
        f"{', '.join(f'{s} {args.budgets[s]:.0f} s' for s in args.sections)}; deadline {args.deadline_s:.0f} s; "
        f"MPS modes {', '.join(args.mps)}")
    results: dict = {"sections_run": [], "sections_skipped": {}}
    ceiling = measure_ceiling(args, plan, results)
    daemon = MpsDaemon()
    log(f"MPS: {daemon.binary or 'nvidia-cuda-mps-control not found'}"
        + ("; a daemon was already running (not ours: kept)" if daemon.preexisting else ""))
    ray_up = RayUp()
    try:
        run_sections(args, plan, results, ceiling, daemon, ray_up)
    finally:
        ray_up.close()
        daemon.stop()  # before the call ends, whatever happened: the lent machine is left as it was found
        results["mps"] = daemon.record()
    report(results)
    path = write_results("gpu", dict(vars(args)), results, args.out, started)
    print(f"wrote {path}")
    return results


def measure_ceiling(args, plan: Plan, results: dict) -> dict:
    """The ceiling measured in this call, else --ceiling-json, else PERF.md's anchor."""
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
    return ceiling


class RayUp:
    """One local Ray for the search sections, started by the first of them (after `trial`) and shut down at the end."""

    def __init__(self) -> None:
        self.storage: Path | None = None

    def ensure(self, args, data, results: dict) -> Path:
        if self.storage is None:
            import ray

            os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
            t = time.time()
            ray.init(num_cpus=os.cpu_count(), num_gpus=0 if args.dry_run else 1,
                     object_store_memory=max(300 * 2**20, 4 * data.images.nbytes),
                     include_dashboard=False, log_to_driver=False, configure_logging=False)
            results["ray_init_s"] = time.time() - t
            self.storage = Path(tempfile.mkdtemp(prefix="gpu-bench-runs-", dir=bench_root()))
        return self.storage

    def close(self) -> None:
        if self.storage is not None:
            import ray

            ray.shutdown()
            shutil.rmtree(self.storage, ignore_errors=True)
            self.storage = None


def load_data(args, results: dict):
    """The synthetic data set, decoded once (and a second load, which the decode cache must make cheap)."""
    from trainable.trial_data import load_trial_data

    t = time.time()
    use_bench_decode_cache()
    root = synth_dataset(args.n_images)
    t_synth = time.time() - t
    t = time.time()
    dataset, data = load_trial_data(str(root), 0, False)
    t_load = time.time() - t
    t = time.time()
    load_trial_data(str(root), 0, False)
    results["data"] = {"n_images": len(dataset), "synth_s": t_synth, "load_decode_s": t_load,
                       "reload_s": time.time() - t}
    log(f"data: {len(dataset)} images, synth {t_synth:.0f} s, load+decode {t_load:.1f} s, "
        f"reload {results['data']['reload_s']:.1f} s")
    return root, dataset, data


def run_sections(args, plan: Plan, results: dict, ceiling: dict, daemon: MpsDaemon, ray_up: RayUp) -> None:
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run this on the GPU machine, or with --dry-run here")
    root, dataset, data = load_data(args, results)

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
            storage = ray_up.ensure(args, data, results) if name in RAY_SECTIONS else None
            results[name] = fn(seconds, storage)
        except Exception as exc:  # one broken section must not lose the others' figures
            import traceback

            results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
            log(f"{name}: FAILED {type(exc).__name__}: {exc}")
        results[name]["section_s"] = time.time() - t
        results["sections_run"].append(name)

    run("trial", lambda s, _: section_trial(args, dataset, data.images, ceiling, s))
    run("timesplit", lambda s, st: section_timesplit(data, dataset, args, s, st, daemon))
    run("packed", lambda s, _: section_packed(root, args, ceiling, s, daemon))
    run("search_small", lambda s, st: section_search_small(data, dataset, args, ceiling, s, st, daemon))
    if "headline" in args.sections:
        daemon.set(args.headline_mps)  # off by default: as the 2026-12-04 headline ran
    run("headline", lambda s, st: section_headline(data, dataset, args, ceiling, s, st))


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
    report_timesplit(r.get("timesplit"))
    report_packed(r.get("packed"), c)
    for name in ("search_small", "headline"):
        report_search(name, r.get(name))
    m = r.get("mps", {})
    print(f"\nMPS: {'nvidia-cuda-mps-control missing' if m.get('binary_missing') else m.get('binary')}"
          f"{', a daemon was already running' if m.get('preexisting') else ''}; "
          f"{sum(1 for e in m.get('events', []) if e.get('mode') == 'quit')} quit by this run")
    if r["sections_skipped"]:
        print(f"\nskipped: {r['sections_skipped']}")


def report_timesplit(t: dict | None) -> None:
    if not t or "error" in t:
        if t:
            print(f"\ntimesplit: FAILED {t['error']}")
        return
    rows = [{"model": model, **{k: m[k] for k in ("trials", "epochs", "train_share", "driver_train_share",
                                                    "placement_s")}, **m["per_epoch"]} for model, m in t["models"].items()]
    print(table(rows, [("model", "model", ""), ("trials", "trials", ""), ("epochs", "epochs", ""),
                       ("train_share", "train share (>= 0.80)", ".2f"), ("driver_train_share", "of driver wall", ".2f"),
                       ("epoch_s", "epoch s", ".2f"), ("train_s", "train s", ".2f"), ("val_forward_s", "val s", ".2f"),
                       ("metrics_s", "metrics s", ".2f"), ("checkpoint_s", "ckpt s", ".2f"),
                       ("report_s", "report s", ".2f"), ("other_s", "other s", ".2f"),
                       ("placement_s", "placement s", ".1f")],
                title=f"\ntimesplit: {t['trials_started']} trials of {t['space_name']}, <= {t['max_epochs']} epochs "
                      f"(medians per trial; per-epoch seconds){'; not started: ' + ', '.join(t['models_not_started']) if t['models_not_started'] else ''}"))


def report_packed(p: dict | None, c: dict) -> None:
    if not p or "error" in p:
        if p:
            print(f"\npacked: FAILED {p['error']}")
        return
    k, rows = p["k"], []
    for mode, arm in p["arms"].items():
        one, many = arm.get("k1") or {}, arm.get(f"k{k}") or {}
        rows.append({"what": f"labeltune Gym (cnn5), MPS {mode}", "one": one.get("sum_img_s"),
                     "many": many.get("sum_img_s"), "x": ratio(many.get("sum_img_s"), one.get("sum_img_s")),
                     "vs": ratio(many.get("sum_img_s"), c.get("packed_k4")),
                     "note": arm["mps"].get("skipped") or ("MPS active" if arm["mps"].get("active") else "no MPS")})
    rows.append({"what": "ceiling (course 5-conv CNN), no MPS", "one": c.get("packed_k1"), "many": c.get("packed_k4"),
                 "x": p["ceiling_speedup"], "vs": 1.0 if c.get("packed_k4") else None, "note": ""})
    print(table(rows, [("what", "", ""), ("one", "1 process img/s", ",.0f"), ("many", f"{k} processes img/s", ",.0f"),
                       ("x", f"{k} vs 1", ".2f"), ("vs", "vs packed ceiling", ".2f"), ("note", "", "")],
                title=f"\nsmall-CNN trainings packed on one GPU; {k} with MPS vs 1 without: "
                      f"{p['speedup_on_vs_one_off'] or 0:.2f}x (target >= 2)"))


def report_search(name: str, s: dict | None) -> None:
    if not s or "error" in s:
        if s:
            print(f"\n{name}: FAILED {s['error']}")
        return
    for mode, run in (s["arms"].items() if "arms" in s else [(None, s)]):
        label = f"{name} (MPS {mode})" if mode else name
        if "skipped" in run.get("mps", {}):
            print(f"\n{label}: skipped ({run['mps']['skipped']})")
            continue
        share = f"{run['gpus_per_trial']} GPU per trial" if run.get("gpus_per_trial") else "GPU share by model"
        space = s.get("space_name") or run.get("space_name")
        print(f"\n{label}: {run['trials']}-trial search over {space}, <= {run['max_epochs']} epochs, {share}: "
              f"{run['trials_started']} trials started, {run['trial_epochs']} trial-epochs, wall {run['wall_s']:.0f} s"
              f"{' (cut by its time budget)' if run['cut_by_time_budget'] else ''}, {len(run['errors'])} errors; "
              f"median in-epoch {run['median_in_epoch_img_s'] or 0:,.0f} img/s per trial; "
              f"median start-to-first-result {run['median_first_result_latency_s'] or 0:.1f} s")
        if name == "search_small":
            print(f"  useful throughput: whole {run['whole_img_s'] or 0:,.0f} img/s "
                  f"({run['whole_over_packed_ceiling'] or 0:.2f} of the packed ceiling), steady "
                  f"{run['steady_img_s'] or 0:,.0f} img/s ({run['steady_over_packed_ceiling'] or 0:.2f}; target >= 0.70); "
                  f"train share by model {({m: round(v['driver_train_share'] or 0, 2) for m, v in run['train_share'].items()})}")
        else:
            print(f"  course-style estimate for the same trials without early stopping: "
                  f"{run['course_no_early_stop_s']:,.1f} s -> {run['speedup_vs_course_no_early_stop'] or 0:.2f}x the "
                  f"wall; same work: {run['course_same_work_s']:,.1f} s; models {run['models_started']}")


if __name__ == "__main__":
    main()
