"""GPU scheduling on a simulated GPU cluster: a Ray node that declares a GPU this host does not have.

`ray start --num-gpus 1` makes Ray schedule by the declared GPU (it hands trials a fake
CUDA_VISIBLE_DEVICES); the space fixes `device: cpu`, so the trials train on the CPU while
their placement is Ray's real one. The node declares 8 CPUs, more than 4 small-CNN trials
need, so that the GPU share (0.25 by model, search.cluster.GPU_SHARE) is what limits them.

Two searches on tiny data at 32 px, each shared by the tests that read it:
- six small-CNN trials with --concurrency 6, so that Ray and not Tune's limiter caps them:
  four at a time on the GPU, six trials in four worker processes, the later trial of a
  worker finding the device copy of the data that the earlier one left;
- two trials of a mixed space (the seed's two random draws: a cnn3bn and a resnet18): the
  resnet takes the whole GPU, so the two never run together.
Concurrency is read from each trial's recorded start (`started_at`) and end (its last
`reported_at`), node by node. The node's `ray start` has CUDA_MPS_PIPE_DIRECTORY pointing at a
folder with a stand-in for the MPS daemon's pipe, as cluster.yaml's GPU nodes have the real one,
so search.cluster.mps_status is checked end to end: a task pinned to the node, reading its files.

Costs on 2 cores (with a benchmark running beside): 1.5-2 minutes in all. The node takes 10-15 s
to start, the small-CNN search 40-50 s (four worker processes import torch at once), the mixed
one 25-35 s (a worker process per model), the refused search ~10 s.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import BIN, run_cli
from test_cluster import Node, free_port

from search.catalog import trial_results
from search.cluster import GPU_SHARE, gpu_sharing_line, probe_mps, trial_slots
from search.options import SearchError

GPUS, CPUS = 1, 8
"""what the simulated node declares"""
SLOTS = int(GPUS / GPU_SHARE["cnn3bn"])
"""small-CNN trials the node runs at once: its GPU, not its CPUs, is the limit"""
SPACE = {"preset": "quick", "image_size": 32, "width": [0.25], "batch_size": [32], "device": "cpu"}


@dataclass
class GpuCluster:
    address: str
    env: dict
    home: Path
    mps_pipe: Path
    """the node's CUDA_MPS_PIPE_DIRECTORY, holding a stand-in `control` pipe"""


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory):
    """One Ray node declaring 1 GPU and 8 CPUs, its own `ray start` (token auth, own ports and temp dir)."""
    root = tmp_path_factory.mktemp("gpu-cluster")
    token = secrets.token_hex(32)
    mps_pipe = root / "nvidia-mps"
    mps_pipe.mkdir()
    os.mkfifo(mps_pipe / "control")  # no pid file: counted by its pipe, as an older daemon's
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "LABELTUNE_RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
                "LABELTUNE_HOME": str(root / "home"), "LABELTUNE_CACHE": str(root / "cache"), "RAY_DEDUP_LOGS": "0",
                "CUDA_MPS_PIPE_DIRECTORY": str(mps_pipe)})
    port = free_port()
    temp_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"lt-{token[:6]}-gpu"  # short: Ray's socket paths live here
    node = Node("head", [
        "--head", "--port", str(port), "--num-gpus", str(GPUS), "--num-cpus", str(CPUS),
        "--object-store-memory", "100000000", "--include-dashboard", "false",
        "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
        "--min-worker-port", "0", "--max-worker-port", "0", "--temp-dir", str(temp_dir),
    ], root, env)
    try:
        node.wait_ready()
        yield GpuCluster(f"127.0.0.1:{port}", env, root / "home", mps_pipe)
    finally:
        node.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def search_args(cluster: GpuCluster, data: Path, space: dict, name: str, trials: int, epochs: int) -> list[str]:
    """A search joining the cluster without MLflow; ASHA grace = epochs, so every trial runs all its epochs."""
    space_file = cluster.home.parent / f"{name}-space.json"
    space_file.write_text(json.dumps({**SPACE, **space}))
    return ["search", "--address", cluster.address, "--no-track", "--data", str(data), "--space", str(space_file),
            "--trials", str(trials), "--epochs", str(epochs), "--grace-period", str(epochs), "--name", name]


