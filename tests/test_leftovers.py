"""What a killed driver's local Ray leaves behind (search/leftovers.py), and how it is found and ended.

The first test kills a real driver that started its own small Ray, in its own temp folder, and
lists what survives; the others test the matching on harmless fake processes (`sleep` under a
`ray::` title, a script in a `ray` folder) whose arguments or stdout name a fake session folder.
Every process a test starts is ended by pid when it ends, pass or fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from search import leftovers
from search.leftovers import Leftover, describe, driver_alive, end_leftovers, find_leftovers

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

DRIVER = """
import json, os, sys, time
import ray
from search.leftovers import local_ray_session

# search.cluster.init_ray's local Ray, smaller, in a temp folder of its own (sessions stay apart)
ray.init(include_dashboard=False, num_cpus=1, object_store_memory=100 * 1024**2,
         log_to_driver=False, configure_logging=False, _temp_dir=sys.argv[2])
out = sys.argv[1]
with open(out + ".tmp", "w") as f:
    json.dump(local_ray_session(), f)
os.replace(out + ".tmp", out)
time.sleep(600)
"""


def _env() -> dict[str, str]:
    """The driver starts its own Ray: no address from the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "LABELTUNE_RAY_ADDRESS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _wait_for(condition, what: str, timeout: float = 60.0, proc: subprocess.Popen | None = None,
              log: Path | None = None):
    """condition()'s first true value; fails when `proc` exits first (with the tail of its `log`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"exited {proc.returncode} before {what}:\n{tail}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _descendants(root: int) -> dict[int, tuple[int, int]]:
    """pid -> (start ticks, depth below root) of every process under root, from /proc."""
    parent = {pid: leftovers._ppid(pid) for pid in leftovers._all_pids()}
    found, frontier, depth = {}, [root], 0
    while frontier:
        depth += 1
        frontier = [pid for pid, ppid in parent.items() if ppid in frontier]
        for pid in frontier:
            start = leftovers._start_ticks(pid)
            if start is not None:
                found[pid] = (start, depth)
    return found


def _alive(pid: int, start: int) -> bool:
    return leftovers._alive(Leftover(pid, "", start))


def _kill(pid: int, start: int) -> None:
    if _alive(pid, start):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _raylet_children(driver_pid: int) -> dict[int, tuple[int, int]] | None:
    """The driver's process tree once it is two deep (the raylet has started the agents), else None."""
    tree = _descendants(driver_pid)
    return tree if any(depth >= 2 for _, depth in tree.values()) else None


@pytest.mark.timeout(120)
def test_a_killed_driver_leaves_ray_processes_that_are_found_and_ended(record_property):
    temp_dir = tempfile.mkdtemp(prefix="lt-ray-", dir="/tmp")  # short: Ray's socket paths live under it
    out = Path(temp_dir) / "session.json"
    log = Path(temp_dir) / "driver.err"
    with open(log, "w") as err:
        driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(out), temp_dir], env=_env(),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    tree: dict[int, tuple[int, int]] = {}
    try:
        _wait_for(out.exists, "the driver's local_ray_session() file", proc=driver, log=log)
        session = json.loads(out.read_text())
        assert session is not None, "a driver that started its own Ray must get a session"
        assert session["session_dir"].startswith(temp_dir + "/session_")
        assert {"raylet", "gcs_server"} <= {p["name"] for p in session["processes"]}
        assert driver_alive(session)

        # Kill once the raylet has started children: fate-sharing ends the driver's own children only.
        tree = _wait_for(lambda: _raylet_children(driver.pid), "the raylet's children", proc=driver, log=log)
        driver_start = leftovers._start_ticks(driver.pid)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=10)
        assert not driver_alive(session)

        found = find_leftovers(session)
        survivors = {pid for pid, (start, _) in tree.items() if _alive(pid, start)}  # after `found`: only fewer
        listing = ", ".join(f"{p.name} {p.pid}" for p in found)
        print(f"\nleft behind by the killed driver: {listing}")
        record_property("leftovers", listing)
        assert found, "Ray 2.60 leaves its agents behind a killed driver; none survived: did Ray change?"
        assert survivors <= {p.pid for p in found}, "a process of the driver's tree was not found"
        assert all(p.pid in tree or p.start >= driver_start for p in found), "found a process older than the driver"

        ended = end_leftovers(found)
        print(describe(ended, ended=True))
        assert not [p for p in found if leftovers._alive(p)]
        assert set(ended) <= set(found) and ended
        assert find_leftovers(session) == []
    finally:
        if driver.poll() is None:
            tree.update(_descendants(driver.pid))
            driver.kill()
            driver.wait(timeout=10)
        targets = {pid: start for pid, (start, _) in tree.items()}
        # Whatever Ray process names this test's temp folder (the parent of its session folder) is this test's.
        sweep = {"session_dir": temp_dir, "host": socket.gethostname(), "driver_pid": driver.pid, "processes": []}
        targets.update({p.pid: p.start for p in find_leftovers(sweep)})
        for pid, start in targets.items():
            _kill(pid, start)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.timeout(120)
