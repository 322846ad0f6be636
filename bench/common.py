"""Helpers every benchmark script shares: machine facts, result JSON, synthetic data, tables.

    from common import synth_dataset, load_decoded, write_results, table
    root = synth_dataset(2000)                 # cached under $LABELTUNE_BENCH_DATA (/tmp/labeltune-bench)
    dataset, images = load_decoded(root)       # uint8 N x 3 x 128 x 128, decoded once per data version
    path = write_results("throughput", params, results)   # bench/results/throughput_<date>.json

The scripts run as `python bench/<script>.py` (so this folder is on sys.path) from a venv
where labeltune is installed, or with the project root on PYTHONPATH (the GPU machine).
Every result file has the same envelope: script, date, machine, versions, parameters,
results; README.md in this folder says how to read each script's `results`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
T0 = time.time()
LOAD_AT_START = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None

if str(REPO) not in sys.path:  # `python bench/x.py` from anywhere finds trainable/ and search/
    sys.path.insert(1, str(REPO))

from trainable import store  # noqa: E402  (after the path fix above)
from search.console import quiet, verbose  # noqa: E402

quiet(show_third_party=verbose())  # as the CLI: Ray's box, Optuna's warnings off unless LABELTUNE_VERBOSE=1


def log(*parts: Any) -> None:
    """Progress line with seconds since the script started (stderr, so stdout keeps the tables)."""
    print(f"[{time.time() - T0:7.1f}s]", *parts, file=sys.stderr, flush=True)


# ---- where data lives ---------------------------------------------------------------


def bench_root() -> Path:
    """$LABELTUNE_BENCH_DATA, default /tmp/labeltune-bench: synthetic datasets, decode cache, Tune storage."""
    root = Path(os.environ.get("LABELTUNE_BENCH_DATA") or "/tmp/labeltune-bench").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def use_bench_decode_cache() -> Path:
    """Point labeltune's decode cache into the bench folder unless $LABELTUNE_CACHE is set already."""
    os.environ.setdefault("LABELTUNE_CACHE", str(bench_root() / "decode-cache"))
    return Path(os.environ["LABELTUNE_CACHE"])


def synth_dataset(n: int, seed: int = 0) -> Path:
    """A synthetic dataset of n annotated 128x128 JPEGs in the course layout, written once and reused.

    Written into a temporary folder and renamed into place, so an interrupted run leaves no half dataset.
    """
    from trainable import synth

    root = bench_root() / f"synth-n{n}-seed{seed}"
    if (root / ".complete").exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    tmp = Path(tempfile.mkdtemp(dir=bench_root(), prefix=f".synth-n{n}-"))
    t = time.time()
    synth.write_dataset(tmp, n=n, test=0, seed=seed, progress=False)
    (tmp / ".complete").write_text(f"written in {time.time() - t:.1f} s\n")
    os.replace(tmp, root)
    log(f"wrote {n} synthetic images to {root} in {time.time() - t:.1f} s")
    return root


def load_decoded(root: Path):
    """(AnnotatedFolder, uint8 N x 3 x 128 x 128) through labeltune's own load + decode (cached per data version)."""
    from trainable import data

    use_bench_decode_cache()
    dataset = data.load(root)
    return dataset, data.decode(dataset, "rgb", progress=False)


# ---- what ran where -----------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def gpu_name() -> str | None:
    """The first GPU's name: from torch when it is imported already, else nvidia-smi (no torch import)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        except Exception:  # a broken driver is "no GPU" for the record
            return None
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            return None
    return None


def machine_info() -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "host": platform.node(),
        "cpu_model": _cpu_model(),
        "cpu_cores": cores,
        "memory_gib": _memory_gib(),
        "gpu": gpu_name(),
        # a busy machine makes every figure wrong: the load says whether it was quiet
        "load_avg_1_5_15_at_start": LOAD_AT_START,
        "load_avg_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "ray", "optuna", "numpy", "pillow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _plain(value: Any) -> Any:
    """numpy scalars and paths as JSON; NaN/inf as null (JSON has neither)."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return _plain(obj)


