"""Ray processes that outlive a killed driver: find them by the driver's Ray session, end them.

A `labeltune search` without --address starts its own local Ray. When that driver is killed
(SIGKILL, OOM killer), Linux fate-sharing takes the processes it started directly (gcs_server,
raylet, dashboard, monitor, log_monitor), but not what the raylet started: the dashboard
agent and the runtime env agent live on as orphans (`ray::DashboardAgent`,
`ray::RuntimeEnvAgent`; measured with Ray 2.60 on 2 cores: ~60 s, while they try to report the
raylet's death to the dead GCS), and so do workers for a moment (`ray::IDLE`, a task's worker: 2-3 s).

    session = local_ray_session()          # the driver, right after init_ray; None if it joined a cluster
    record.ray_session = session           # JSON: stored in the search record
    ...
    if not driver_alive(session):          # later, from another process (resume, `searches`)
        found = find_leftovers(session)
        print(describe(end_leftovers(found), ended=True))

A process belongs to the session when it looks like Ray (its title starts with `ray::`, or its
program or script lies in a `ray` folder) and its arguments or open files name the session
folder (`/tmp/ray/session_<date>_<pid>`: Ray's daemons take it in their arguments; the agents
and workers, whose titles Ray rewrites, keep their stdout/stderr in its logs/), or when it is
one of the processes the session had when it was recorded (pid and start time match).
Linux only (/proc); elsewhere nothing is found. Standard library only: `labeltune searches`
reads records without Ray; `local_ray_session` imports Ray when it is called.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Leftover:
    pid: int
    name: str
    """short command name: raylet, gcs_server, ray::DashboardAgent, dashboard, ..."""
    start: int
    """start time in clock ticks after boot (/proc/<pid>/stat field 22): pid and start together name one process"""


# ---- the driver's side -----------------------------------------------------------


def local_ray_session() -> dict | None:
    """What identifies the local Ray this driver started: session folder, host, driver, its processes.

    Call it right after `ray.init` started a local Ray. None when this process joined an existing
    cluster (or Ray is not initialised): that Ray is not the driver's to clean up. JSON-serialisable:
    {"session_dir", "host", "driver_pid", "driver_start", "processes": [{"pid", "name", "start"}]}.
    """
    node = _started_node()
    if node is None:
        return None
    session_dir, pids = node
    # The raylet starts the agents (and later the workers): the children known now are part of it.
    pids = set(pids) | {pid for pid in _all_pids() if _ppid(pid) in pids}
    processes = [dataclasses.asdict(p) for p in (_leftover(pid) for pid in sorted(pids)) if p is not None]
    return {"session_dir": session_dir, "host": socket.gethostname(), "driver_pid": os.getpid(),
            "driver_start": _start_ticks(os.getpid()), "processes": processes}


def _started_node() -> tuple[str, list[int]] | None:
    """(session folder, pids of the processes it started) of the Ray node this process started, else None.

    Written against Ray 2.60.0, whose public API names the session (runtime_context.get_session_name)
    but neither who started the node nor its processes. `ray._private.worker._global_node` is the Node
    that ray.init made: a head with its own processes (`all_processes`: kind -> [ProcessInfo]) when this
    process started Ray; connect-only (head False, no processes) when it joined a cluster; None under
    Ray Client. tests/test_leftovers.py fails when these attributes go away.
    """
    import ray
    from ray._private import worker

    node = worker._global_node
    if not ray.is_initialized() or node is None or not node.head:
        return None
    pids = [info.process.pid for infos in node.all_processes.values() for info in infos]
    return (node.get_session_dir_path(), pids) if pids else None


def driver_alive(session: dict) -> bool:
    """Whether the session's driver still runs on this host (pid and start time: a reused pid is another process)."""
    if session.get("host") != socket.gethostname():
        return False
    driver = _leftover(session["driver_pid"])  # None when gone or a zombie (killed, not yet reaped)
    return driver is not None and driver.start == session.get("driver_start")


# ---- another process's side --------------------------------------------------------


