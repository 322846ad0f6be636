"""How labeltune's memory and set-up time grow with the data: 20k, 60k and 200k synthetic images (issue 27).

For each N in --n, each step runs as the user runs it (the `labeltune` CLI in a subprocess, its own
$LABELTUNE_HOME under the bench folder, so the decode cache and the MLflow store are the run's own) while a
sampler thread reads, every --every-s seconds:

  system_used      MemTotal - MemAvailable (/proc/meminfo): what the machine cannot give to anything else;
                   the page cache of a memory-mapped decode cache is available, Ray's object store (tmpfs)
                   and private copies are not
  shm_used         bytes in use on /dev/shm, where Ray's object store keeps its objects
  tree_rss, tree_pss, tree_uss
                   over the step's process tree (the driver, the raylet and its workers): RSS (shared pages
                   counted in every process), PSS (shared pages split between the processes that map them)
                   and USS (private pages only), from /proc/<pid>/smaps_rollup
  driver_rss       the step's own process

and keeps each figure's peak, the whole tree's processes at the moment system_used peaked (name, RSS, PSS,
USS), and the step's seconds. Steps (--steps): synth (data synth --n N --test 5000), check (data check),
decode_miss and decode_hit (data.load + data.decode in a subprocess, the decoded array removed from the run's
$LABELTUNE_CACHE before the first), convert (the decoded array converted to the search's one size, 32 px RGB,
as a search whose every trial asks it ships it: made once per dataset and size, its cache removed first),
trial_copy (no training: 2 Ray actors each take the array from the object store as a 128-px CPU trial does and
hold it: where a private copy per trial shows), search (a 2-trial search of the `quick` space at 32 px, 1 epoch,
MLflow on, on cache hits: its seconds, from its start to the first trial result, and its set-up (setup_s: until the first trial
has its data and can train), read from the trials' result rows), promote (--no-register --allow-below-baseline:
1 epoch of training is rarely above the baseline), pred (the promoted checkpoint on the 5,000 test images),
searches, report.

The JSON holds every step's figures per N, the decoded array's bytes (N x 3 x 128 x 128) and, per figure, the
least-squares slope in bytes per decoded byte (memory) or seconds per 10k images (time) from the smallest to
the largest N: linear growth shows as a straight line, a 1x copy as a memory slope near 1.

    .venv/bin/python bench/scale.py --n 20000 --steps synth,decode_miss,decode_hit,search   # a diagnosis
    .venv/bin/python bench/scale.py                     # 20k, 60k, 200k, every step (~15 min on 2 cores)
    .venv/bin/python bench/scale.py --tree /tmp/lt-before --label before   # an older tree's code, same steps
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import REPO, bench_root, log, table, write_results

STEPS = ("synth", "check", "decode_miss", "decode_hit", "convert", "trial_copy", "search", "promote", "pred", "searches", "report")
SIDE, CHANNELS = 128, 3
TEST_IMAGES = 5000
SEARCH_SIZE = 32
"""the search step's one image size (the quick space at 32 px): its trials get the array converted to it (convert)"""


