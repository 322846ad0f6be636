"""A test-only hook that holds a real trial at a known point, so a test decides when to interrupt it.

    LABELTUNE_TEST_HOLD=/tmp/h:2:1 labeltune search ...     # the 2nd trial to start waits after epoch 1
    wait for /tmp/h/held, then kill or interrupt the driver; or create /tmp/h/release to let it go on

A test that polls Tune's files and sleeps races the search: on a fast machine the search
ends first. With the hold, the trial (the real `run_trial`, its checkpoints and replay
included) reports its epoch, writes `held` and waits; nothing of the search moves on
while it waits, so the moment of the kill is certain. Unset, the hook costs nothing.

The driver reads the variable (trial processes need not inherit the driver's
environment: Ray starts them) and hands the Hold to every trial with its data.
Trials number themselves in the order they start by creating `started-<k>` in the folder.
Hold at an epoch before the last: Tune stops a trial at its last epoch, and then `tune.report`
does not return to the trial.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

HOLD_ENV = "LABELTUNE_TEST_HOLD"
"""'<folder>:<k>:<epoch>': the k-th trial to start (1-based) waits after reporting epoch <epoch>"""
HELD_FILE = "held"
"""written into the folder when the trial waits; it holds the trial's folder"""
RELEASE_FILE = "release"
"""create it in the folder and the held trial goes on"""


@dataclass(frozen=True)
class Hold:
    folder: str
    trial: int
    epoch: int

    @classmethod
    def from_env(cls) -> Hold | None:
        value = os.environ.get(HOLD_ENV)
        if not value:
            return None
        folder, trial, epoch = value.rsplit(":", 2)
        return cls(str(Path(folder).resolve()), int(trial), int(epoch))

    def claim(self) -> int:
        """This trial's place in the order trials started (1, 2, ...): the first free `started-<k>`."""
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        k = 1
        while True:
            try:
                os.close(os.open(Path(self.folder) / f"started-{k}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return k
            except FileExistsError:
                k += 1

    def wait(self, trial_dir: str) -> None:
        """Say that the trial is held (HELD_FILE), then wait until RELEASE_FILE appears."""
        folder = Path(self.folder)
        tmp = folder / f".{HELD_FILE}.tmp"
        tmp.write_text(trial_dir)
        os.replace(tmp, folder / HELD_FILE)
        while not (folder / RELEASE_FILE).exists():
            time.sleep(0.05)
