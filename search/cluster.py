"""The cluster a search runs on: Ray started or joined, its nodes, what each trial asks of them.

    record.ray_session = init_ray(None)          # a local Ray (or join: "auto", "host:port")
    trial_slots(["cnn5", "resnet50"], gpus=None, cpus=None, use_gpu=cluster_has_gpu())   # or a SearchError
    tune.with_resources(trainable, functools.partial(trial_resources, gpus=None, cpus=None, use_gpu=True))

A trial's request is one CPU (or --cpus-per-trial) and, on a cluster with GPUs, its model's
GPU share (ModelSpec.gpu_share: small CNNs pack 4 to a GPU) unless --gpus-per-trial says.
A request no single node can meet is refused here, naming what asked for it: Ray itself
only warns and waits forever.
"""

from __future__ import annotations

import os
from typing import Any

from search.options import CPUS_PER_TRIAL, SearchError
from trainable.specs import MODEL_SPECS

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
        # 1e-9: 0.7 GPU / 0.1 per trial is 6.999... in floating point, 7 trials for Ray.
        per_node = [min(int(node.get(k, 0) / v + 1e-9) for k, v in request.items()) for node in nodes.values()]
        if not any(per_node):
            have = ", ".join(f"node {name} ({_amounts(node) or 'no CPU or GPU'})" for name, node in nodes.items())
            raise SearchError(f"{_asked_by(model, request, gpus, cpus)}: no node has {_amounts(request)} "
                              f"(cluster: {have})")
        slots.append(sum(per_node))
    return max(slots)


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
    import ray

    return {f"{n['NodeManagerAddress']}/{n['NodeID'][:6]}": {k: n["Resources"].get(k, 0.0) for k in ("CPU", "GPU")}
            for n in ray.nodes() if n.get("Alive")}


def cluster_has_gpu() -> bool:
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0


def init_ray(address: str | None) -> dict | None:
    """Start a local Ray (address None) or join a cluster ('auto' or host:port).

    Returns what identifies the processes of a local Ray this driver started (search/leftovers.py), so
    that a later resume or `searches` can end them should this driver be killed; None when it joined one.
    """
    import ray

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
        return None
    ray.init(include_dashboard=False, **kwargs)
    from search.leftovers import local_ray_session

    return local_ray_session()
