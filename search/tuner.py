"""Build, run and resume a search: Ray Tune + Optuna TPE + ASHA over the Gym trainable.

    result = run_search(SearchOptions(data="d", space="quick", trials=8, epochs=3))
    result = resume_search("search-20261128-101500")

The driver decodes the dataset once and puts it in Ray's object store; trials get it
through `tune.with_parameters`. Trials reuse their worker processes
(`reuse_actors=True`), so the process start-up, the CUDA context and the device copy
of the data (gym._DEVICE_DATA) are paid once per worker, not once per trial.

A search lives in `<storage>/<name>/` (default `$LABELTUNE_HOME/runs/<name>`): Tune's
state plus `labeltune_search.json`, the record of what it was started with (data
folder and fingerprint, split_seed, space and its fingerprint, budget, command line).
Resume and promote find a search by its name there.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search import space as spaces
from trainable import store
from trainable.metrics import PRIMARY_METRIC, PRIMARY_MODE

log = logging.getLogger(__name__)

from search.catalog import RECORD
GPU_SHARE = {"dummy": 0.25, "cnn3bn": 0.25, "cnn4": 0.25, "cnn5": 0.25,
             "efficientnet_lite0": 0.5, "resnet18": 1.0, "resnet50": 1.0}
"""GPU fraction per trial by model when --gpus-per-trial is not given: small CNNs pack 4 to a GPU."""


class SearchError(RuntimeError):
    """A search that cannot start or resume; the message says why."""


@dataclass
class SearchOptions:
    data: str
    """dataset folder in the course layout"""
    space: str = "default"
    """preset name or YAML/JSON file"""
    trials: int = 16
    """number of trials (Tune's num_samples)"""
    epochs: int = 5
    """maximum epochs per trial (ASHA's max_t)"""
    time_budget_min: float | None = None
    """stop starting trials after this many minutes"""
    concurrency: int = 0
    """maximum trials at once (0 = as many as the resources allow)"""
    gpus_per_trial: float | None = None
    """fixed GPU share per trial (default: by model, see GPU_SHARE)"""
    cpus_per_trial: float | None = None
    """fixed CPUs per trial (default 1)"""
    address: str | None = None
    """None: start a local Ray; 'auto' or host:port: join a cluster"""
    name: str | None = None
    """search name (default search-<date>-<time>)"""
    seed: int = 0
    """seed of the TPE sampler and of every trial's initialisation"""
    split_seed: int = 0
    """train/val/test split shared by all trials"""
    track: bool = True
    """log to MLflow"""
    tracking_uri: str | None = None
    """MLflow tracking URI (default sqlite under $LABELTUNE_HOME/mlruns)"""
    storage: str | None = None
    """where searches live: an absolute path or a URI every node reaches"""
    grace_period: int = 1
    """ASHA: epochs every trial gets before it can be stopped"""
    max_failures: int = 1
    """retries of a trial whose worker died (node lost)"""
    limit: int = 0
    """use only the first N images (debugging)"""
    skip_bad_images: bool = False
    """skip unreadable images instead of stopping"""
    verbose: bool = True
    """print the live trial table"""


@dataclass
class SearchResult:
    name: str
    path: str
    best_config: dict
    best_metrics: dict
    top: list[dict] = field(default_factory=list)
    trials: int = 0
    errored: int = 0
    parent_run_id: str | None = None
    tracking_uri: str | None = None
    baselines: dict = field(default_factory=dict)
    """baseline/val/... and baseline/test/... of the search's split (trainable.baselines)"""
    baseline_rule: str = ""
    interrupted: bool = False
    """trials were left unfinished (Ctrl-C): `search --resume NAME` continues them"""


# ---- resources -----------------------------------------------------------------


def trial_dirname(trial) -> str:
    """Short trial folders (Tune's default name carries the whole config)."""
    return f"trial_{trial.trial_id}"


def trial_resources(config: dict, gpus: float | None, cpus: float | None, use_gpu: bool):
    """Tune resources for one trial as a PlacementGroupFactory (what Tune wants from a function)."""
    from ray.tune import PlacementGroupFactory

    return PlacementGroupFactory([resource_request(config.get("model", "cnn5"), gpus, cpus, use_gpu)])


def resource_request(model: str, gpus: float | None, cpus: float | None, use_gpu: bool) -> dict[str, float]:
    request = {"CPU": float(cpus if cpus is not None else 1)}
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


def init_ray(address: str | None) -> None:
    """Start a local Ray (address None) or join a cluster ('auto' or host:port)."""
    import ray

    # Short epochs snapshot the experiment often; that is expected, not a bottleneck worth a warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    address = address or os.environ.get("LABELTUNE_RAY_ADDRESS")
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(include_dashboard=False, **kwargs)


def pretrained_available() -> tuple[str, ...]:
    """Backbones whose ImageNet weights are here: efficientnet_lite0 via its package, resnets if in the hub cache."""
    import torch

    from trainable.models import PretrainedWeightsMissing, efficientnet_lite0_weights_path

    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    found = []
    try:
        if efficientnet_lite0_weights_path().is_file():
            found.append("efficientnet_lite0")
    except (ImportError, PretrainedWeightsMissing):
        pass  # its weights package is missing: efficientnet_lite0 trains from scratch
    for model, files in {"resnet18": ["resnet18-f37072fd.pth"],
                         "resnet50": ["resnet50-11ad3fa6.pth", "resnet50-0676ba61.pth"]}.items():
        if any((checkpoints / f).is_file() for f in files):
            found.append(model)
    return tuple(found)


# ---- the record of a search ----------------------------------------------------


NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
"""a search name is one path component: letters, digits, '_', '.', '-'"""


def check_name(name: str) -> None:
    """Refuse a search name that is not a single safe folder name (it becomes runs/<name>/)."""
    if not NAME_PATTERN.match(name):
        raise SearchError(f"--name {name!r}: use up to 100 letters, digits, '_', '.' and '-', "
                          f"starting with a letter or digit (it names the folder runs/<name>)")


def search_dir(name: str, storage: str | None = None) -> Path:
    """Where search `name` lives: `<storage>/<name>`, by default `$LABELTUNE_HOME/runs/<name>`."""
    check_name(name)
    if storage and "://" in storage:
        # The record, resume and promotion read this folder with local file APIs: a URI would silently
        # land on the driver's disk. Clusters mount shared storage (NFS/EFS) and pass its path.
        raise SearchError(f"--storage {storage}: URIs are not supported yet; mount the shared storage on every "
                          f"node (NFS, EFS, s3fs) and pass the mounted path")
    return Path(storage).resolve() / name if storage else store.runs_dir() / name


def read_record(path: Path) -> dict:
    record_file = Path(path) / RECORD
    if not record_file.is_file():
        raise SearchError(f"{path}: no search found here (no {RECORD})")
    return json.loads(record_file.read_text())


def write_record(path: Path, record: dict) -> None:
    store.write_json(path / RECORD, record)


def git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# ---- run / resume --------------------------------------------------------------


def load_trial_data(data_dir: str, limit: int, skip_bad_images: bool):
    """Load and decode the dataset once on the driver (the decode cache makes a second search instant).

    Always RGB: gray trials convert on the device, so one array serves every trial.
    """
    from trainable import data as data_mod
    from trainable.trial import TrialData

    dataset = data_mod.load(data_dir, skip_bad_images=skip_bad_images)
    images = data_mod.decode(dataset, "rgb")
    if limit:
        images, targets = images[:limit], dataset.targets[:limit]
    else:
        targets = dataset.targets
    import numpy as np

    return dataset, TrialData(np.ascontiguousarray(images), np.ascontiguousarray(targets), dataset.labels, dataset.fingerprint)


def search_baselines(data, split_seed: int) -> tuple[str, dict]:
    """(what the micro-F1 baseline predicts, baseline figures of val and test) on the split every trial uses."""
    from trainable.baselines import BaselineError, for_splits
    from trainable.config import TrainConfig
    from trainable.data import split

    splits = dict(zip(("train", "val", "test"), split(len(data.targets), TrainConfig().split_fractions, split_seed)))
    try:
        base, figures = for_splits(data.targets, splits, data.labels)
    except BaselineError as exc:
        sizes = ", ".join(f"{name} {len(idx)}" for name, idx in splits.items())
        raise SearchError(f"{len(data.targets)} images split into {sizes}: {exc}") from exc
    return base.describe(), figures


def build_tuner(opts: SearchOptions, record: dict, trial_data, callbacks: list, restore_path: Path | None = None, *,
                sampler=None, scheduler=None, baseline_points: bool = True):
    """The Tuner: OptunaSearch (TPE) + ASHA + per-model resources + checkpoints scored by PRIMARY_METRIC.

    `sampler` (an optuna sampler), `scheduler` (a Tune scheduler) and `baseline_points=False`
    replace TPE, ASHA and the space's baseline points: bench/search_efficiency.py's random arms
    are this Tuner with only those swapped.
    """
    from optuna.samplers import TPESampler
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from trainable.trial import make_trainable

    use_gpu = cluster_has_gpu()
    resources = functools.partial(trial_resources, gpus=opts.gpus_per_trial, cpus=opts.cpus_per_trial, use_gpu=use_gpu)
    trainable = tune.with_resources(make_trainable(trial_data), resources)
    if restore_path is not None:
        tuner = tune.Tuner.restore(str(restore_path), trainable=trainable, resume_unfinished=True, resume_errored=True)
        # Tune restores the callbacks pickled at the start; give this driver fresh ones (its tracking URI).
        tuner._local_tuner.get_run_config().callbacks = callbacks
        return tuner

    space = record["space"]
    points = spaces.points_to_evaluate(space, tuple(record["pretrained_models"])) if baseline_points else []
    if sampler is None:
        # Optuna's default of 10 random start-up trials would make a 16-trial search mostly random.
        startup = max(2, min(10, opts.trials // 4))
        sampler = TPESampler(seed=opts.seed, n_startup_trials=startup, multivariate=True, group=True)
    searcher = OptunaSearch(
        space=spaces.make_define_by_run(space, record["constants"], tuple(record["pretrained_models"])),
        metric=PRIMARY_METRIC, mode=PRIMARY_MODE,  # a define-by-run space leaves Tune's param_space empty
        points_to_evaluate=points or None, sampler=sampler,
    )
    # Tune keeps only one trial pending for a custom searcher: without a limiter, trials would start
    # one at a time. The limiter also makes TPE wait for results instead of proposing blindly.
    slots = trial_slots(spaces.choices(space["model"]), opts.gpus_per_trial, opts.cpus_per_trial, use_gpu)
    concurrency = opts.concurrency or min(opts.trials, slots)
    searcher = ConcurrencyLimiter(searcher, max_concurrent=max(1, concurrency))
    if scheduler is None:
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=opts.epochs,
                                  grace_period=min(opts.grace_period, opts.epochs), reduction_factor=3)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=PRIMARY_METRIC, mode=PRIMARY_MODE, search_alg=searcher, scheduler=scheduler,
            num_samples=opts.trials, reuse_actors=True, trial_dirname_creator=trial_dirname,
            time_budget_s=opts.time_budget_min * 60 if opts.time_budget_min else None,
        ),
        run_config=tune.RunConfig(
            name=record["name"], storage_path=record["storage"], callbacks=callbacks, verbose=0,
            # Every checkpoint is kept while a trial runs; search.pruning keeps each finished trial's
            # best and latest (Tune's num_to_keep=2 can delete what a resume needs, see pruning.py).
            checkpoint_config=tune.CheckpointConfig(
                checkpoint_score_attribute=PRIMARY_METRIC, checkpoint_score_order=PRIMARY_MODE),
            failure_config=tune.FailureConfig(max_failures=opts.max_failures),
        ),
    )