def variant_name(args: dict, defaults: dict, ignore: tuple[str, ...] = ()) -> str | None:
    """The options where args differ from defaults, for a results file name: {'checkpoint': True,
    'trials': 50} -> 'checkpoint-trials50'; None when nothing differs. results_dir and `ignore`
    do not count; characters a file name should not hold become '_'."""
    def text(value: Any) -> str:
        if value is True:
            return ""
        return "+".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)

    parts = [f"{k.replace('_', '')}{text(v)}" for k, v in args.items()
             if k not in ("results_dir", *ignore) and v != defaults.get(k)]
    return re.sub(r"[^A-Za-z0-9.,+=-]", "_", "-".join(parts)) or None


def results_variant(args, parse_args: Callable[[list[str]], Any], ignore: tuple[str, ...] = ()) -> str | None:
    """variant_name of a script's parsed args against its own defaults in the same mode: a --gpu run
    is compared with the --gpu defaults and its name starts with 'gpu'."""
    gpu = bool(getattr(args, "gpu", False))
    name = variant_name(vars(args), vars(parse_args(["--gpu"] if gpu else [])), ignore)
    return ("gpu-" + name if name else "gpu") if gpu else name


def write_results(script: str, parameters: dict, results: dict, results_dir: str | Path | None = None,
                  started: float | None = None, variant: str | None = None) -> Path:
    """bench/results/<script>[-<variant>]_<YYYY-MM-DD>.json (or results_dir/...): the common envelope.

    `variant` names a run that measures something else than the script's default (for example
    tune_overhead's `--checkpoint`), so that its file does not replace the default's.
    """
    folder = Path(results_dir) if results_dir else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    date = time.strftime("%Y-%m-%d")
    record = {
        "script": script,
        "date": date,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "wall_s": round(time.time() - (started or T0), 1),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        "versions": versions(),
        "parameters": parameters,
        "results": results,
    }
    path = folder / f"{script}{'-' + variant if variant else ''}_{date}.json"
    return store.write_text(path, json.dumps(_clean(record), indent=1) + "\n")


# ---- printing -----------------------------------------------------------------------