def find_leftovers(session: dict) -> list[Leftover]:
    """The processes of `session`'s Ray still alive on this host, by pid (the driver itself excluded).

    Call it only when the session's driver is dead (see driver_alive): while it runs these are its Ray.
    [] on another host or outside Linux.
    """
    if not sys.platform.startswith("linux") or session.get("host") != socket.gethostname():
        return []
    session_dir = session["session_dir"].rstrip("/")
    known = {(p["pid"], p["start"]): p["name"] for p in session.get("processes", [])}
    skip = {os.getpid(), session.get("driver_pid")}
    found = []
    for pid in _all_pids():
        argv = _argv(pid)
        process = None if pid in skip else _leftover(pid, argv)
        if process is None:
            continue
        if (pid, process.start) in known:
            # An exiting process has no arguments left (its name would read "python"): say what it was.
            found.append(process if argv else dataclasses.replace(process, name=known[pid, process.start]))
        elif _looks_like_ray(argv) and _in_session(pid, argv, session_dir):
            found.append(process)
    return found


def end_leftovers(leftovers: list[Leftover], grace_s: float = 3.0) -> list[Leftover]:
    """SIGTERM each, SIGKILL what still runs after `grace_s`; returns those that were ended.

    Only processes find_leftovers returned: a pid whose start time changed is another process now
    and is left alone, as is one this user may not signal.
    """
    ended = []
    for signum, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        targets = [p for p in leftovers if _alive(p) and p not in ended]
        for process in list(targets):
            try:
                os.kill(process.pid, signum)
            except ProcessLookupError:
                pass  # gone between the check and the signal: nothing left to end
            except PermissionError:
                targets.remove(process)
        deadline = time.monotonic() + wait_s
        while any(_alive(p) for p in targets) and time.monotonic() < deadline:
            time.sleep(0.1)
        ended += [p for p in targets if not _alive(p)]
    return [p for p in leftovers if p in ended]


def describe(leftovers: list[Leftover], ended: bool = False) -> str:
    """One console line: the processes of the killed driver's Ray still running (ended ones: `ended`), what to do."""
    if not leftovers:
        return "no process of the killed driver's Ray is still running"
    listed = ", ".join(f"{p.name} {p.pid}" for p in leftovers)
    many = len(leftovers) > 1
    count = f"{len(leftovers)} process{'es' if many else ''} of the killed driver's Ray"
    if ended:
        return f"{count} {'were' if many else 'was'} still running ({listed}); ended {'them' if many else 'it'}"
    pids = " ".join(str(p.pid) for p in leftovers)
    return f"{count} {'are' if many else 'is'} still running ({listed}); end {'them' if many else 'it'} with: kill {pids}"


# ---- /proc -----------------------------------------------------------------------


def _all_pids() -> list[int]:
    try:
        return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]
    except OSError:
        return []


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (which may hold spaces): [state, ppid, ...]."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def _start_ticks(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields else None  # field 22 of stat; fields[0] is field 3


def _ppid(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def _argv(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def _leftover(pid: int, argv: list[str] | None = None) -> Leftover | None:
    """The process as a Leftover, None when it is gone or a zombie (dead already, waiting to be reaped)."""
    fields = _stat(pid)
    if not fields or fields[0] in ("Z", "X"):
        return None
    return Leftover(pid=pid, name=_short_name(pid, _argv(pid) if argv is None else argv), start=int(fields[19]))


def _alive(process: Leftover) -> bool:
    current = _leftover(process.pid)
    return current is not None and current.start == process.start


def _short_name(pid: int, argv: list[str]) -> str:
    if argv and argv[0].startswith("ray::"):
        return argv[0].split()[0]  # ray::DashboardAgent, ray::IDLE
    script = _script(argv)
    if script:
        return Path(script).stem  # dashboard, log_monitor, monitor, default_worker
    if argv:
        return Path(argv[0]).name  # raylet, gcs_server
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


def _script(argv: list[str]) -> str | None:
    """The .py file an interpreter runs (`python -u .../log_monitor.py --args`), else None."""
    for arg in argv[1:]:
        if not arg.startswith("-"):
            return arg if arg.endswith(".py") else None
    return None


def _looks_like_ray(argv: list[str]) -> bool:
    """A title Ray set (ray::...), or a program or script inside a `ray` folder (the installed package)."""
    if not argv:
        return False
    if argv[0].startswith("ray::"):
        return True
    return any("ray" in Path(path).parts[:-1] for path in (argv[0], _script(argv)) if path)


def _in_session(pid: int, argv: list[str], session_dir: str) -> bool:
    """The session folder in the arguments (daemons) or among the open files (stdout/stderr in its logs/)."""
    if any(arg == session_dir or session_dir + "/" in arg for arg in argv):
        return True
    fd_dir = PROC / str(pid) / "fd"
    try:
        fds = list(fd_dir.iterdir())
    except OSError:  # gone, or another user's
        return False
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target == session_dir or target.startswith(session_dir + "/"):
            return True
    return False