def trial_spans(search: Path) -> list[dict]:
    """One dict per trial, by start: model, GPU share, node, pid, start and end (wall clock), data set-up."""
    spans = []
    for trial, rows in trial_results(search).items():
        assert rows, f"{trial} reported nothing"
        model = rows[0]["config"]["model"]
        spans.append({"trial": trial, "model": model, "share": GPU_SHARE[model], "node": rows[0]["node_id"],
                      "pid": rows[0]["pid"], "start": rows[0]["started_at"], "end": rows[-1]["reported_at"],
                      "setup_s": rows[0]["data_setup_s"], "cached": rows[0]["data_cached"]})
    return sorted(spans, key=lambda s: s["start"])


def running_together(spans: list[dict]) -> list[list[dict]]:
    """At each trial's start, the trials running on its node (the most at once is reached at some start)."""
    return [[o for o in spans if o["node"] == s["node"] and o["start"] <= s["start"] < o["end"]] for s in spans]


# ---- small CNNs: packing, worker reuse, the device data cache -----------------------------------


@pytest.fixture(scope="module")
def packed_search(gpu_cluster, synth_dir) -> list[dict]:
    """Six cnn3bn trials of 3 epochs, --concurrency 6: only Ray's placement keeps them from running at once."""
    args = search_args(gpu_cluster, synth_dir, {"model": ["cnn3bn"]}, "packed", trials=6, epochs=3)
    proc = run_cli(*args, "--concurrency", "6", env=gpu_cluster.env, timeout=240)
    assert "GPU sharing: MPS active on 1 of 1 GPU node\n" in proc.stdout, proc.stdout
    return trial_spans(gpu_cluster.home / "runs" / "packed")


@pytest.mark.timeout(300)  # the first test pays for the node and the search
def test_small_cnn_trials_run_four_at_a_time_on_one_declared_gpu(packed_search):
    assert len(packed_search) == 6
    at_once = [len(group) for group in running_together(packed_search)]
    # More would oversubscribe the GPU (the 8 CPUs would allow them); fewer would not pack it.
    assert max(at_once) == SLOTS, at_once


@pytest.mark.timeout(300)
def test_the_trials_run_in_as_many_worker_processes_as_there_are_slots(packed_search):
    pids = [s["pid"] for s in packed_search]
    assert len(set(pids)) == SLOTS < len(pids), pids


@pytest.mark.timeout(300)
def test_a_later_trial_in_a_worker_finds_the_data_already_on_the_device(packed_search):
    by_pid: dict[int, list[dict]] = {}
    for span in packed_search:  # in start order
        by_pid.setdefault(span["pid"], []).append(span)
    first = [spans[0] for spans in by_pid.values()]
    later = [span for spans in by_pid.values() for span in spans[1:]]
    assert later, "no worker ran a second trial"
    assert not any(s["cached"] for s in first), first  # a new process uploads the data
    assert all(s["cached"] and s["setup_s"] < 1 for s in later), later


# ---- a mixed space ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_search(gpu_cluster, synth_dir) -> list[dict]:
    """A cnn3bn and a resnet18 trial (TPE's two random start-up draws with --seed 2), one epoch each."""
    # sgd: resnet18's checkpoint holds one momentum buffer (adam's two would make it 135 MB).
    args = search_args(gpu_cluster, synth_dir, {"model": ["cnn3bn", "resnet18"], "optimizer": ["sgd"]}, "mixed",
                       trials=2, epochs=1)
    run_cli(*args, "--seed", "2", env=gpu_cluster.env, timeout=240)
    return trial_spans(gpu_cluster.home / "runs" / "mixed")


