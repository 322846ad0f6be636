"""What the console shows: labeltune's own lines; Ray's, Tune's, Optuna's and MLflow's only with -v.

    quiet(verbose=False)   # the CLI's main, before any of those libraries is imported
    quiet_ray()            # right after `import ray` (Ray sets its logger up at import)

Environment variables carry the choice to the libraries' import-time set-up and to
child processes (`labeltune submit`'s job driver inherits them).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings

VERBOSE_ENV = "LABELTUNE_VERBOSE"
"""1: show third-party messages (set by `labeltune -v`)"""


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def quiet(show_third_party: bool = False) -> None:
    """Turn third-party noise off (or leave it on and remember that: -v)."""
    if show_third_party:
        os.environ[VERBOSE_ENV] = "1"
        return
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