def fmt(value: Any, spec: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if spec and isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def table(rows: Iterable[dict], columns: Sequence[tuple[str, str, str]], title: str = "") -> str:
    """A plain aligned text table; columns are (key, header, format spec)."""
    rows = list(rows)
    cells = [[fmt(row.get(key), spec) for key, _, spec in columns] for row in rows]
    headers = [header for _, header, _ in columns]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    lines = [title] if title else []
    lines.append("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    lines.append("  ".join("-" * w for w in widths))
    for c in cells:
        lines.append("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths))))
    return "\n".join(lines)


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# ---- the team's GPU ceiling (shared/bench/gpu_ceiling.py) ------------------------------

CEILING_MODEL = {"cnn5": "seed_cnn5", "resnet18": "resnet18", "resnet50": "resnet50",
                 "efficientnet_lite0": "efficientnet_lite0"}
"""labeltune model -> gpu_ceiling.py model. cnn5 ~ the course's 5-conv CNN (same convs; labeltune pools to 1x1
before a 256-unit layer where the course flattens 4x4x256 into 512: a little less head compute)."""

PERF_ANCHOR = {"tuned": {"seed_cnn5": 17948.4, "resnet18": 24692.9, "resnet50": 10965.9},
               "seed": {"seed_cnn5": 3292.2, "resnet50": 1074.1},
               "packed_k1": 16780.8, "packed_k4": 46765.6, "source": "shared/bench/gpu_anchor_2026-11-28.json"}
"""The ceiling measured 2026-11-28 (PERF.md), used only when no ceiling was measured in the same run."""


def read_ceiling(path: str | Path) -> dict[str, Any]:
    """The JSON gpu_ceiling.py writes ($OUT/anchor.json) -> {tuned, seed, packed_k1, packed_k4, gpu, source}.

    tuned: img/s per ceiling model (uint8 on GPU, bf16, channels_last, batch 256);
    seed: img/s per ceiling model of the course-style pipeline (PIL DataLoader, 4 workers, fp32, batch 32);
    packed_k1 / packed_k4: summed img/s of 1 / 4 seed_cnn5 processes sharing the GPU (batch 128).
    """
    return ceiling_from_raw(json.loads(Path(path).read_text()), str(path))


def ceiling_from_raw(raw: dict, source: str) -> dict[str, Any]:
    seed = {k[: -len("_w4")]: v for k, v in raw.get("seed_style_fp32_b32_dataloader_img_s", {}).items() if k.endswith("_w4")}
    return {"tuned": raw.get("tuned_bf16_cl_b256_img_s", {}), "seed": seed,
            "packed_k1": raw.get("packed_seed_cnn5_k1_img_s"), "packed_k4": raw.get("packed_seed_cnn5_k4_img_s"),
            "gpu": raw.get("gpu"), "torch": raw.get("torch"), "source": source}


def ceiling_from_log(text: str, source: str) -> dict[str, Any] | None:
    """What a gpu_ceiling.py run that was stopped early had printed: `tuned M R`, `seed-style M 4 R`, `packed K R [...]`."""
    raw: dict[str, Any] = {"tuned_bf16_cl_b256_img_s": {}, "seed_style_fp32_b32_dataloader_img_s": {}}
    for line in text.splitlines():
        words = line.split("]", 1)[-1].split()
        try:
            if len(words) == 3 and words[0] == "tuned":
                raw["tuned_bf16_cl_b256_img_s"][words[1]] = float(words[2])
            elif len(words) == 4 and words[0] == "seed-style":
                raw["seed_style_fp32_b32_dataloader_img_s"][f"{words[1]}_w{words[2]}"] = float(words[3])
            elif len(words) >= 3 and words[0] == "packed":
                raw[f"packed_seed_cnn5_k{int(words[1])}_img_s"] = float(words[2])
        except ValueError:
            continue
    found = raw["tuned_bf16_cl_b256_img_s"] or raw["seed_style_fp32_b32_dataloader_img_s"] or len(raw) > 2
    return ceiling_from_raw(raw, source + " (partial, from its log)") if found else None


# ---- searches ----------------------------------------------------------------------------


def epoch_clock():
    """A Tune Callback that records, on the driver, every trial's start (time, model, batch size) and
    every reported epoch (time, trial, epoch, val/micro_f1, the Gym's img/s)."""
    from ray.tune import Callback

    from trainable.metrics import PRIMARY_METRIC

    class EpochClock(Callback):
        def __init__(self) -> None:
            self.events: list[dict] = []
            self.starts: dict[str, float] = {}
            self.configs: dict[str, dict] = {}

        def on_trial_start(self, iteration, trials, trial, **info):
            self.starts.setdefault(trial.trial_id, time.time())
            self.configs.setdefault(trial.trial_id, {k: trial.config.get(k) for k in ("model", "batch_size")})

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.events.append({"t": time.time(), "trial": trial.trial_id,
                                "epoch": int(result.get("training_iteration", 0)),
                                "f1": result.get(PRIMARY_METRIC), "img_s": result.get("img_per_s"),
                                "model": trial.config.get("model"), "batch_size": trial.config.get("batch_size")})

    return EpochClock()


def asha_expected_epochs(trials: int, max_t: int, grace: int = 1, rf: int = 3) -> float:
    """Rough trial-epochs of an ASHA search: a 1/rf share of trials passes each rung (grace * rf^k)."""
    rungs = []
    r = grace
    while r < max_t:
        rungs.append(r)
        r *= rf
    edges = rungs + [max_t]
    per_trial = edges[0] + sum((b - a) / rf ** (k + 1) for k, (a, b) in enumerate(zip(edges, edges[1:])))
    return trials * per_trial
