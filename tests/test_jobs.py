"""`labeltune submit / jobs / logs / stop` without a cluster: arguments, addresses, errors, the follow loop.

Against a real head (a job run to SUCCEEDED, `logs --follow`, `stop`, an unknown job id) see
tests/test_cluster.py::test_submit_runs_a_search_as_a_job.
"""

from __future__ import annotations

import socket
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner
from conftest import run_cli

from search.cli import jobs
from search.cli import main


def unreachable() -> str:
    """A dashboard URL where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def invoke(*args: str, **env: str | None):
    env = {"RAY_API_SERVER_ADDRESS": None, "RAY_ADDRESS": None, **env}
    return CliRunner().invoke(main, list(args), env=env)


@pytest.mark.timeout(60)
def test_unreachable_head_is_a_one_line_error_naming_it():
    url = unreachable()
    for args in (["jobs"], ["logs", "raysubmit_x"], ["stop", "raysubmit_x"], ["submit", "--", "--data", "/d"]):
        proc = run_cli(*args, "--address", url, check=False) if args[0] != "submit" else \
            run_cli("submit", "--address", url, *args[1:], check=False)
        assert proc.returncode == 1, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and f"cannot reach the Ray dashboard at {url}" in lines[0], (args, proc.stderr)


@pytest.mark.timeout(30)
def test_address_comes_from_the_option_then_the_environment():
    url, other = unreachable(), unreachable()
    # --address wins over both variables (Ray's own client would let them override it).
    result = invoke("jobs", "--address", url, RAY_API_SERVER_ADDRESS=other, RAY_ADDRESS=other)
    assert result.exit_code == 1 and url in result.output and other not in result.output
    assert other in invoke("jobs", RAY_API_SERVER_ADDRESS=other, RAY_ADDRESS=url).output
    assert url in invoke("jobs", RAY_ADDRESS=url).output
    result = invoke("jobs", RAY_API_SERVER_ADDRESS=url[len("http://"):])  # a bare host:port: its dashboard, over http
    assert result.exit_code == 1 and url in result.output
    result = invoke("jobs")
    assert result.exit_code == 1 and "no cluster address" in result.output and "--address" in result.output


@pytest.mark.timeout(30)
def test_submit_checks_the_search_options_before_contacting_the_cluster():
    url = unreachable()
    result = invoke("submit", "--address", url, "--", "--data", "/d", "--trials", "many")
    assert result.exit_code == 2 and "'--trials'" in result.output and "cannot reach" not in result.output
    result = invoke("submit", "--address", url, "--", "--data", "/d", "--epoch", "3")
    assert result.exit_code == 2 and "No such option" in result.output
    result = invoke("submit", "--address", url)
    assert result.exit_code == 2 and "no search options" in result.output
    result = invoke("submit", "--address", url, "--env", "NOEQUALS", "--", "--data", "/d")
    assert result.exit_code == 2 and "KEY=VALUE" in result.output


@pytest.mark.timeout(30)
def test_entrypoint_quotes_the_search_options_for_the_shell():
    assert jobs.search_entrypoint(["--data", "/data/my images", "--name", "a'b"]) == \
        "labeltune search --data '/data/my images' --name 'a'\"'\"'b'"


@pytest.mark.timeout(30)
def test_runtime_env_uploads_only_with_working_dir(tmp_path):
    assert jobs.make_runtime_env(None, ()) == {}
    env = jobs.make_runtime_env(str(tmp_path), ("MLFLOW_TRACKING_URI=http://127.0.0.1:5000", "A=b=c"))
    assert env["working_dir"] == str(tmp_path.resolve())
    assert {".venv", "runs", "mlruns", ".git"} <= set(env["excludes"])
    assert env["env_vars"] == {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", "A": "b=c"}
    with pytest.raises(click.BadParameter):
        jobs.make_runtime_env(None, ("=x",))


class FakeClient:
    """What `logs --follow` uses of Ray's JobSubmissionClient: job info and the async log tail."""

    def __init__(self, status: str, message: str = ""):
        self.info = SimpleNamespace(status=status, message=message)

    def get_job_info(self, job_id):
        if job_id != "raysubmit_1":
            raise RuntimeError(f"Request failed with status code 404: Job {job_id} does not exist.")
        return self.info

    async def tail_job_logs(self, job_id):
        for chunk in ("epoch 1\n", "epoch 2\nsearch s1: 2 trials (0 failed)\n"):
            yield chunk


@pytest.mark.timeout(30)
@pytest.mark.parametrize("status, code", [("SUCCEEDED", 0), ("FAILED", 1), ("STOPPED", 1)])
def test_follow_streams_the_output_and_exits_with_the_job(monkeypatch, status, code):
    monkeypatch.setattr(jobs, "connect", lambda address: (FakeClient(status, "boom\ntraceback..."), "http://head:8265"))
    result = invoke("logs", "raysubmit_1", "--follow", "--address", "http://head:8265")
    assert "epoch 1\nepoch 2\nsearch s1: 2 trials (0 failed)\n" in result.output
    assert result.exit_code == code, result.output
    if code:
        assert f"job raysubmit_1 {status}: boom" in result.output and "traceback" not in result.output


@pytest.mark.timeout(30)
def test_unknown_job_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(jobs, "connect", lambda address: (FakeClient("RUNNING"), "http://head:8265"))
    for command in ("logs", "stop"):
        result = invoke(command, "raysubmit_nope", "--address", "http://head:8265")
        assert result.exit_code == 1
        assert result.output.strip() == ("Error: no job raysubmit_nope on http://head:8265 "
                                         "(`labeltune jobs --address http://head:8265` lists them)")