@pytest.mark.timeout(300)
def test_a_resnet_trial_takes_the_whole_gpu_and_a_mixed_space_never_oversubscribes_it(mixed_search):
    assert sorted(s["model"] for s in mixed_search) == ["cnn3bn", "resnet18"], mixed_search
    for group in running_together(mixed_search):
        assert sum(s["share"] for s in group) <= GPUS, group
    resnet = next(s for s in mixed_search if s["model"] == "resnet18")
    beside = [s for s in mixed_search if s is not resnet and s["node"] == resnet["node"]
              and s["start"] < resnet["end"] and resnet["start"] < s["end"]]
    assert not beside, (resnet, beside)


# ---- refusals -----------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_request_no_node_can_meet_is_refused_at_the_start_naming_the_cluster(gpu_cluster, synth_dir):
    args = search_args(gpu_cluster, synth_dir, {"model": ["cnn3bn"]}, "too-big", trials=2, epochs=1)
    proc = run_cli(*args, "--gpus-per-trial", "2", env=gpu_cluster.env, check=False, timeout=90)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --gpus-per-trial 2: no node has 2 GPU, 1 CPU "), proc.stderr
    assert f"({GPUS} GPU, {CPUS} CPU))" in lines[0], lines[0]
    assert not (gpu_cluster.home / "runs" / "too-big").exists()  # refused before anything was written or run


def test_slots_are_counted_node_by_node_and_a_share_no_node_can_give_is_refused():
    nodes = {"10.0.0.1/aaaaaa": {"CPU": 1.0, "GPU": 1.0}, "10.0.0.2/bbbbbb": {"CPU": 8.0, "GPU": 0.0}}
    # 9 CPUs in all, but 1 beside the GPU: one small-CNN trial at a time, not four.
    assert trial_slots(["cnn3bn"], None, None, True, nodes) == 1
    assert trial_slots(["cnn3bn"], None, None, False, nodes) == 9  # no GPUs asked for: CPUs only
    with pytest.raises(SearchError) as refused:
        trial_slots(["resnet18"], None, 2, True, nodes)
    assert str(refused.value) == (
        "resnet18's GPU share 1 (by model; --gpus-per-trial overrides it) with --cpus-per-trial 2: no node has "
        "1 GPU, 2 CPU (cluster: node 10.0.0.1/aaaaaa (1 GPU, 1 CPU), node 10.0.0.2/bbbbbb (8 CPU))")
    cpu_only = {"10.0.0.2/bbbbbb": {"CPU": 8.0, "GPU": 0.0}}
    with pytest.raises(SearchError, match=r"^--gpus-per-trial 0.5: no node has 0.5 GPU, 1 CPU \(cluster: node "
                                          r"10.0.0.2/bbbbbb \(8 CPU\)\)$"):
        trial_slots(["cnn3bn"], 0.5, None, False, cpu_only)


def test_a_gpu_request_ray_could_never_place_is_refused_with_the_nodes_named():
    one_gpu = {"10.0.0.1/aaaaaa": {"CPU": 8.0, "GPU": 1.0}, "10.0.0.2/bbbbbb": {"CPU": 8.0, "GPU": 1.0}}
    with pytest.raises(SearchError) as refused:
        trial_slots(["cnn3bn"], 2, None, True, one_gpu)
    assert str(refused.value) == ("--gpus-per-trial 2: no node has 2 GPU, 1 CPU (cluster: node 10.0.0.1/aaaaaa "
                                  "(1 GPU, 8 CPU), node 10.0.0.2/bbbbbb (1 GPU, 8 CPU))")
    # Ray allocates a share below 1 on one GPU, or whole GPUs: 1.5 would wait forever even on 2 GPUs.
    two_gpus = {"10.0.0.3/cccccc": {"CPU": 16.0, "GPU": 2.0}}
    with pytest.raises(SearchError, match=r"^--gpus-per-trial 1.5: Ray gives a trial a share of one GPU \(up to 1\) "
                                          r"or whole GPUs, never 1.5 \(give 1 or 2\)$"):
        trial_slots(["cnn3bn"], 1.5, None, True, two_gpus)
    assert trial_slots(["cnn3bn"], 2, None, True, two_gpus) == 1
    # A share never spans two GPUs: 0.4 of 2 GPUs is 2 trials per GPU, not 5 (2 / 0.4).
    assert trial_slots(["cnn3bn"], 0.4, None, True, two_gpus) == 4