def _callbacks(opts: SearchOptions, record: dict) -> tuple[list, Any]:
    from search.progress import LiveTable
    from search.pruning import CheckpointPruner

    callbacks: list = [CheckpointPruner(PRIMARY_METRIC, PRIMARY_MODE)]
    tracker = None
    if opts.track:
        from search.tracking import MLflowTracker

        tracker = MLflowTracker(store.tracking_uri(opts.tracking_uri), record["name"], parent_tags={
            "data_fingerprint": record["data_fingerprint"], "data": record["data"],
            "space": record["space_source"], "space_fingerprint": record["space_fingerprint"],
            "budget": f"{opts.trials} trials x {opts.epochs} epochs", "command": record["command"],
            "git_commit": record.get("git_commit") or "", "split_seed": str(opts.split_seed),
        }, max_epochs=opts.epochs, parent_metrics=record.get("baselines", {}))
        callbacks.append(tracker)
    if opts.verbose:
        callbacks.append(LiveTable(max_epochs=opts.epochs, trials=opts.trials))
    return callbacks, tracker


def _check_tracking(opts: SearchOptions) -> None:
    if opts.track:
        from search.tracking import TrackingUnavailable, check_store

        try:
            check_store(store.tracking_uri(opts.tracking_uri))
        except TrackingUnavailable as exc:
            raise SearchError(f"{exc}, or run with --no-track")


