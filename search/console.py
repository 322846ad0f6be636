"""What the console shows: labeltune's own lines; Ray's, Tune's, Optuna's and MLflow's only with -v.

    quiet(show_third_party=False)   # the CLI's main, before any of those libraries is imported
    quiet_ray()                     # right after `import ray` (Ray sets its logger up at import)

Environment variables carry the choice to the libraries' import-time set-up and to
child processes (`labeltune submit`'s job driver inherits them).

Two Ray notices are dropped by their text, on the logger that writes them (RAY_NOISE), so they stay
away even where Ray's logger is not at ERROR (a driver that called `ray.init()` with Ray's own
logging set-up, which puts the "ray" logger back to INFO; a benchmark that never calls quiet_ray):
- ray._private.authentication.authentication_token_setup: "Token authentication is enabled for this
  Ray cluster. Set RAY_AUTH_MODE=disabled to opt out..." (and its "...is disabled..." twin), when
  RAY_AUTH_MODE is unset and `ray.init` starts a local Ray (or finds one by itself, a token file present);
- ray.tune.analysis.experiment_analysis: "Failed to fetch metrics for N trial(s): - <trial>:
  FileNotFoundError(... both result.json and progress.csv were not found ...)", when Tune builds the
  ResultGrid and a trial it started never reported (a search cut by its time budget).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings

VERBOSE_ENV = "LABELTUNE_VERBOSE"
"""1: show third-party messages (set by `labeltune -v`)"""
RAY_NOISE = {
    "ray._private.authentication.authentication_token_setup": ("Token authentication is enabled for this Ray cluster",
                                                               "Token authentication is disabled for this Ray cluster"),
    "ray.tune.analysis.experiment_analysis": ("Failed to fetch metrics for ",),
}
"""logger name -> the starts of the messages of it that labeltune drops (Ray 2.60's texts; tests/test_console.py)"""


class DropMessages(logging.Filter):
    """A logger filter that drops the records whose message starts with one of `starts`, and passes the rest."""

    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.starts)


NOISE_FILTERS = {name: DropMessages(starts) for name, starts in RAY_NOISE.items()}
"""one filter per logger, so quiet() adds it once however often it runs and -v takes it off again"""


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def quiet(show_third_party: bool = False) -> None:
    """Turn third-party noise off (or leave it on and remember that: -v)."""
    if show_third_party:
        os.environ[VERBOSE_ENV] = "1"
        for name, noise in NOISE_FILTERS.items():
            logging.getLogger(name).removeFilter(noise)
        return
    # A logger's filters see the records made on it, whatever handler (or none: logging's last resort) prints them;
    # getLogger before Ray's import is the very logger Ray's module takes later.
    for name, noise in NOISE_FILTERS.items():
        logging.getLogger(name).addFilter(noise)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's legacy output prints nothing at verbose=0 (no box, no TensorBoard hint)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # not "Creating initial MLflow database tables..."
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # not "Downloading artifacts" bars
    # Optuna's ExperimentalWarning for TPESampler(multivariate=True, group=True): chosen on purpose.
    warnings.filterwarnings("ignore", message=r".*is an experimental feature.*")
    for name in ("optuna", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def quiet_ray() -> None:
    """Ray's own warnings (token-auth notice, resource hints) off unless -v: labeltune checks resources itself."""
    if not verbose():
        logging.getLogger("ray").setLevel(logging.ERROR)


@contextlib.contextmanager
def library_quiet():
    """Inside: a library's prints to stderr, its warnings and its logger below ERROR are dropped (unless -v).

    For calls such as mlflow.pyfunc.log_model, which prints "Successfully registered model",
    warns about type hints and logs cloudpickle advice meant for pyfunc authors.
    """
    if verbose():
        yield
        return
    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    mlflow_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        mlflow_logger.setLevel(level)
