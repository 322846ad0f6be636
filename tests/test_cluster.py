"""The cluster: cluster.yaml checked by Ray's validator, and searches on a real multi-node Ray.

The module starts, once, a Ray cluster of three nodes on this host -- a head and two
workers, each a real raylet from its own `ray start --block` (own --temp-dir, own ports,
1 CPU, token auth with a test token) -- and an `mlflow server` as the cluster's tracking
server. Searches join it as a user would (`labeltune search --address HOST:PORT
--tracking-uri http://...`), jobs go through the head's dashboard (`labeltune submit`).
At the end it stops exactly what it started: SIGTERM to each `ray start` (which stops its
node), then SIGKILL to every process recorded under it that is still alive, and the MLflow
server's own process group. Never `ray stop`: it would stop every Ray on the host.

Faults: a worker node lost mid-trial (its raylet SIGKILLed), the driver SIGKILLed then
resumed, the tracking server unreachable at the start. One search serves three checks
(spread over nodes, no image read off the driver, a lost node) because a search costs
one to two minutes here.

`--concurrency 3` in the searches: with an Optuna searcher and no limiter, Tune starts one
trial actor at a time (max pending trials 1), so a short search would never leave the head.

Costs on 2 cores: the cluster ~45 s to start, ~15 s to stop; each search 1-2 minutes.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from conftest import BIN, REPO, run_cli
from helpers_truth import one_truth

from search.catalog import trial_results
from trainable.hold import HOLD_ENV

SPACE = {"preset": "quick", "image_size": 32, "width": [0.25], "model": ["cnn3bn"], "batch_size": [32]}
WORKERS = ("worker_a", "worker_b")


# ---- cluster.yaml ---------------------------------------------------------------------------------


def prepared(name: str) -> tuple[dict, dict]:
    """(raw YAML, the config as `ray up` sees it).

    Offline: prepare_config only merges the provider's defaults.yaml shipped with Ray (no boto3 call, no
    credentials); filling subnets, key pairs and IAM roles happens later, in `ray up`'s bootstrap step.
    """
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((REPO / name).read_text())
    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    return raw, config


def start_commands(config: dict) -> list[str]:
    return config["head_start_ray_commands"] + config["worker_start_ray_commands"]


@pytest.mark.timeout(60)
def test_cluster_yaml_validates():
    raw, config = prepared("cluster.yaml")
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    assert config["provider"]["type"] == "aws" and workers
    assert "GPU" not in head["resources"], "trials belong on the GPU nodes"
    for name, node_type in workers.items():
        gpus = node_type["resources"].get("GPU")
        assert isinstance(gpus, int) and gpus >= 1, f"{name}: GPU must be a whole number per node, got {gpus!r}"
        assert all(isinstance(v, int) for v in node_type["resources"].values()), name
        assert 0 <= node_type["min_workers"] <= node_type["max_workers"] <= config["max_workers"], name
    assert any(t["min_workers"] >= 1 for t in workers.values()), "a search needs a GPU node at its start"

    # The same auth mode on every node and the token they share.
    starts = start_commands(config)
    assert all("RAY_AUTH_MODE=token" in cmd for cmd in starts if "ray start" in cmd)
    assert "~/.ray/auth_token" in config["file_mounts"]
    # labeltune installed from the project's file mount; MLflow on the head, local only, sqlite + served artifacts.
    mount = next(remote for remote, local in config["file_mounts"].items() if local == ".")
    assert any(f"pip install -q {mount}" in cmd for cmd in config["setup_commands"])
    mlflow = next(cmd for cmd in config["head_start_ray_commands"] if "mlflow server" in cmd)
    for part in ("--host 127.0.0.1", "--port 5000", "--backend-store-uri sqlite:///", "--serve-artifacts",
                 "--artifacts-destination s3://"):
        assert part in mlflow, part
    assert "MLFLOW_TRACKING_URI=http://127.0.0.1:5000" in next(c for c in config["head_start_ray_commands"]
                                                                 if "ray start --head" in c)

    # The validator is not a rubber stamp: a fractional GPU per node is refused.
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    bad = copy.deepcopy(raw)
    worker_type = next(t for name, t in bad["available_node_types"].items() if name != bad["head_node_type"])
    worker_type["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(bad))


@pytest.mark.timeout(60)
def test_onprem_cluster_yaml_validates():
    raw, config = prepared("cluster-onprem.yaml")
    assert config["provider"]["type"] == "local" and raw["provider"]["worker_ips"]
    assert all("RAY_AUTH_MODE=token" in cmd for cmd in start_commands(config) if "ray start" in cmd)
    assert any("mlflow server" in cmd and "--host 127.0.0.1" in cmd for cmd in config["head_start_ray_commands"])


# ---- a multi-node cluster on this host ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields after the command name: [state, ppid, ...]


def process_key(pid: int) -> tuple[int, str] | None:
    """(pid, start time): tells a process from a later one that reuses its pid."""
    stat = _proc_stat(pid)
    return (pid, stat[19]) if stat and stat[0] != "Z" else None


def descendants(pid: int) -> set[tuple[int, str]]:
    """pid and every process below it, as process keys (from /proc; no psutil here)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _proc_stat(int(entry))):
            children.setdefault(int(stat[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        if key := process_key(current):
            found.add(key)
        todo.extend(children.get(current, []))
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except OSError:
        return []


class Node:
    """One `ray start --block` process: a Ray node with its own temp dir and log."""

    def __init__(self, name: str, args: list[str], root: Path, env: dict):
        self.name = name
        self.log = root / f"{name}.log"
        self.workdir = root / name  # its processes' cwd: an empty folder, not the repo or the data
        self.workdir.mkdir(exist_ok=True)
        self.proc = subprocess.Popen([str(BIN / "ray"), "start", "--block", "--disable-usage-stats", *args],
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT, env=env,
                                     cwd=self.workdir, start_new_session=True)
        self.seen: set[tuple[int, str]] = set()
        self.raylet_pid: int | None = None
        self.node_id: str | None = None

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"ray start ({self.name}) exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            if "block forever" in self.log.read_text(errors="replace"):
                for pid, _ in descendants(self.proc.pid):
                    args = cmdline(pid)
                    if args and args[0].endswith("/raylet"):
                        self.raylet_pid = pid
                        self.node_id = next(a.split("=", 1)[1] for a in args if a.startswith("--node_id="))
                        self.remember()
                        return
            time.sleep(0.3)
        raise RuntimeError(f"ray start ({self.name}) not ready in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def alive(self) -> bool:
        return self.proc.poll() is None and self.raylet_pid is not None and process_key(self.raylet_pid) is not None

    def remember(self) -> None:
        self.seen |= descendants(self.proc.pid)

    def kill_raylet(self) -> None:
        """Lose the node: SIGKILL its raylet (its `ray start` then ends the node's other processes)."""
        self.remember()
        os.kill(self.raylet_pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.remember()
            self.proc.terminate()  # `ray start --block` stops its node on SIGTERM
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid, started in self.seen:  # workers outlive a killed raylet for a moment; drivers of jobs
            if process_key(pid) == (pid, started):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


class LocalCluster:
    """Head + worker nodes (real raylets) and an MLflow server, all on this host, all stopped by stop()."""

    def __init__(self, root: Path, mlflow_template: Path):
        self.root = root
        self.token = secrets.token_hex(32)
        self.gcs_port, self.dashboard_port, self.mlflow_port = free_port(), free_port(), free_port()
        self.address = f"127.0.0.1:{self.gcs_port}"
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        self.mlflow_uri = f"http://127.0.0.1:{self.mlflow_port}"
        self.storage = root / "home" / "runs"
        env = {k: v for k, v in os.environ.items()
               if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "LABELTUNE_RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
        env.update({
            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token,  # every node, driver and client agree
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "LABELTUNE_HOME": str(root / "home"), "LABELTUNE_CACHE": str(root / "cache"),
            "TUNE_GLOBAL_CHECKPOINT_S": "1", "RAY_DEDUP_LOGS": "0",
        })
        self.env = env
        self.nodes: dict[str, Node] = {}
        self.mlflow: subprocess.Popen | None = None
        (root / "home").mkdir(exist_ok=True)
        shutil.copy(mlflow_template, root / "mlflow.db")  # migrated once per session (a new one costs seconds)

    # ---- start ----

    def _temp_dir(self, name: str) -> str:
        # Short: Ray's socket paths live under it (108-byte limit).
        return str(Path(os.environ.get("TMPDIR", "/tmp")) / f"lt-{self.token[:6]}-{name}")

    def start(self) -> None:
        self.start_mlflow()
        self.nodes["head"] = Node("head", [
            "--head", "--port", str(self.gcs_port), "--num-cpus", "1", "--resources", '{"head": 1}',
            "--object-store-memory", "100000000", "--include-dashboard", "true", "--dashboard-port",
            str(self.dashboard_port), "--ray-client-server-port", str(free_port()),
            "--dashboard-agent-listen-port", str(free_port()), "--min-worker-port", "0", "--max-worker-port", "0",
            "--temp-dir", self._temp_dir("head"),
        ], self.root, {**self.env, "MLFLOW_TRACKING_URI": self.mlflow_uri})  # the head's env reaches job drivers
        self.nodes["head"].wait_ready()
        with ThreadPoolExecutor(len(WORKERS)) as pool:
            list(pool.map(self.add_worker, WORKERS))
        self.wait_mlflow()
        self.wait_nodes(len(self.nodes))

    def add_worker(self, name: str) -> Node:
        node = Node(name, [
            "--address", self.address, "--num-cpus", "1", "--resources", json.dumps({name: 1}),
            "--object-store-memory", "100000000", "--dashboard-agent-listen-port", str(free_port()),
            "--min-worker-port", "0", "--max-worker-port", "0", "--temp-dir", self._temp_dir(name),
        ], self.root, self.env)
        self.nodes[name] = node
        node.wait_ready()
        return node

    def ensure_workers(self) -> None:
        """Bring back a worker node an earlier test killed."""
        lost = [name for name in WORKERS if not self.nodes[name].alive()]
        for name in lost:
            self.nodes[name].stop()
            self.add_worker(name)
        if lost:
            self.wait_nodes(len(self.nodes))

    def start_mlflow(self) -> None:
        env = {**self.env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job-runner processes on 2 cores
        self.mlflow = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--serve-artifacts", "--artifacts-destination", str(self.root / "mlartifacts"),
             "--host", "127.0.0.1", "--port", str(self.mlflow_port), "--workers", "1"],
            stdout=(self.root / "mlflow.log").open("w"), stderr=subprocess.STDOUT, env=env, cwd=self.root,
            start_new_session=True)

    def wait_mlflow(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.mlflow.poll() is None, (self.root / "mlflow.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{self.mlflow_uri}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"mlflow server not up in {timeout} s:\n{(self.root / 'mlflow.log').read_text()[-3000:]}")

    def wait_nodes(self, count: int, timeout: float = 60) -> None:
        """Until the head's state API lists `count` alive nodes."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                nodes = self.api("/api/v0/nodes?limit=100")["data"]["result"]["result"]
                if sum(1 for n in nodes if n["state"] == "ALIVE") >= count:
                    return
            except (OSError, KeyError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"fewer than {count} alive nodes after {timeout} s")

    # ---- use ----

    def api(self, path: str):
        """GET the head's dashboard API with the cluster's token (stdlib only: no Ray auth state in this process)."""
        request = urllib.request.Request(self.dashboard + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def jobs(self) -> list[dict]:
        return self.api("/api/jobs/")

    def worker_ids(self) -> dict[str, str]:
        """node id -> worker name, of the worker nodes alive now."""
        return {node.node_id: name for name, node in self.nodes.items() if name != "head" and node.alive()}

    def stop(self) -> None:
        for name in reversed(list(self.nodes)):  # workers first, the head (GCS) last
            try:
                self.nodes[name].stop()
            except Exception as e:  # noqa: BLE001 - stop the rest anyway
                print(f"stopping {name}: {e}")
        if self.mlflow is not None and self.mlflow.poll() is None:
            os.killpg(self.mlflow.pid, signal.SIGTERM)  # its own session: only the server and its workers
            try:
                self.mlflow.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.mlflow.pid, signal.SIGKILL)
                self.mlflow.wait(10)
        for name in self.nodes:
            shutil.rmtree(self._temp_dir(name), ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, _mlflow_template):
    root = tmp_path_factory.mktemp("cluster")
    cluster = LocalCluster(root, _mlflow_template)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def cluster_data(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset folder, space file) owned by this module: a test renames the data folder mid-search."""
    from trainable import synth

    root = tmp_path_factory.mktemp("cluster-data")
    synth.write_dataset(root / "data", n=240, test=5, seed=0, progress=False)
    space = root / "space.json"
    space.write_text(json.dumps(SPACE))
    return root / "data", space


def search_args(cluster: LocalCluster, data: Path, space: Path, name: str, trials: int, epochs: int) -> list[str]:
    """A search joining the cluster; ASHA grace = epochs, so every trial runs all its epochs."""
    return ["search", "--address", cluster.address, "--tracking-uri", cluster.mlflow_uri, "--storage",
            str(cluster.storage), "--data", str(data), "--space", str(space), "--trials", str(trials),
            "--epochs", str(epochs), "--grace-period", str(epochs), "--cpus-per-trial", "1", "--concurrency", "3",
            "--name", name]


def start_search(cluster: LocalCluster, args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "labeltune"), *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**cluster.env, **(env or {})}, start_new_session=True)


def wait_until(predicate, timeout: float, driver: subprocess.Popen, log: Path, what: str):
    """Poll predicate() until it returns something truthy; fail early if the driver ends first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if driver.poll() is not None:
            pytest.fail(f"the search ended (exit {driver.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


def finish(driver: subprocess.Popen, log: Path, timeout: float) -> str:
    try:
        driver.wait(timeout)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(10)
    text = log.read_text()
    assert driver.returncode == 0, text[-4000:]
    return text


def rows_of(search: Path) -> dict[str, list[dict]]:
    """trial folder -> result rows (Tune's result.json), {} before the search folder exists."""
    return trial_results(search) if search.exists() else {}


def saved_trials(search: Path) -> dict[str, dict]:
    """trial id -> status, failures, last reported iteration and the iteration of its latest checkpoint, from Tune's
    saved experiment state: what `search --resume` starts from (the checkpoint can lag the result by one save)."""
    # The newest by the timestamp in its name: a resumed search writes a new one (and re-uploads the old one at the
    # end, so modification times do not tell).
    states = sorted(search.glob("experiment_state-*.json"))
    if not states:
        return {}
    try:
        data = json.loads(states[-1].read_text())
    except (OSError, ValueError):  # being replaced right now
        return {}
    out = {}
    for trial_json, runner_json in data["trial_data"]:
        trial, runner = json.loads(trial_json), json.loads(runner_json)
        manager = pickle.loads(bytes.fromhex(runner["checkpoint_manager"]["value"]))  # Tune's cloudpickle fallback
        latest = manager.latest_checkpoint_result
        out[trial["trial_id"]] = {
            "status": trial["status"], "failures": runner.get("num_failures", 0),
            "iteration": (runner.get("last_result") or {}).get("training_iteration", 0),
            "checkpoint": latest.metrics.get("training_iteration", 0) if latest else 0,
        }
    return out


def iterations(rows: list[dict]) -> list[int]:
    return [r["training_iteration"] for r in rows]


def mlflow_runs(cluster: LocalCluster, name: str):
    from search.tracking.runs import find_search_runs

    return find_search_runs(cluster.mlflow_uri, name)


def parent_count(cluster: LocalCluster, name: str) -> int:
    from mlflow import MlflowClient

    client = MlflowClient(cluster.mlflow_uri)
    experiment = client.get_experiment_by_name("labeltune")
    runs = client.search_runs([experiment.experiment_id],
                              f"tags.`labeltune.search` = '{name}' and tags.`labeltune.role` = 'parent'")
    return len(runs)


# ---- tests against the cluster -------------------------------------------------------------------


@pytest.mark.timeout(240)  # includes starting the cluster when it runs first
def test_search_refuses_an_unreachable_tracking_server(cluster, cluster_data):
    data, space = cluster_data
    jobs_before = len(cluster.jobs())
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    args = search_args(cluster, data, space, "no-mlflow", 2, 1)
    args[args.index("--tracking-uri") + 1] = down
    proc = run_cli(*args, env=cluster.env, check=False, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert down in lines[0] and "unreachable" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    # Nothing started: no search folder, and no driver ever joined the cluster.
    assert not (cluster.storage / "no-mlflow").exists()
    assert len(cluster.jobs()) == jobs_before


@pytest.mark.timeout(420)
def test_submit_runs_a_search_as_a_job(cluster, cluster_data, tmp_path):
    data, space = cluster_data
    dash = ["--address", cluster.dashboard]
    # The job's driver runs on the head and gets RAY_ADDRESS from Ray and MLFLOW_TRACKING_URI from the head's env.
    job_args = ["--data", str(data), "--space", str(space), "--storage", str(cluster.storage), "--cpus-per-trial", "1"]
    submitted = run_cli("submit", *dash, "--", *job_args, "--trials", "2", "--epochs", "1", "--name", "job1",
                        env=cluster.env, timeout=60)
    job_id = submitted.stdout.strip()
    assert job_id.startswith("raysubmit_") and "\n" not in job_id, submitted.stdout
    # A second job, stopped at once (pending or just started).
    long_job = run_cli("submit", *dash, "--", *job_args, "--trials", "50", "--epochs", "50", "--name", "job2",
                       env=cluster.env, timeout=60).stdout.strip()
    assert "stopping job" in run_cli("stop", long_job, *dash, env=cluster.env).stdout

    follow = run_cli("logs", job_id, "--follow", *dash, env=cluster.env, timeout=300)
    assert "search job1: 2 trials (0 failed)" in follow.stdout and "best trial:" in follow.stdout
    listed = run_cli("jobs", *dash, env=cluster.env).stdout
    assert any(line.startswith(job_id) and "SUCCEEDED" in line and "labeltune search" in line
               for line in listed.splitlines()), listed
    assert "search job1" in run_cli("logs", job_id, *dash, env=cluster.env).stdout
    deadline = time.time() + 60
    while {j["submission_id"]: j["status"] for j in cluster.jobs()}.get(long_job) != "STOPPED":
        assert time.time() < deadline, cluster.jobs()
        time.sleep(0.5)
    parent, children = mlflow_runs(cluster, "job1")
    assert parent is not None and len(children) == 2

    unknown = run_cli("logs", "raysubmit_nope", *dash, env=cluster.env, check=False)
    assert unknown.returncode == 1 and "no job raysubmit_nope" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1


@pytest.mark.timeout(480)
def test_killed_driver_resumes_on_the_cluster(cluster, cluster_data, tmp_path):
    cluster.ensure_workers()
    data, space = cluster_data
    name, epochs = "driver-lost", 4
    search = cluster.storage / name
    log = tmp_path / "search.log"
    hold = tmp_path / "hold"  # trial 2 waits after epoch 1: the search cannot end before the kill
    driver = start_search(cluster, search_args(cluster, data, space, name, 4, epochs), log,
                          env={HOLD_ENV: f"{hold}:2:1"})
    try:
        def progress():  # in the saved state: one trial complete, another one part way
            saved = saved_trials(search)
            done = [t for t, s in saved.items() if s["status"] == "TERMINATED"]
            part_way = [t for t, s in saved.items() if s["status"] != "TERMINATED" and s["checkpoint"] >= 1]
            return saved if done and part_way else None

        wait_until(lambda: (hold / "held").exists(), 360, driver, log, "trial 2 held after its first epoch")
        saved = wait_until(progress, 360, driver, log, "a completed trial in the saved state")
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(30)
    finally:
        (hold / "release").touch()
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    saved = saved_trials(search)  # what resume starts from
    before = rows_of(search)
    completed = [t for t, s in saved.items() if s["status"] == "TERMINATED"]
    assert completed

    args = ["search", "--resume", name, "--address", cluster.address, "--tracking-uri", cluster.mlflow_uri,
            "--storage", str(cluster.storage)]
    run_cli(*args, env=cluster.env, timeout=360)

    after = rows_of(search)
    final = saved_trials(search)
    assert len(after) == 4 and all(s["status"] == "TERMINATED" for s in final.values()), final
    for trial in completed:  # not rerun: the very same rows
        assert after[f"trial_{trial}"] == before[f"trial_{trial}"], trial
    for trial, state in saved.items():
        rows = iterations(after[f"trial_{trial}"])
        assert rows[-1] == epochs and len(set(rows)) == epochs, (trial, rows)
        if state["status"] != "TERMINATED" and state["checkpoint"]:  # resumed from its checkpoint, not from epoch 1
            resumed = rows[len(before.get(f"trial_{trial}", [])):]
            assert resumed and resumed[0] == state["checkpoint"] + 1, (trial, state, rows)

    parent, children = mlflow_runs(cluster, name)
    assert parent_count(cluster, name) == 1 and parent.info.status == "FINISHED"
    trial_ids = [c.data.tags["labeltune.trial_id"] for c in children]
    assert sorted(trial_ids) == sorted(t[len("trial_"):] for t in after), trial_ids
    assert [c.info.status for c in children] == ["FINISHED"] * 4
    truth = one_truth(search, cluster.mlflow_uri)  # every store: finished, 4 trials, one best
    assert truth["status"] == "finished" and truth["counts"]["finished"] == 4


@pytest.mark.timeout(480)
def test_search_spreads_over_nodes_reads_no_images_there_and_survives_a_lost_node(cluster, cluster_data, tmp_path):
    """One search for three things (a search costs a minute or two here): trials run on several nodes; no trial
    reads an image file (the data travels through the object store); a worker node lost mid-trial costs no trial."""
    cluster.ensure_workers()
    data, _ = cluster_data
    # Trials slow enough (64 px, half width, 6 epochs) that a poll finds one mid-way on a worker, idle machine too.
    space = tmp_path / "slow-space.json"
    space.write_text(json.dumps({**SPACE, "image_size": 64, "width": [0.5]}))
    cache = Path(cluster.env["LABELTUNE_CACHE"])
    name, epochs = "node-lost", 6
    search = cluster.storage / name
    log = tmp_path / "search.log"
    workers = cluster.worker_ids()
    driver = start_search(cluster, search_args(cluster, data, space, name, 4, epochs), log)
    hidden = []
    try:
        # Once a trial has reported, the driver has decoded the data and put it in the object store. Hide the image
        # folder and the decode cache: the trials still to start and the one restarted on another node must do
        # without them.
        wait_until(lambda: any(rows_of(search).values()), 360, driver, log, "the first result")
        for folder in (data, cache) if cache.exists() else (data,):
            folder.rename(folder.with_name(folder.name + ".hidden"))
            hidden.append(folder)

        def victim():  # a trial on a worker node, with a result and epochs to go
            for trial, rows in rows_of(search).items():
                if rows and rows[-1]["node_id"] in workers and rows[-1]["training_iteration"] <= epochs - 2:
                    return trial, rows[-1]["node_id"], rows[-1]["training_iteration"]
            return None

        trial, lost_node, reached = wait_until(victim, 360, driver, log, "a trial with progress on a worker node")
        cluster.nodes[workers[lost_node]].kill_raylet()
        finish(driver, log, 360)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        for folder in hidden:
            folder.with_name(folder.name + ".hidden").rename(folder)

    rows = rows_of(search)
    final = saved_trials(search)
    # None lost: every trial ran all its epochs (ASHA's grace = epochs) and ended TERMINATED, none in ERROR.
    assert len(rows) == 4 and all(s["status"] == "TERMINATED" for s in final.values()), final
    assert all(iterations(r)[-1] == epochs for r in rows.values()), {t: iterations(r) for t, r in rows.items()}
    nodes = {row["node_id"] for r in rows.values() for row in r}
    assert len(nodes) >= 2 and nodes & set(workers), (nodes, workers)
    # The trial on the lost node failed once and continued elsewhere from its last checkpoint.
    moved = rows[trial]
    assert final[trial[len("trial_"):]]["failures"] >= 1
    its = iterations(moved)
    assert its.count(1) == 1 and its == sorted(its), its  # never from epoch 1 again
    # (The trial may report another epoch between the poll that picked it and the kill.)
    last_there = max(r["training_iteration"] for r in moved if r["node_id"] == lost_node)
    elsewhere = [r for r in moved if r["node_id"] != lost_node]
    assert last_there >= reached and elsewhere, its
    assert 1 < elsewhere[0]["training_iteration"] <= last_there + 1, (last_there, its)

    # The tracking server holds the parent and a child per trial, tagged with the node each trial ended on.
    parent, children = mlflow_runs(cluster, name)
    assert parent is not None and parent.info.status == "FINISHED"
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    tagged = {c.data.tags["labeltune.trial_id"]: c.data.tags.get("labeltune.node_id") for c in children}
    assert tagged == {t[len("trial_"):]: r[-1]["node_id"] for t, r in rows.items()}
    truth = one_truth(search, cluster.mlflow_uri)  # the lost node cost no trial in any store
    assert truth["status"] == "finished" and truth["counts"]["finished"] == 4