def test_a_driver_that_joined_a_cluster_has_no_session(ray_address):
    code = ("import json, ray; from search.leftovers import local_ray_session; "
            f"ray.init(address={ray_address!r}, log_to_driver=False, configure_logging=False); "
            "print(json.dumps(local_ray_session()))")
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "null"


# ---- the matching, on fake processes -------------------------------------------------------


@pytest.fixture
def spawn():
    """Start a harmless process (a Popen); every one is killed by pid when the test ends."""
    started: list[subprocess.Popen] = []

    def start(args: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _session(session_dir: Path, processes: list[dict] | None = None) -> dict:
    (session_dir / "logs").mkdir(parents=True, exist_ok=True)
    return {"session_dir": str(session_dir), "host": socket.gethostname(), "driver_pid": os.getpid(),
            "driver_start": leftovers._start_ticks(os.getpid()), "processes": processes or []}


def _titled(spawn, title: str, stdout_file: Path | None = None, ignore_term: bool = False) -> subprocess.Popen:
    """`sleep 60` under a Ray-like title (as Ray's agents and workers are), once the title is set."""
    trap = "trap '' TERM; " if ignore_term else ""
    if stdout_file:
        stdout_file.parent.mkdir(parents=True, exist_ok=True)
    out = open(stdout_file, "w") if stdout_file else subprocess.DEVNULL
    proc = spawn(["bash", "-c", f"{trap}exec -a {title} sleep 60"], stdout=out)
    if stdout_file:
        out.close()
    _wait_for(lambda: leftovers._argv(proc.pid)[:1] == [title], f"the title {title}")
    return proc


def _script_in_ray_folder(tmp_path: Path) -> Path:
    script = tmp_path / "site-packages" / "ray" / "fake_daemon.py"
    script.parent.mkdir(parents=True)
    script.write_text("import time\ntime.sleep(60)\n")
    return script


@pytest.mark.timeout(60)
def test_finds_ray_processes_by_arguments_open_files_and_recorded_pids(tmp_path, spawn):
    session_dir = tmp_path / "session_fake_1"
    agent = _titled(spawn, "ray::FakeAgent", stdout_file=session_dir / "logs" / "raylet.out")
    daemon = spawn([sys.executable, str(_script_in_ray_folder(tmp_path)), f"--log-dir={session_dir}/logs"])
    recorded = spawn(["sleep", "60"])
    record = {"pid": recorded.pid, "name": "sleep", "start": leftovers._start_ticks(recorded.pid)}

    found = {p.pid: p.name for p in find_leftovers(_session(session_dir, [record]))}

    assert found == {agent.pid: "ray::FakeAgent", daemon.pid: "fake_daemon", recorded.pid: "sleep"}


@pytest.mark.timeout(60)
def test_leaves_alone_what_only_resembles_the_session(tmp_path, spawn):
    session_dir = tmp_path / "session_fake_1"
    session = _session(session_dir)
    # A non-Ray process that names the session (a `tail -f` of its log), a Ray process of another
    # session whose name starts like this one, a reused pid (same pid, other start time).
    spawn([sys.executable, "-c", "import time; time.sleep(60)", f"{session_dir}/logs/raylet.out"])
    other = tmp_path / "session_fake_10"
    (other / "logs").mkdir(parents=True)
    _titled(spawn, "ray::OtherAgent", stdout_file=other / "logs" / "raylet.out")
    spawn([sys.executable, str(_script_in_ray_folder(tmp_path)), f"--session-dir={other}"])
    reused = spawn(["sleep", "60"])
    session["processes"] = [{"pid": reused.pid, "name": "raylet", "start": leftovers._start_ticks(reused.pid) - 1}]

    assert find_leftovers(session) == []
    assert find_leftovers({**session, "host": "another-host"}) == []


@pytest.mark.timeout(60)
def test_end_leftovers_terms_then_kills(tmp_path, spawn):
    session_dir = tmp_path / "session_fake_2"
    log = session_dir / "logs"
    session = _session(session_dir)
    polite = _titled(spawn, "ray::Polite", stdout_file=log / "a.out")
    stubborn = _titled(spawn, "ray::Stubborn", stdout_file=log / "b.out", ignore_term=True)  # needs SIGKILL
    found = find_leftovers(session)
    assert {p.pid for p in found} == {polite.pid, stubborn.pid}

    ended = end_leftovers(found, grace_s=0.5)

    assert ended == found
    assert polite.wait(timeout=5) == -signal.SIGTERM
    assert stubborn.wait(timeout=5) == -signal.SIGKILL
    assert find_leftovers(session) == []
    assert end_leftovers(found) == []  # gone: nothing to end, and no pid is signalled twice


def test_describe_names_each_process_and_what_to_do():
    two = [Leftover(1234, "raylet", 1), Leftover(1240, "ray::DashboardAgent", 2)]
    assert describe(two, ended=True) == ("2 processes of the killed driver's Ray were still running "
                                         "(raylet 1234, ray::DashboardAgent 1240); ended them")
    assert describe(two[:1]) == ("1 process of the killed driver's Ray is still running (raylet 1234); "
                                 "end it with: kill 1234")
    assert describe([]) == "no process of the killed driver's Ray is still running"


def test_driver_alive_checks_pid_start_and_host():
    me = {"host": socket.gethostname(), "driver_pid": os.getpid(), "driver_start": leftovers._start_ticks(os.getpid())}
    assert driver_alive(me)
    assert not driver_alive({**me, "driver_start": me["driver_start"] - 1})  # the pid was reused
    assert not driver_alive({**me, "host": "another-host"})


@pytest.mark.timeout(60)
def test_the_module_imports_no_ray():
    code = "import sys, search.leftovers; assert 'ray' not in sys.modules, 'search.leftovers imported ray'"
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.timeout(900)  # two drivers' own Ray starts: 300 s ran out with two busy loops beside them
def test_searches_names_what_a_killed_search_driver_left_and_its_resume_ends_them(tmp_path, synth_dir, labeltune_home):
    """Issue 22 (leftovers): a real `labeltune search` with its own local Ray, killed (its pid only) while trial 1 is
    held; `searches` names the processes it left, `search --resume` ends them and finishes the search."""
    from conftest import BIN

    from search.record import SearchRecord
    from trainable.hold import HOLD_ENV

    temp_dir = tempfile.mkdtemp(prefix="lt-ray-", dir="/tmp")  # short: Ray's socket paths live under it
    env = {**_env(), "RAY_TMPDIR": temp_dir}  # this test's Ray sessions apart from every other
    hold = tmp_path / "hold"
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"preset": "quick", "image_size": 32, "width": [0.25], "model": ["cnn4"],
                                 "batch_size": [32]}))
    args = ["--data", str(synth_dir), "--space", str(space), "--trials", "1", "--epochs", "2", "--name", "own",
            "--no-track"]
    driver = subprocess.Popen([str(BIN / "labeltune"), "search", *args], env={**env, HOLD_ENV: f"{hold}:1:1"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    found: list[Leftover] = []
    try:
        _wait_for(lambda: (hold / "held").exists(), "trial 1 held", timeout=240, proc=driver)
        os.kill(driver.pid, signal.SIGKILL)  # the driver alone, as `kill -9 PID` does
        driver.wait(timeout=10)
        session = SearchRecord.read(labeltune_home / "runs" / "own").ray_session
        assert session and session["session_dir"].startswith(temp_dir)
        found = find_leftovers(session)
        assert found, "Ray 2.60 leaves its agents behind a killed driver; none survived: did Ray change?"
        for process in found:  # frozen: they cannot exit on their own (~60 s) before the resume ends them
            os.kill(process.pid, signal.SIGSTOP)
        listing = subprocess.run([str(BIN / "labeltune"), "searches"], env=env, capture_output=True, text=True)
        assert listing.returncode == 0 and "interrupted" in listing.stdout
        assert "processes of the killed driver's Ray" in listing.stderr and str(found[0].pid) in listing.stderr

        resumed = subprocess.run([str(BIN / "labeltune"), "search", "--resume", "own"], env=env, capture_output=True,
                                 text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "ended them" in resumed.stdout, resumed.stdout
        assert not [p for p in found if leftovers._alive(p)]
        assert SearchRecord.read(labeltune_home / "runs" / "own").status == "finished"
    finally:
        (hold / "release").touch()
        if driver.poll() is None:
            driver.kill()
        sweep = {"session_dir": temp_dir, "host": socket.gethostname(), "driver_pid": driver.pid, "processes": []}
        end_leftovers([*found, *find_leftovers(sweep)])
        shutil.rmtree(temp_dir, ignore_errors=True)