# ---- the sampler (Linux /proc, no dependency) --------------------------------------------------------


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes."""
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        parts = value.split()
        out[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return out


def system_used() -> int:
    info = meminfo()
    return info["MemTotal"] - info["MemAvailable"]


def shm_used(path: str = "/dev/shm") -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def process_memory(pid: int) -> dict | None:
    """{name, rss, pss, uss} of one process from smaps_rollup (bytes); None when it is gone or unreadable."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        name = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    fields = {}
    for line in rollup.splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[key] = int(parts[0]) * 1024
    return {"pid": pid, "name": name[:120], "rss": fields.get("Rss", 0), "pss": fields.get("Pss", 0),
            "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)}


def descendants(pid: int) -> list[int]:
    """pid and every process below it (from /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*") if Path(f"/proc/{p}").exists() else []:
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


class Sampler(threading.Thread):
    """Samples system, shm and one process tree every `every_s` seconds; keeps the peaks."""

    def __init__(self, pid: int, every_s: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s, self.done = pid, every_s, threading.Event()
        self.base = {"system_used": system_used(), "shm_used": shm_used()}
        self.peak = {"system_used": 0, "shm_used": 0, "tree_rss": 0, "tree_pss": 0, "tree_uss": 0, "driver_rss": 0}
        self.at_peak: list[dict] = []
        self.samples = 0

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.every_s)

    def sample(self) -> None:
        procs = [m for m in map(process_memory, descendants(self.pid)) if m]
        now = {"system_used": system_used(), "shm_used": shm_used(),
               "tree_rss": sum(m["rss"] for m in procs), "tree_pss": sum(m["pss"] for m in procs),
               "tree_uss": sum(m["uss"] for m in procs),
               "driver_rss": next((m["rss"] for m in procs if m["pid"] == self.pid), 0)}
        if now["system_used"] > self.peak["system_used"]:
            self.at_peak = sorted(procs, key=lambda m: -m["pss"])[:8]
        self.peak = {k: max(v, now[k]) for k, v in self.peak.items()}
        self.samples += 1


def run_step(name: str, argv: list[str], env: dict, every_s: float, timeout_s: float, cwd: str) -> dict:
    """One step in a subprocess under the sampler: seconds, exit status, peaks, the top processes at the peak."""
    log(f"{name}: {' '.join(argv)[:160]}")
    started = time.time()
    # cwd: the tree the step imports (Ray puts the driver's working directory first on its workers' sys.path)
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(proc.pid, every_s)
    sampler.start()
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    sampler.done.set()
    sampler.join()
    seconds = time.time() - started
    out = {"seconds": seconds, "rc": proc.returncode, "started": started, **{f"peak_{k}": v for k, v in sampler.peak.items()},
           "base_system_used": sampler.base["system_used"], "base_shm_used": sampler.base["shm_used"],
           "top_processes_at_peak": sampler.at_peak, "samples": sampler.samples,
           "output_tail": output[-1500:] if proc.returncode else output[-300:]}
    log(f"{name}: {seconds:.1f} s, rc {proc.returncode}, system used peak {sampler.peak['system_used'] / 2**30:.2f} GiB "
        f"(before {sampler.base['system_used'] / 2**30:.2f}), tree PSS peak {sampler.peak['tree_pss'] / 2**30:.2f} GiB")
    return out


# ---- the steps -----------------------------------------------------------------------------------------


def quick_space_file(folder: Path) -> Path:
    """The `quick` space at 32 px (the CPU affords it at 200k images), as a JSON file `--space` reads."""
    from search import space as spaces

    space = {**spaces.load_space("quick"), "image_size": SEARCH_SIZE}
    path = folder / "quick32.json"
    path.write_text(json.dumps(space))
    return path


def step_commands(n: int, root: Path, space_file: Path) -> dict[str, list[str]]:
    """The command line of every step for N images."""
    lt, py = [str(Path(sys.executable).parent / "labeltune")], [sys.executable]
    data, name = root / f"data{n}", f"scale-{n}"
    decode = ("import sys; from trainable import data; ds = data.load(sys.argv[1]); a = data.decode(ds, 'rgb'); "
              "print(a.shape, a.nbytes)")
    convert = ("import sys; from trainable.trial_data import load_trial_data; "
               f"_, d = load_trial_data(sys.argv[1], 0, False, form=('rgb', {SEARCH_SIZE})); "
               "print(d.images.shape, d.images.nbytes)")
    trial_copy = [sys.executable, str(Path(__file__).resolve()), "--trial-copy", str(data)]
    return {
        "synth": lt + ["data", "synth", "--out", str(data), "--n", str(n), "--test", str(TEST_IMAGES), "--force"],
        "check": lt + ["data", "check", str(data)],
        "decode_miss": py + ["-c", decode, str(data)],
        "decode_hit": py + ["-c", decode, str(data)],
        "convert": py + ["-c", convert, str(data)],
        "trial_copy": trial_copy,
        "search": lt + ["search", "--data", str(data), "--space", str(space_file), "--trials", "2", "--epochs", "1",
                        "--concurrency", "2", "--name", name],
        "promote": lt + ["promote", "--search", name, "--no-register", "--allow-below-baseline",
                         "--card", str(root / f"card{n}.md")],
        "pred": lt + ["pred", "--checkpoint", "PROMOTED", "--images", str(data / "test" / "images"),
                      "--out", str(root / f"pred{n}.tsv")],
        "searches": lt + ["searches"],
        "report": lt + ["report", name],
    }


def trial_copy(data_dir: str, trials: int = 2) -> None:
    """The trials' side of the data alone, at 128 px RGB on the CPU (no training): a local Ray with the decoded
    array in its object store, `trials` actors that each build their images as a Gym does (to_device_images)
    and hold them, and each actor's RSS/PSS/USS printed (the sampler sees the whole tree)."""
    tree = os.environ.get("PYTHONPATH", "").split(os.pathsep)[0]
    if tree:  # --tree first: common.py put this checkout ahead of it; Ray's workers also get the driver's cwd first
        sys.path.insert(0, tree)
        os.chdir(tree)
    import ray
    import torch

    from trainable.trial_data import load_trial_data

    _, data = load_trial_data(data_dir, 0, False)
    ray.init(num_cpus=trials, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=int(data.images.nbytes * 1.05) + 512 * 2**20)
    ref = ray.put(data)

    @ray.remote(num_cpus=1)
    class Holder:
        def hold(self, shared) -> dict:
            import os

            from trainable import gym

            self.images = gym.to_device_images(shared.images, 128, torch.device("cpu"), "rgb", key=("bench",))
            return {**process_memory(os.getpid()), "gym": gym.__file__,
                    "in_place": self.images.data_ptr() == shared.images.ctypes.data}

    holders = [Holder.remote() for _ in range(trials)]
    for m in ray.get([h.hold.remote(ref) for h in holders]):
        print(f"trial process: rss {m['rss'] / 2**30:.2f} pss {m['pss'] / 2**30:.2f} uss {m['uss'] / 2**30:.2f} GiB; "
              f"images in place: {m['in_place']} ({m['gym']})")
    time.sleep(3)  # the sampler's peak while every actor holds its images
    ray.shutdown()


def result_rows(search_dir: Path) -> list[dict]:
    """Every result row of the search's trials (Tune's trial_*/result.json)."""
    rows = []
    for result in search_dir.glob("trial_*/result.json"):
        for line in result.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def search_dir(root: Path, n: int | str) -> Path:
    """The Tune folder of the search step for N images."""
    return root / "home" / "runs" / f"scale-{n}"


def first_result_s(rows: list[dict], started: float) -> float | None:
    """From the search step's start to the first trial result (the earliest reported_at of its trials' rows)."""
    times = [row["reported_at"] for row in rows if "reported_at" in row]
    return min(times) - started if times else None


def setup_s(rows: list[dict], started: float) -> float | None:
    """The search's set-up: from its start until the first trial has its data and can train (the earliest
    started_at + data_setup_s of its trials' rows): Ray, the decode cache, the object store, the trial's start."""
    ready = [row["started_at"] + row["data_setup_s"] for row in rows if "started_at" in row and "data_setup_s" in row]
    return min(ready) - started if ready else None


def add_setup(path: Path, root: Path) -> None:
    """--add-setup: a finished run's JSON gets each search step's setup_s from its kept trial rows (--keep)."""
    doc = json.loads(path.read_text())
    for n, runs in doc["results"]["per_n"].items():
        if "search" in runs:
            runs["search"]["setup_s"] = setup_s(result_rows(search_dir(root, n)), runs["search"]["started"])
    doc["results"]["setup_s_added_from"] = str(root / "home" / "runs")
    path.write_text(json.dumps(doc, indent=1))
    print(f"{path}: setup_s " + ", ".join(f"{n}: {r['search'].get('setup_s')}" for n, r in
                                          doc["results"]["per_n"].items() if "search" in r))


def run_size(n: int, args, root: Path, env: dict, space_file: Path) -> dict:
    """Every step of --steps for N images; the decode cache is removed before decode_miss."""
    commands, out = step_commands(n, root, space_file), {}
    for name in args.steps:
        if name == "synth":  # a new dataset: nothing of it is remembered
            shutil.rmtree(root / "home" / "cache", ignore_errors=True)
        if name == "decode_miss":  # the decoded arrays only: data check's verdict stays, as after a user's check
            for cached in (root / "home" / "cache").glob("*.npy"):
                cached.unlink()
        if name == "convert":  # the array at the search's one size: made once per dataset, then a hit like decode's
            for cached in (root / "home" / "cache").glob(f"*-rgb-{SEARCH_SIZE}-*.npy"):
                cached.unlink()
        if name == "search":
            shutil.rmtree(search_dir(root, n), ignore_errors=True)
        argv = commands[name]
        if name == "pred":  # the newest promotion's checkpoint (promoted/<stamp>/checkpoint.pt)
            found = sorted((search_dir(root, n) / "promoted").glob("*/checkpoint.pt"))
            argv = [str(found[-1]) if a == "PROMOTED" and found else a for a in argv]
        out[name] = run_step(name, argv, env, args.every_s, args.timeout_s, cwd=args.tree)
        if name == "search":
            rows = result_rows(search_dir(root, n))
            out[name]["first_result_s"] = first_result_s(rows, out[name]["started"])
            out[name]["setup_s"] = setup_s(rows, out[name]["started"])
    return out


# ---- the analysis --------------------------------------------------------------------------------------


def decoded_bytes(n: int) -> int:
    return n * CHANNELS * SIDE * SIDE


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y on x; None below two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def growth(per_n: dict[int, dict]) -> dict:
    """Per step: the memory slope (peak system used above the step's start, bytes per decoded byte) and the time
    slope (seconds per 10k images) over the sizes run."""
    steps = {s for runs in per_n.values() for s in runs}
    out = {}
    for step in sorted(steps):
        rows = [(n, runs[step]) for n, runs in sorted(per_n.items()) if step in runs and runs[step]["rc"] == 0]
        out[step] = {
            "memory_slope_per_decoded_byte": slope([(decoded_bytes(n), r["peak_system_used"] - r["base_system_used"])
                                                    for n, r in rows]),
            "seconds_per_10k_images": (lambda s: None if s is None else s * 10_000)(
                slope([(n, r["seconds"]) for n, r in rows])),
        }
    return out


def print_table(per_n: dict[int, dict]) -> None:
    rows = [{"n": n, "step": step, "s": r["seconds"], "rc": r["rc"],
             "used": (r["peak_system_used"] - r["base_system_used"]) / 2**30, "shm": r["peak_shm_used"] / 2**30,
             "pss": r["peak_tree_pss"] / 2**30, "rss": r["peak_driver_rss"] / 2**30,
             "decoded": decoded_bytes(n) / 2**30} for n, runs in per_n.items() for step, r in runs.items()]
    print(table(rows, [("n", "N", ""), ("step", "step", ""), ("s", "seconds", ".1f"), ("rc", "rc", ""),
                       ("used", "system used +GiB", ".2f"), ("shm", "shm GiB", ".2f"), ("pss", "tree PSS GiB", ".2f"),
                       ("rss", "driver RSS GiB", ".2f"), ("decoded", "decoded GiB", ".2f")],
                title="Memory (peaks while the step ran) and seconds per step"))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", default="20000,60000,200000", help="comma list of dataset sizes")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma list of {', '.join(STEPS)}")
    p.add_argument("--every-s", type=float, default=1.0, help="sampling period (a sample reads every process's smaps_rollup: ~0.05 s of CPU)")
    p.add_argument("--timeout-s", type=float, default=1800, help="per step")
    p.add_argument("--tree", default=str(REPO), help="the source tree the steps import (PYTHONPATH; a git worktree)")
    p.add_argument("--label", default="", help="a name for the run (before / after)")
    p.add_argument("--keep", action="store_true", help="keep the datasets and the run's home afterwards")
    p.add_argument("--results-dir", default=None)
    p.add_argument("--add-setup", type=Path, default=None,
                   help="add setup_s to a finished run's JSON from the trial rows its --keep left, then exit")
    args = p.parse_args(argv)
    args.n = [int(x) for x in args.n.split(",") if x]
    args.steps = [s for s in args.steps.split(",") if s]
    unknown = [s for s in args.steps if s not in STEPS]
    if unknown:
        p.error(f"unknown step(s) {', '.join(unknown)}; valid: {', '.join(STEPS)}")
    return args


