"""Ray Jobs commands: run a search on a Ray cluster as a job, list, follow and stop jobs.

    labeltune submit --address http://127.0.0.1:8265 -- --data /mnt/labeltune/data --trials 64 --epochs 8
    labeltune jobs   --address http://127.0.0.1:8265
    labeltune logs   raysubmit_XYZ --follow
    labeltune stop   raysubmit_XYZ

`--address` is the head's dashboard (Jobs API, port 8265; `ray dashboard cluster.yaml`
forwards it to localhost); it defaults to $RAY_API_SERVER_ADDRESS, then $RAY_ADDRESS.

The job's entrypoint is `labeltune search ARGS`: its driver runs on the head node and
joins the cluster through RAY_ADDRESS, which Ray sets in every job's environment, so
ARGS need no --address. It runs the labeltune installed on the cluster's nodes
(cluster.yaml pip-installs the project from its file mount at `ray up`): nothing is
uploaded, and driver and trials run the same code. `--working-dir DIR` uploads a project
folder instead (Ray's runtime_env working_dir: the job's current folder, first on the
PYTHONPATH of the driver and of every trial), for trying code without `ray up` again.
Paths in ARGS (--data, --space) are paths on the head node, or relative to that folder.

Token auth: with RAY_AUTH_MODE=token (and the cluster's token in ~/.ray/auth_token,
RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH), Ray's client sends the token with every request.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import shlex
from pathlib import Path
from typing import Any

import click

from search.cli.search import search as search_cmd
from trainable.errors import first_line

ADDRESS_ENV = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
"""where --address comes from when it is not given, in this order"""
UPLOAD_EXCLUDES = [".venv", ".git", "runs", "mlruns", "demo", "**/__pycache__", "*.npy", ".whl", ".bench"]
"""not uploaded with --working-dir (Ray refuses a working_dir over 500 MiB)"""
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


address_option = click.option(
    "--address", default=None, metavar="URL",
    help="the head's dashboard, http://HOST:8265 [default: $RAY_API_SERVER_ADDRESS, then $RAY_ADDRESS]")


@click.command(context_settings={"ignore_unknown_options": True})
@address_option
@click.option("--working-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="upload this project folder and run it [default: the labeltune installed on the cluster]")
@click.option("--env", "env_vars", multiple=True, metavar="KEY=VALUE",
              help="environment variable for the job's driver and trials (repeatable)")
@click.argument("search_args", nargs=-1, type=click.UNPROCESSED)
def submit(address, working_dir, env_vars, search_args):
    """Run `labeltune search SEARCH_ARGS` on a Ray cluster as a job; print its id and return.

    Put `--` before the search options; paths in them are paths on the head node:

    \b
      labeltune submit --address http://127.0.0.1:8265 -- --data /mnt/labeltune/data --trials 64
    """
    check_search_args(search_cmd, search_args)
    runtime_env = make_runtime_env(working_dir, env_vars)
    client, url = connect(address)
    entrypoint = search_entrypoint(search_args)
    job_id = call(url, client.submit_job, entrypoint=entrypoint, runtime_env=runtime_env or None,
                  metadata={"labeltune": "search"})
    click.echo(job_id)
    click.echo(f"follow:  labeltune logs {job_id} --follow --address {url}", err=True)
    click.echo(f"stop:    labeltune stop {job_id} --address {url}", err=True)


@click.command()
@address_option
def jobs(address):
    """List the cluster's jobs: id, status, start time, entrypoint (submitted jobs and other drivers)."""
    client, url = connect(address)
    rows = call(url, client.list_jobs)
    if not rows:
        click.echo("no jobs")
        return
    rows.sort(key=lambda job: job.start_time or 0)
    click.echo(f"{'id':<30}{'status':<11}{'started':<21}entrypoint")
    for job in rows:
        click.echo(f"{job_name(job):<30}{status_text(job):<11}{format_ms(job.start_time):<21}"
                   f"{shorten(job.entrypoint, 80)}")


@click.command()
@click.argument("job_id")
@address_option
@click.option("--follow", "-f", is_flag=True,
              help="stream the output until the job ends; exit 1 unless it SUCCEEDED")
def logs(job_id, address, follow):
    """Print the output of job JOB_ID's driver (the search's progress and summary)."""
    client, url = connect(address)
    job_info(client, url, job_id)  # an unknown id fails here, in one line
    if not follow:
        click.echo(call(url, client.get_job_logs, job_id), nl=False)
        return
    try:
        asyncio.run(stream_logs(client, job_id))
    except KeyboardInterrupt:
        return  # Ctrl-C stops watching, not the job
    except Exception as exc:  # noqa: BLE001 - a dropped stream: say so in one line
        raise click.ClickException(f"lost the log stream of job {job_id} at {url}: {first_line(exc)}")
    info = job_info(client, url, job_id)
    status = status_text(info)
    if status != "SUCCEEDED":
        reason = f": {first_line(info.message)}" if info.message else ""
        raise click.ClickException(f"job {job_id} {status}{reason}")


@click.command()
@click.argument("job_id")
@address_option
def stop(job_id, address):
    """Stop job JOB_ID (its driver and its trials); `search --resume NAME` continues it later."""
    client, url = connect(address)
    status = status_text(job_info(client, url, job_id))
    if status in TERMINAL:
        click.echo(f"job {job_id} already ended: {status}")
        return
    call(url, client.stop_job, job_id)
    click.echo(f"stopping job {job_id}")


