"""`make dev` (`python -m campaign_pipelines.devserver`) as a child process of a test, on free ports.

Used by tests/test_devserver.py (start, Ctrl-C, restart) and tests/browser/ (the UI in chromium).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(
    home: Path, log: Path, dagster_port: int, tracking_port: int, settings: dict[str, str] | None = None
) -> subprocess.Popen:
    """The devserver on the embedded PostgreSQL of `home` (its own CAMPAIGNS_HOME), whatever DATABASE_URL says.

    Its contacts folder is `home`/contacts, where it writes the demo's contact file; `settings` are
    more environment variables (the README's Configuration table).
    """
    env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    env.update(CAMPAIGNS_HOME=str(home), DAGSTER_PORT=str(dagster_port), TRACKING_PORT=str(tracking_port))
    env.update(CONTACTS_DIR=str(home / "contacts"), CAMPAIGNS_DEMO="1", **(settings or {}))
    with log.open("wb") as out:  # a file, not a pipe: dagster's logs would fill a pipe nobody reads
        return subprocess.Popen(
            [sys.executable, "-m", "campaign_pipelines.devserver"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def wait_until_up(process: subprocess.Popen, log: Path, urls: list[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"devserver exited ({process.returncode}):\n{log.read_text()}"
            try:
                if all(client.get(url).status_code == 200 for url in urls):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    pytest.fail(f"{urls} did not answer within {START_TIMEOUT_SECONDS} s:\n{log.read_text()}")


def ensure_stopped(process: subprocess.Popen) -> None:
    """SIGTERM lets the devserver stop its children (SIGKILL would orphan them); SIGKILL only if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