def test_the_mps_probe_reads_the_daemons_pipe_and_pid_file(tmp_path):
    assert probe_mps(str(tmp_path)) == {"active": False, "pipe_dir": str(tmp_path), "why": f"no {tmp_path / 'control'}"}
    os.mkfifo(tmp_path / "control")
    assert probe_mps(str(tmp_path))["active"] is True  # a daemon that writes no pid file
    (tmp_path / "nvidia-cuda-mps-control.pid").write_text(f"{os.getpid()}\n")
    assert probe_mps(str(tmp_path)) == {"active": True, "pipe_dir": str(tmp_path), "why": f"daemon pid {os.getpid()}"}
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "nvidia-cuda-mps-control.pid").write_text(f"{gone.pid}\n")
    left = probe_mps(str(tmp_path))
    assert left["active"] is False and f"pid {gone.pid}, which is gone" in left["why"], left


def test_the_gpu_sharing_line_says_where_mps_is_missing_and_what_that_means():
    assert gpu_sharing_line({}) is None  # no GPU node, no line
    on = {"active": True, "why": "daemon pid 7"}
    assert gpu_sharing_line({"a": on, "b": on}) == "GPU sharing: MPS active on 2 of 2 GPU nodes"
    off = {"active": False, "why": "no /tmp/nvidia-mps/control"}
    line = gpu_sharing_line({"a": on, "10.0.0.2/bbbbbb": off, "c": {"active": None, "why": "no answer in 20 s"}})
    assert line == ("GPU sharing: no MPS on node 10.0.0.2/bbbbbb (no /tmp/nvidia-mps/control); MPS unknown on c "
                    "(no answer in 20 s): trials sharing a GPU there take turns on it (time-slicing, no kernel "
                    "overlap), so packing adds little throughput; see docs/cluster.md")
    assert "\n" not in line


MPS_DRIVER = """
import json, os, sys
import ray
from search.cluster import mps_status
ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)
before = mps_status()
os.remove(os.path.join(sys.argv[2], "control"))
print(json.dumps([before, mps_status()]))
"""


@pytest.mark.timeout(120)
def test_mps_status_asks_each_gpu_node_in_a_task_that_sees_the_environment_of_its_ray_start(gpu_cluster):
    # The driver's own environment has no CUDA_MPS_PIPE_DIRECTORY: the answer comes from the node's workers.
    env = {k: v for k, v in gpu_cluster.env.items() if k != "CUDA_MPS_PIPE_DIRECTORY"}
    try:
        proc = subprocess.run([sys.executable, "-c", MPS_DRIVER, gpu_cluster.address, str(gpu_cluster.mps_pipe)],
                              capture_output=True, text=True, env=env, timeout=90)
    finally:
        if not (gpu_cluster.mps_pipe / "control").exists():
            os.mkfifo(gpu_cluster.mps_pipe / "control")  # the stand-in stays for whatever runs after
    assert proc.returncode == 0, proc.stderr
    before, after = json.loads(proc.stdout.strip().splitlines()[-1])
    (node,) = before
    assert before[node] == {"active": True, "pipe_dir": str(gpu_cluster.mps_pipe),
                            "why": f"{gpu_cluster.mps_pipe / 'control'} exists (no pid file)"}
    assert after[node]["active"] is False, after
    assert gpu_sharing_line(after).startswith(f"GPU sharing: no MPS on node {node} (no ")
