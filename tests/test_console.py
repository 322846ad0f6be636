"""search/console.py's noise control: the two Ray notices it drops, made by Ray's own code, and what it keeps.

Ray's "ray" logger does not propagate to the root logger, so each test listens on it with a handler of its
own (at INFO, as `ray.init()` with Ray's logging set-up leaves it); the filters sit on the loggers that write
the notices, so they act before any handler. If Ray renames a function or rewords a notice, these fail.
"""

from __future__ import annotations

import logging
import warnings
from types import SimpleNamespace

import pytest

from search import console


class Listen(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def heard(monkeypatch):
    """Messages that reach the "ray" logger's handlers and the root logger's, after the test's quiet() call."""
    for name in (console.VERBOSE_ENV, "RAY_AIR_NEW_OUTPUT", "MLFLOW_LOGGING_LEVEL", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"):
        monkeypatch.delenv(name, raising=False)  # quiet() sets them; monkeypatch puts them back
    listen = Listen()
    loggers = [logging.getLogger("ray"), logging.getLogger()]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(listen)
        logger.setLevel(logging.INFO)
    with warnings.catch_warnings():
        yield listen.messages
    for logger, level in zip(loggers, levels):
        logger.removeHandler(listen)
        logger.setLevel(level)
    console.quiet(show_third_party=True)  # takes the filters off again


def ray_noise() -> None:
    """Ray 2.60's own code writes the two notices: the token-auth warnings and the metrics-fetch failure."""
    from ray._private.authentication import authentication_token_setup as auth
    from ray.tune.analysis.experiment_analysis import ExperimentAnalysis

    auth._warn_token_auth_enabled()
    auth._warn_token_auth_disabled()

    def no_files(trial):
        raise FileNotFoundError(f"Could not fetch metrics for {trial}: both result.json and progress.csv were not "
                                f"found at /tmp/runs/search/trial_7a9110de")

    class Trial(SimpleNamespace):
        def __str__(self) -> str:
            return "run_trial_7a9110de"

    # The method reads only these two attributes of its analysis (Ray 2.60).
    ExperimentAnalysis._fetch_trial_dataframes(SimpleNamespace(trials=[Trial(trial_id="7a9110de")],
                                                               _fetch_trial_dataframe=no_files))


def others() -> None:
    """Messages the filters must let through: another from each of those loggers, and labeltune's own."""
    logging.getLogger("ray._private.authentication.authentication_token_setup").warning("Generated a new token")
    logging.getLogger("ray.tune.analysis.experiment_analysis").warning("Could not find the best checkpoint")
    logging.getLogger("search.run").warning("labeltune: 3 trials resumed")


def test_quiet_drops_exactly_the_two_ray_notices(heard):
    console.quiet(show_third_party=False)
    console.quiet(show_third_party=False)  # twice, as a CLI test calling main twice: still one filter per logger
    ray_noise()
    others()
    assert heard == ["Generated a new token", "Could not find the best checkpoint", "labeltune: 3 trials resumed"]
    for name in console.RAY_NOISE:
        assert logging.getLogger(name).filters.count(console.NOISE_FILTERS[name]) == 1


def test_verbose_shows_the_two_ray_notices(heard):
    console.quiet(show_third_party=False)
    console.quiet(show_third_party=True)  # -v after a quiet start (tests run main in one process) shows them again
    ray_noise()
    others()
    assert len(heard) == 6, heard
    assert heard[0].startswith("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled")
    assert heard[1].startswith("Token authentication is disabled for this Ray cluster.")
    assert heard[2].startswith("Failed to fetch metrics for 1 trial(s):\n- run_trial_7a9110de: FileNotFoundError(")
    assert heard[3:] == ["Generated a new token", "Could not find the best checkpoint", "labeltune: 3 trials resumed"]
