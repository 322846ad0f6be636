"""The cluster a search runs on: Ray started or joined, its nodes, what each trial asks of them.

    record.ray_session = init_ray(None)          # a local Ray (or join: "auto", "host:port")
    trial_slots(["cnn5", "resnet50"], gpus=None, cpus=None, use_gpu=cluster_has_gpu())   # or a SearchError
    tune.with_resources(trainable, functools.partial(trial_resources, gpus=None, cpus=None, use_gpu=True))
    say_gpu_sharing(say)                         # after trial_slots: "GPU sharing: MPS active on 2 of 2 GPU nodes"

A trial's request is one CPU (or --cpus-per-trial) and, on a cluster with GPUs, its model's
GPU share (ModelSpec.gpu_share: small CNNs pack 4 to a GPU) unless --gpus-per-trial says.
A request no single node can meet is refused here, naming what asked for it: Ray itself
only warns and waits forever (and so it does for a fractional GPU request above 1).

Trials that share a GPU run their kernels side by side only under NVIDIA MPS (cluster.yaml starts
its control daemon on every GPU node); without it the processes take turns on the GPU. mps_status
asks each GPU node, with a tiny Ray task that reads two files, whether the daemon is there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from search.options import CPUS_PER_TRIAL, SearchError
from trainable.specs import MODEL_SPECS

RAY_DEFAULT_STORE_SHARE = 0.3
"""Ray's default object store: 30 % of the memory available when it starts (ray_constants)"""
GPU_SHARE = {name: spec.gpu_share for name, spec in MODEL_SPECS.items()}
"""GPU fraction per trial by model when --gpus-per-trial is not given (ModelSpec.gpu_share: small CNNs pack 4 to a GPU)."""


def trial_resources(config: dict, gpus: float | None, cpus: float | None, use_gpu: bool):
    """Tune resources for one trial as a PlacementGroupFactory (what Tune wants from a function)."""
    from ray.tune import PlacementGroupFactory

    return PlacementGroupFactory([resource_request(config.get("model", "cnn5"), gpus, cpus, use_gpu)])


def resource_request(model: str, gpus: float | None, cpus: float | None, use_gpu: bool) -> dict[str, float]:
    request = {"CPU": float(cpus if cpus is not None else CPUS_PER_TRIAL)}
    gpu = gpus if gpus is not None else (GPU_SHARE.get(model, 1.0) if use_gpu else 0)
    if gpu:
        request["GPU"] = float(gpu)
    return request


def trial_slots(models: list[str], gpus: float | None, cpus: float | None, use_gpu: bool,
                nodes: dict[str, dict[str, float]] | None = None) -> int:
    """How many trials of the space's cheapest model the cluster runs at once, counted node by node.

    Refuses a model whose request no single node can meet (Ray itself only warns and waits forever),
    naming what asked for it and what each node has. `nodes` (name -> resources) defaults to the
    connected cluster's.
    """
    nodes = cluster_nodes() if nodes is None else nodes
    slots = []
    for model in models:
        request = resource_request(model, gpus, cpus, use_gpu)
        share = request.get("GPU", 0.0)
        if share > 1 and share != int(share):
            raise SearchError(f"{_asked_by(model, request, gpus, cpus)}: Ray gives a trial a share of one GPU "
                              f"(up to 1) or whole GPUs, never {share:g} (give {int(share)} or {int(share) + 1})")
        per_node = [min(_fits(node.get(k, 0.0), v, k == "GPU") for k, v in request.items()) for node in nodes.values()]
        if not any(per_node):
            have = ", ".join(f"node {name} ({_amounts(node) or 'no CPU or GPU'})" for name, node in nodes.items())
            raise SearchError(f"{_asked_by(model, request, gpus, cpus)}: no node has {_amounts(request)} "
                              f"(cluster: {have})")
        slots.append(sum(per_node))
    return max(slots)


def _fits(have: float, want: float, per_device: bool) -> int:
    """How many requests of `want` a node's `have` holds; a GPU share below 1 never spans two GPUs (Ray's rule)."""
    # 1e-9: 0.7 GPU / 0.1 per trial is 6.999... in floating point, 7 trials for Ray.
    if per_device and 0 < want < 1 and have >= 1:
        return int(have + 1e-9) * int(1 / want + 1e-9)  # 0.4 of 2 GPUs: 2 per GPU, 4 trials (not 5)
    return int(have / want + 1e-9)


def _asked_by(model: str, request: dict[str, float], gpus: float | None, cpus: float | None) -> str:
    """What set a trial's request: the options given, or else the model's GPU share."""
    causes = []
    if "GPU" in request:
        causes.append(f"--gpus-per-trial {gpus:g}" if gpus is not None else
                      f"{model}'s GPU share {request['GPU']:g} (by model; --gpus-per-trial overrides it)")
    if cpus is not None:
        causes.append(f"--cpus-per-trial {cpus:g}")
    return " with ".join(causes) or f"a {model} trial"


def _amounts(resources: dict[str, float]) -> str:
    """{'CPU': 4.0, 'GPU': 1.0} -> '1 GPU, 4 CPU' (GPU first: it is what trials wait for)."""
    return ", ".join(f"{resources[k]:g} {k}" for k in ("GPU", "CPU") if resources.get(k))


def cluster_nodes() -> dict[str, dict[str, float]]:
    """'<ip>/<node id prefix>' -> CPU and GPU of each alive node (several nodes can share a host)."""
    return {_node_name(n): {k: n["Resources"].get(k, 0.0) for k in ("CPU", "GPU")} for n in _alive_nodes()}