def run_search(opts: SearchOptions) -> SearchResult:
    """Start a new search and run it to the end."""
    name = opts.name if opts.name is not None else time.strftime("search-%Y%m%d-%H%M%S")
    space = spaces.load_space(opts.space)
    path = search_dir(name, opts.storage)
    if (path / RECORD).exists():
        raise SearchError(f"a search named {name} already exists in {path.parent}; use --resume {name} or another --name")
    _check_tracking(opts)
    dataset, data = load_trial_data(opts.data, opts.limit, opts.skip_bad_images)
    constants = {"epochs": opts.epochs, "split_seed": opts.split_seed, "seed": opts.seed}
    pretrained = pretrained_available()
    record = {
        "name": name, "storage": str(path.parent), "data": str(Path(opts.data).resolve()),
        "data_fingerprint": dataset.fingerprint, "labels": dataset.labels, "n_images": len(data.targets),
        "split_seed": opts.split_seed, "space_source": opts.space, "space": space,
        "space_fingerprint": spaces.fingerprint(space, constants), "constants": constants,
        "pretrained_models": list(pretrained), "options": dataclasses.asdict(opts),
        "command": " ".join(["labeltune", *sys.argv[1:]]) if sys.argv else "", "git_commit": git_commit(),
        "host": socket.gethostname(), "driver_pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "status": "running",
        "tracking_uri": store.tracking_uri(opts.tracking_uri) if opts.track else None,
    }
    record["baseline_rule"], record["baselines"] = search_baselines(data, opts.split_seed)
    init_ray(opts.address)
    trial_slots(spaces.choices(space["model"]), opts.gpus_per_trial, opts.cpus_per_trial, cluster_has_gpu())  # or refuse
    write_record(path, record)
    callbacks, tracker = _callbacks(opts, record)
    tuner = build_tuner(opts, record, data, callbacks)
    return _finish(tuner, path, record, tracker, time.time())


