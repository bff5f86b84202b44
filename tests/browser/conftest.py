"""One real `make dev` per test module and Debian's chromium, driven by playwright.

The devserver runs on its own CAMPAIGNS_HOME (embedded PostgreSQL) in the module's temporary
folder, on free ports. Chromium is /usr/bin/chromium from the Debian package (`.ci/run`
installs it); playwright only drives it. Screenshots go to $BROWSER_SCREENSHOTS when set, else
to the module's temporary folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.devserver_process import START_TIMEOUT_SECONDS, ensure_stopped, free_port, start, wait_until_up

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous: two cores shared with the rest of the suite; every wait is on a real UI state.
UI_TIMEOUT_MS = 90_000
expect.set_options(timeout=UI_TIMEOUT_MS)
LOCATION = "campaign_pipelines"
_LOCATION_STATUS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


# Opens and clicks made right after the send count as a person's, not a prefetcher's: the test
# plays its recipients within seconds.
SETTINGS = {"TRACKING_PREFETCH_SECONDS": "0"}


@dataclass(frozen=True)
class DevServer:
    url: str
    tracking_url: str
    database_url: str
    home: Path
    log: Path

    @property
    def contacts_dir(self) -> Path:
        return self.home / "contacts"

    @property
    def outbox(self) -> Path:
        """Where the demo's sandbox server writes each message as an .eml file."""
        return self.home / "outbox"

    def campaigns(self, *args: str) -> str:
        """The `campaigns` CLI on this devserver's database and contacts folder; its standard output."""
        result = subprocess.run(
            [str(Path(sys.executable).parent / "campaigns"), *args],
            env={
                **os.environ,
                "DATABASE_URL": self.database_url,
                "CAMPAIGNS_HOME": str(self.home),
                "CONTACTS_DIR": str(self.contacts_dir),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"campaigns {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout


@pytest.fixture(scope="module")
def devserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    folder = tmp_path_factory.mktemp("devserver")
    home, log = folder / "home", folder / "devserver.log"
    dagster_port, tracking_port = free_port(), free_port()
    url = f"http://127.0.0.1:{dagster_port}"
    process = start(home, log, dagster_port, tracking_port, SETTINGS)
    try:
        wait_until_up(process, log, [f"{url}/server_info", f"http://127.0.0.1:{tracking_port}/healthz"])
        _wait_for_code_location(url, log)
        database_url = re.search(r"DATABASE_URL=(\S+)", log.read_text()).group(1)
        tracking_url = f"http://localhost:{tracking_port}"  # TRACKING_BASE_URL: what the emails link to
        yield DevServer(url=url, tracking_url=tracking_url, database_url=database_url, home=home, log=log)
    finally:
        ensure_stopped(process)


def _wait_for_code_location(url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        answer = httpx.post(f"{url}/graphql", json={"query": _LOCATION_STATUS}, timeout=10).json()
        entries = answer["data"]["workspaceOrError"]["locationEntries"]
        if any(entry["name"] == LOCATION and entry["loadStatus"] == "LOADED" for entry in entries):
            return
        time.sleep(0.5)
    pytest.fail(f"code location {LOCATION} not loaded within {START_TIMEOUT_SECONDS} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # A fresh profile in a temporary folder each launch (playwright's default).
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest, screenshot: Callable[[Page, str], Path]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    yield page
    if request.node.stash.get(_FAILED, False):
        screenshot(page, f"failed-{request.node.name}")
    context.close()


@pytest.fixture(scope="module")
def screenshot(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Page, str], Path]:
    folder = Path(os.environ.get("BROWSER_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