def _alive_nodes() -> list[dict]:
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def _node_name(node: dict) -> str:
    return f"{node['NodeManagerAddress']}/{node['NodeID'][:6]}"


MPS_PIPE_DIR = "/tmp/nvidia-mps"
"""the MPS control daemon's pipe directory when CUDA_MPS_PIPE_DIRECTORY is unset (NVIDIA's default, and cluster.yaml's)"""
MPS_PROBE_TIMEOUT_S = 20.0
"""how long mps_status waits for the nodes' answers (a node's first task starts a worker process: ~1-3 s)"""


def probe_mps(pipe_dir: str | None = None) -> dict:
    """Whether an MPS control daemon serves this host: its pipe `control` exists and its pid file's process lives.

    Reads two files (no CUDA, no nvidia-smi), in the pipe directory every CUDA process of the host would use:
    CUDA_MPS_PIPE_DIRECTORY, else MPS_PIPE_DIR. A daemon that predates the pid file counts by its pipe alone.
    """
    pipe = Path(pipe_dir or os.environ.get("CUDA_MPS_PIPE_DIRECTORY") or MPS_PIPE_DIR)
    control = pipe / "control"
    if not control.exists():
        return {"active": False, "pipe_dir": str(pipe), "why": f"no {control}"}
    try:
        pid = int((pipe / "nvidia-cuda-mps-control.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return {"active": True, "pipe_dir": str(pipe), "why": f"{control} exists (no pid file)"}
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return {"active": False, "pipe_dir": str(pipe), "why": f"{control} is left by daemon pid {pid}, which is gone"}
    except PermissionError:
        pass  # another user's daemon (root's): alive
    return {"active": True, "pipe_dir": str(pipe), "why": f"daemon pid {pid}"}


def mps_status(timeout_s: float = MPS_PROBE_TIMEOUT_S) -> dict[str, dict]:
    """node name (as cluster_nodes) -> probe_mps's answer there, for every alive node with a GPU; {} without GPUs.

    One task per GPU node, pinned to it (NodeAffinitySchedulingStrategy) and asking for no CPU or GPU, so it
    runs beside trials; a node that does not answer in `timeout_s` is {"active": None, "why": ...}.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, num_gpus=0, max_retries=0)(probe_mps)
    refs = {_node_name(n): probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
                                         ).remote() for n in _alive_nodes() if n["Resources"].get("GPU", 0) > 0}
    if not refs:
        return {}
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
    status = {}
    for name, ref in refs.items():
        try:
            status[name] = ray.get(ref) if ref in ready else {"active": None, "why": f"no answer in {timeout_s:g} s"}
        except Exception as exc:  # the probe failed there (a node lost meanwhile): unknown, not a reason to stop
            status[name] = {"active": None, "why": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        if ref not in ready:
            ray.cancel(ref, force=True)
    return status


def say_gpu_sharing(say: Callable[[str], None]) -> None:
    """At a search's start, after trial_slots: the GPU sharing line (nothing on a cluster without GPUs)."""
    line = gpu_sharing_line(mps_status())
    if line:
        say(line)


def gpu_sharing_line(status: dict[str, dict]) -> str | None:
    """One line for the start of a search: MPS on every GPU node, or where not and what that means; None without GPUs."""
    if not status:
        return None
    off = sorted(name for name, s in status.items() if s.get("active") is False)
    unknown = sorted(name for name, s in status.items() if s.get("active") is None)
    if not off and not unknown:
        return f"GPU sharing: MPS active on {len(status)} of {len(status)} GPU node{'s' if len(status) != 1 else ''}"
    parts = []
    if off:
        parts.append(f"no MPS on node{'s' if len(off) > 1 else ''} {', '.join(off)} ({status[off[0]]['why']})")
    if unknown:
        parts.append(f"MPS unknown on {', '.join(unknown)} ({status[unknown[0]]['why']})")
    return (f"GPU sharing: {'; '.join(parts)}: trials sharing a GPU there take turns on it (time-slicing, no kernel "
            f"overlap), so packing adds little throughput; see docs/cluster.md")


def cluster_has_gpu() -> bool:
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0


def init_ray(address: str | None, data_bytes: int = 0) -> dict | None:
    """Start a local Ray (address None) or join a cluster ('auto' or host:port).

    `data_bytes`: the search's decoded images, which the object store holds once per node: a local Ray's store
    is made large enough for them (search/memory.py), a joined cluster's nodes are checked (SearchError).
    Returns what identifies the processes of a local Ray this driver started (search/leftovers.py), so
    that a later resume or `searches` can end them should this driver be killed; None when it joined one.
    """
    import ray

    from search import memory
    from search.console import quiet_ray

    quiet_ray()
    # Short epochs snapshot the experiment often; that is expected, not a bottleneck worth a warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        return None
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    address = address or os.environ.get("LABELTUNE_RAY_ADDRESS")
    if address:
        ray.init(address=address, **kwargs)
        memory.check_nodes(data_bytes, ray.nodes())
        return None
    store = memory.object_store_bytes(data_bytes)
    if store > RAY_DEFAULT_STORE_SHARE * memory.available_bytes():  # Ray's default would spill the data to disk
        kwargs["object_store_memory"] = store
    ray.init(include_dashboard=False, **kwargs)
    from search.leftovers import local_ray_session

    return local_ray_session()
