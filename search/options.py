"""SearchOptions: what a search is started with, each default, help text and range written once.

`labeltune search`'s options are generated from these fields (search/cli/options.py),
`SearchOptions.validate()` checks the same ranges for callers that build options in
Python (bench/, tests), and the search record stores them (`record.options`). A default
decided elsewhere is stated once, in its field's `default_text`, read from where it is
defined: CPUS_PER_TRIAL, the registry's GPU shares (trainable/specs.py).

Standard library only (and the torch-free trainable.specs): `labeltune --help` imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainable.errors import LabeltuneError
from trainable.fields import check, flag, option
from trainable.specs import MODEL_SPECS


class SearchError(LabeltuneError, RuntimeError):
    """A search that cannot start or resume; the message says why."""


CPUS_PER_TRIAL = 1
"""CPUs a trial asks for when --cpus-per-trial is not given (search.cluster.resource_request)"""


def gpu_shares() -> str:
    """The GPU share by model (trainable.specs' ModelSpec.gpu_share) in words, models of one share together."""
    by_share: dict[float, list[str]] = {}
    for spec in MODEL_SPECS.values():
        by_share.setdefault(spec.gpu_share, []).append(spec.name)
    return "; ".join(f"{share:g} for {', '.join(names)}" for share, names in by_share.items())


@dataclass
class SearchOptions:
    data: str = option(None, metavar="DIR")
    """dataset folder in the course layout"""
    space: str = "default"
    """preset (default, quick) or a YAML/JSON file"""
    trials: int = option(16, low=1)
    """number of trials"""
    epochs: int = option(5, low=1)
    """maximum epochs per trial (ASHA's max_t)"""
    target: float | None = option(None, low=0, low_open=True, high=1, finite=True, metavar="SCORE")
    """end the search once a trial reaches val/micro_f1 SCORE"""
    plateau: int | None = option(None, low=1, metavar="N")
    """end the search after N completed trials in a row without a new best"""
    warm_start: str | None = option(None, metavar="NAME[,NAME]")
    """start TPE from the finished trials of these earlier searches (same labels; trials that fit this space)"""
    time_budget_min: float | None = option(None, low=0, low_open=True, finite=True, flag="--time-budget",
                                           metavar="MINUTES")
    """stop starting new trials after MINUTES"""
    concurrency: int = option(0, low=0)
    """maximum trials at once (0 = as the resources allow)"""
    gpus_per_trial: float | None = option(None, low=0, finite=True,
                                          default_text=f"by model, on a cluster with GPUs: {gpu_shares()}")
    """GPU share per trial"""
    cpus_per_trial: float | None = option(None, low=0, low_open=True, finite=True, default_text=f"{CPUS_PER_TRIAL:g}")
    """CPUs per trial"""
    grace_period: int = option(1, low=1)
    """epochs before ASHA may stop a trial"""
    max_failures: int = option(1, low=0)
    """retries of a trial whose worker or node died"""
    address: str | None = option(None, default_text="start a local Ray")
    """Ray cluster: 'auto' or host:port"""
    name: str | None = option(None, default_text="search-<date>-<time>")
    """search name"""
    seed: int = 0
    """seed of the sampler and of each trial"""
    split_seed: int = 0
    """train/val/test split shared by all trials"""
    storage: str | None = option(None, default_text="$LABELTUNE_HOME/runs")
    """where searches live (absolute path or URI)"""
    tracking_uri: str | None = option(None,
                                      default_text="$MLFLOW_TRACKING_URI, else sqlite under $LABELTUNE_HOME/mlruns")
    """MLflow tracking URI"""
    track: bool = option(True, flag="--no-track")
    """log the search to MLflow (--track, the default) or not (--no-track: MLflow is then not even imported)"""
    limit: int = option(0, low=0)
    """use only the first N images (debugging)"""
    skip_bad_images: bool = False
    """skip unreadable images instead of stopping"""
    verbose: bool = option(True, cli=False)
    """print the live trial table"""

    def validate(self) -> None:
        """Refuse a value outside its field's range, naming the CLI flag (before Ray or any decoding starts)."""
        if not self.data:
            raise SearchError("--data is required (or --resume NAME)")
        check(self, SearchError, subject=lambda f, value: f"{flag(f)} {value}")