def resume_search(name: str, address: str | None = None, tracking_uri: str | None = None,
                  storage: str | None = None, space: str | None = None, verbose: bool = True) -> SearchResult:
    """Continue an interrupted search: unfinished and errored trials resume, finished ones are kept."""
    path = search_dir(name, storage)
    record = read_record(path)
    opts = SearchOptions(**{**record["options"], "verbose": verbose})
    if tracking_uri:
        opts.tracking_uri = tracking_uri
    if address:
        opts.address = address
    # The recorded space, not the preset re-read by name: editing a preset must not strand a search.
    now_space = spaces.load_space(space) if space else record["space"]
    if spaces.fingerprint(now_space, record["constants"]) != record["space_fingerprint"]:
        raise SearchError(
            f"the search space of {name} changed since it started ({record['space_source']}); Optuna cannot "
            f"change a study's choices: start a new search instead"
        )
    _check_tracking(opts)
    dataset, data = load_trial_data(record["data"], opts.limit, opts.skip_bad_images)
    if dataset.fingerprint != record["data_fingerprint"]:
        raise SearchError(
            f"the data in {record['data']} changed since {name} started (fingerprint {dataset.fingerprint[:12]} "
            f"!= {record['data_fingerprint'][:12]}); its trials would not compare: start a new search"
        )
    init_ray(opts.address)
    # The cluster may have changed since the start: refuse trials no node can run, as a new search does.
    trial_slots(spaces.choices(record["space"]["model"]), opts.gpus_per_trial, opts.cpus_per_trial, cluster_has_gpu())
    record["status"] = "running"
    record["resumed"] = record.get("resumed", 0) + 1
    record["driver_pid"] = os.getpid()
    write_record(path, record)
    callbacks, tracker = _callbacks(opts, record)
    tuner = build_tuner(opts, record, data, callbacks, restore_path=path)
    return _finish(tuner, path, record, tracker, time.time())