def main(argv=None) -> dict:
    if argv is None and sys.argv[1:2] == ["--trial-copy"]:
        return trial_copy(sys.argv[2])
    args = parse_args(argv)
    started = time.time()
    root = bench_root() / "scale-work"
    if args.add_setup:
        return add_setup(args.add_setup, root)
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LABELTUNE_HOME": str(root / "home"), "LABELTUNE_CACHE": str(root / "home" / "cache"),
           "PYTHONPATH": args.tree,
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'home' / 'mlruns' / 'mlflow.db'}"}
    (root / "home" / "mlruns").mkdir(parents=True, exist_ok=True)
    space_file = quick_space_file(root)
    per_n = {}
    try:
        for n in args.n:
            per_n[n] = run_size(n, args, root, env, space_file)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print_table(per_n)
    results = {"per_n": {str(n): runs for n, runs in per_n.items()}, "decoded_bytes": {str(n): decoded_bytes(n)
                                                                                     for n in args.n},
               "growth": growth(per_n), "memory_total": meminfo()["MemTotal"]}
    params = {**vars(args), "test_images": TEST_IMAGES, "search": "quick space at 32 px, 2 trials, 1 epoch"}
    variant = f"label{args.label}" if args.label else None
    path = write_results("scale", params, results, args.results_dir, started, variant=variant)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
