"""Shared by test_promote.py and test_browser.py: one real search (and its promotion) per
test session, plus the helpers that start `labeltune ui` and drive headless Chromium.

Loaded with `pytest_plugins = ["helpers_browser"]` in both modules, so the session-scoped
fixtures below exist once: the search (3 tiny trials on the session's Ray, ~40-60 s on
2 cores) runs once however many of these tests are selected.

The browser side uses Debian's `chromium` and `chromium-driver` (`make browser` installs
them) through selenium (a dev dependency). Selenium rather than `chromium --dump-dom`: the
MLflow UI only shows a search's trial runs after a click on the parent run's expander, and
a metric column only after it is picked in the column selector; `--dump-dom` cannot click.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import BIN, run_cli

SEARCH_NAME = "s1"
SPACE = {"preset": "quick", "image_size": 32, "width": [0.25], "model": ["cnn3bn"], "batch_size": [32]}
TRIALS, EPOCHS = 3, 2

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1920,1000"]


@dataclass
class SharedSearch:
    home: Path
    """its $LABELTUNE_HOME: mlruns/ (the MLflow store) and runs/<name>/"""
    name: str
    data: Path
    stdout: str
    wall_s: float
    """seconds the `labeltune search` command took, start to exit"""

    @property
    def path(self) -> Path:
        return self.home / "runs" / self.name

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlruns' / 'mlflow.db'}"

    def env(self) -> dict[str, str]:
        """Environment for a CLI subprocess working on this search's store."""
        return {"LABELTUNE_HOME": str(self.home), "LABELTUNE_CACHE": str(self.home.parent / "cache")}


@pytest.fixture(scope="session")
def shared_search(tmp_path_factory, ray_address, synth_dir, _mlflow_template) -> SharedSearch:
    """`labeltune search` of 3 tiny trials x 2 epochs on the session's Ray, in a home of its own.

    Session fixtures run before the per-test autouse fixture that isolates the environment,
    so the cache and the store are set here explicitly.
    """
    home = tmp_path_factory.mktemp("shared-search") / "home"
    (home / "mlruns").mkdir(parents=True)
    shutil.copy(_mlflow_template, home / "mlruns" / "mlflow.db")
    space = home / "space.json"
    space.write_text(json.dumps(SPACE))
    search = SharedSearch(home, SEARCH_NAME, synth_dir, "", 0.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        started = time.time()
        proc = run_cli("search", "--data", str(synth_dir), "--space", str(space), "--trials", str(TRIALS),
                       "--epochs", str(EPOCHS), "--name", SEARCH_NAME, "--address", ray_address, env=search.env())
        search.wall_s = time.time() - started
    search.stdout = proc.stdout
    return search


@pytest.fixture(scope="session")
def promoted(shared_search):
    """search.promote.promote() of the shared search, in process: (SharedSearch, Promotion)."""
    import mlflow

    from search.promote import promote

    with pytest.MonkeyPatch.context() as mp:
        for key, value in shared_search.env().items():
            mp.setenv(key, value)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        try:
            # 3 tiny trials on 160 images do not beat the no-learning baseline; the alias is needed below.
            promotion = promote(shared_search.name, allow_below_baseline=True)
        finally:
            mlflow.set_tracking_uri(None)  # promote() points this process's MLflow at the store; undo it
    return shared_search, promotion


# ---- the UI process -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen:
    """`labeltune ui --port PORT` in a process group of its own (mlflow ui starts uvicorn workers)."""
    log = open(log_path, "wb")
    try:
        return subprocess.Popen([str(BIN / "labeltune"), "ui", "--port", str(port)], env={**os.environ, **env},
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


def wait_until_serving(proc: subprocess.Popen, url: str, log_path: Path, timeout_s: float) -> None:
    """Poll URL until it answers 200; fail with the UI's log if the process exits or time runs out."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"labeltune ui exited {proc.returncode} before answering:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    pytest.fail(f"{url} did not answer within {timeout_s:.0f} s:\n{log_path.read_text()[-3000:]}")


def stop_process_group(proc: subprocess.Popen, grace_s: float = 10) -> None:
    """SIGTERM the process group PROC leads, SIGKILL what is left after GRACE_S."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + grace_s
    while time.time() < deadline:
        proc.poll()
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


# ---- Chromium ------------------------------------------------------------------------------


def require_chromium() -> None:
    """Fail (never skip) when the browser or selenium is missing, saying how to get them."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: run `make browser` "
                    "(apt-get install chromium chromium-driver) for the browser test", pytrace=False)
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("selenium is not installed: install the dev dependencies (`make setup`, "
                    "or .venv/bin/pip install -e '.[dev]')", pytrace=False)


@pytest.fixture(scope="session")
def chromium() -> None:
    """require_chromium() as a fixture: list it before shared_search to fail before the search runs."""
    require_chromium()


def open_chromium(user_data_dir: Path):
    """A selenium driver on Debian's headless Chromium with a fresh profile (no saved UI state)."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    return driver


def save_artifact(path: Path) -> None:
    """Copy a test artifact to $LABELTUNE_TEST_ARTIFACTS when it is set (CI keeps that folder)."""
    target = os.environ.get("LABELTUNE_TEST_ARTIFACTS")
    if target and path.exists():
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(target) / path.name)


# ---- the MLflow 3.17 runs table (AG Grid; row-id = run id, col-id = column key) -------------------


def runs_page_url(port: int, experiment_id: str) -> str:
    # MLflow 3 opens an experiment in its GenAI view (traces) unless told the model-training one.
    return f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def close_assistant(driver) -> None:
    """Close the 'MLflow Assistant' side panel, which otherwise takes a third of the page."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):
        if button.is_displayed():
            button.click()


def run_names(driver) -> list[str]:
    """Run names shown in the table (the name cell also holds the run's colour as text)."""
    from selenium.webdriver.common.by import By

    cells = driver.find_elements(By.CSS_SELECTOR, ".ag-row [col-id='attributes.`Run Name`'] a")
    return [cell.text.strip() for cell in cells]


def expand_run(driver, run_id: str) -> None:
    """Click the +/- expander in a parent run's name cell, which shows its child runs."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f".ag-row[row-id='{run_id}'] [col-id='attributes.`Run Name`'] button").click()


def show_metric_column(driver, key: str) -> None:
    """Columns -> search KEY -> tick exactly KEY (not e.g. best/KEY) -> close the selector."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30, poll_frequency=0.3)  # the selector filters as one types
    next(b for b in driver.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Columns").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[placeholder='Search columns']")).send_keys(key)
    node_xpath = (f"//*[@data-testid='column-selector-tree']"
                  f"//div[contains(@class,'tree-treenode')][.//span[normalize-space(.)='{key}']]")
    node = wait.until(lambda d: d.find_element(By.XPATH, node_xpath), f"no column {key} in the column selector")
    node.find_element(By.CSS_SELECTOR, "[class*='tree-checkbox']").click()
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)


def metric_cell(driver, run_id: str, key: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f".ag-row[row-id='{run_id}'] [col-id='metrics.`{key}`']").text.strip()