# ---- helpers --------------------------------------------------------------------


def resolve_address(address: str | None) -> str:
    """--address, else $RAY_API_SERVER_ADDRESS (a bare host:port is its dashboard over http), else $RAY_ADDRESS.

    A bare host:port in $RAY_ADDRESS is a Ray (GCS) address, as everywhere in Ray: Ray's client asks
    that cluster for its dashboard's address.
    """
    if address or os.environ.get("RAY_API_SERVER_ADDRESS"):
        address = (address or os.environ["RAY_API_SERVER_ADDRESS"]).rstrip("/")
        return address if "://" in address else f"http://{address}"
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"].rstrip("/")
    raise click.ClickException(
        "no cluster address: pass --address http://HEAD:8265 (the Ray dashboard; `ray dashboard cluster.yaml` "
        "forwards it to http://127.0.0.1:8265) or set RAY_API_SERVER_ADDRESS")


def connect(address: str | None) -> tuple[Any, str]:
    """A JobSubmissionClient for the cluster at `address` (checked: it answers), and its dashboard URL."""
    from ray.job_submission import JobSubmissionClient

    target = resolve_address(address)
    # Ray's client lets these variables override the address it is given: --address must win.
    for key in ADDRESS_ENV:
        os.environ.pop(key, None)
    client = call(target, JobSubmissionClient, target)
    return client, getattr(client, "_address", target)


def call(url: str, fn, *args, **kwargs):
    """fn(*args, **kwargs), with any failure turned into one ClickException line naming `url`."""
    try:
        return fn(*args, **kwargs)
    except click.ClickException:
        raise
    except Exception as exc:  # noqa: BLE001 - requests, aiohttp, RuntimeError, AuthenticationError: all one line
        raise one_line_error(url, exc) from exc


def one_line_error(url: str, exc: BaseException) -> click.ClickException:
    """Ray's connection, HTTP and auth errors (often several lines) as one line a user can act on."""
    text = first_line(exc)
    lowered = text.lower()
    if "authentication" in lowered or "401" in text or "403" in text:
        return click.ClickException(
            f"the Ray cluster at {url} refused the request ({text}); it uses token auth: "
            f"export RAY_AUTH_MODE=token with its token in ~/.ray/auth_token or RAY_AUTH_TOKEN")
    if isinstance(exc, ConnectionError) or "connect" in lowered:
        return click.ClickException(
            f"cannot reach the Ray dashboard at {url}; is the cluster up, and is the port "
            f"forwarded (`ray dashboard cluster.yaml`)? --address is the dashboard, not the GCS port 6379")
    return click.ClickException(f"{url}: {text}")


def job_info(client, url: str, job_id: str):
    """The job's JobDetails; an unknown id is a one-line error."""
    try:
        return client.get_job_info(job_id)
    except Exception as exc:  # noqa: BLE001
        if "does not exist" in str(exc) or "status code 404" in str(exc):
            raise click.ClickException(f"no job {job_id} on {url} (`labeltune jobs --address {url}` lists them)")
        raise one_line_error(url, exc) from exc


async def stream_logs(client, job_id: str) -> None:
    """Echo the driver's output as it comes (Ray's tail_job_logs is an async generator), until the job ends."""
    logging.getLogger("ray.dashboard.modules.job.sdk").setLevel(logging.WARNING)  # not "WebSocket closed" at the end
    async for chunk in client.tail_job_logs(job_id):
        click.echo(chunk, nl=False)


def check_search_args(search_cmd: click.Command, args: tuple[str, ...]) -> None:
    """Parse ARGS with the `search` command's own options here, so a typo fails before anything is submitted."""
    if not args:
        raise click.UsageError("no search options: labeltune submit --address URL -- --data DIR [search options]")
    if any(arg in ("-h", "--help") for arg in args):
        return  # the job prints the help
    try:
        search_cmd.make_context("labeltune search", list(args))
    except click.UsageError as exc:
        raise click.UsageError(f"labeltune search {shlex.join(args)}: {exc.format_message()}")


def search_entrypoint(args: tuple[str, ...] | list[str]) -> str:
    """The job's shell command: `labeltune search` with ARGS quoted for the shell."""
    return shlex.join(["labeltune", "search", *args])


def make_runtime_env(working_dir: str | None, env_vars: tuple[str, ...] = ()) -> dict:
    """Ray runtime_env: the uploaded project folder (if any) and KEY=VALUE environment variables."""
    runtime_env: dict[str, Any] = {}
    if working_dir:
        runtime_env["working_dir"] = str(Path(working_dir).resolve())
        runtime_env["excludes"] = list(UPLOAD_EXCLUDES)
    env = {}
    for item in env_vars:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--env")
        env[key] = value
    if env:
        runtime_env["env_vars"] = env
    return runtime_env


def job_name(job) -> str:
    """A submitted job's submission id (what logs/stop take), or a plain driver's job id."""
    return job.submission_id or job.job_id or "?"


def status_text(job) -> str:
    """'SUCCEEDED', 'RUNNING', ... (Ray's JobStatus is a str enum)."""
    return str(getattr(job.status, "value", job.status))


def format_ms(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def shorten(text: str, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[:width - 3] + "..."