def _finish(tuner, path: Path, record: dict, tracker, started: float) -> SearchResult:
    results = tuner.fit()
    summary = summarize(results)
    # Tune returns normally after Ctrl-C (it saves its state first). Interrupted: a trial neither finished
    # nor failed, or fewer trials than asked for while the time budget (if any) was not used up.
    unfinished = len(results) - results.num_terminated - results.num_errors
    options = record.get("options", {})
    budget_s = (options.get("time_budget_min") or 0) * 60
    short = len(results) < options.get("trials", 0) and (not budget_s or time.time() - started < budget_s)
    summary.interrupted = unfinished > 0 or short
    record.update(status="interrupted" if summary.interrupted else "finished",
                  finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                  best=summary.best_metrics.get(PRIMARY_METRIC), trials_done=summary.trials,
                  wall_s=record.get("wall_s", 0) + time.time() - started)
    write_record(path, record)
    summary.name, summary.path = record["name"], str(path)
    summary.baselines, summary.baseline_rule = record.get("baselines", {}), record.get("baseline_rule", "")
    if tracker is not None:
        summary.parent_run_id, summary.tracking_uri = tracker.parent_run_id, tracker.tracking_uri
    return summary


def summarize(results) -> SearchResult:
    """Best trial over all its epochs (scope='all', not the last epoch of ASHA-stopped trials) and the top 5."""
    rows = []
    errored = 0
    for result in results:
        if result.error is not None:
            errored += 1
        if result.metrics_dataframe is None or PRIMARY_METRIC not in result.metrics_dataframe:
            continue
        frame = result.metrics_dataframe
        best_row = frame.loc[frame[PRIMARY_METRIC].idxmax()]
        rows.append({
            "trial_id": result.metrics.get("trial_id", Path(result.path).name),
            PRIMARY_METRIC: float(best_row[PRIMARY_METRIC]), "best_epoch": int(best_row["training_iteration"]),
            "epochs": int(frame["training_iteration"].max()), "config": result.config, "path": result.path,
        })
    rows.sort(key=lambda r: r[PRIMARY_METRIC], reverse=True)
    if not rows:
        return SearchResult("", "", {}, {}, [], len(results), errored)
    best = results.get_best_result(PRIMARY_METRIC, PRIMARY_MODE, scope="all")
    frame = best.metrics_dataframe
    best_metrics = frame.loc[frame[PRIMARY_METRIC].idxmax()].to_dict()
    return SearchResult("", "", best.config, best_metrics, rows[:5], len(results), errored)
