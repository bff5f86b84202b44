"""`make dev` end to end: embedded PostgreSQL, Dagster UI and tracking app start, Ctrl-C stops all, data stays."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

START_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(home: Path, log: Path, dagster_port: int, tracking_port: int) -> subprocess.Popen:
    env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    env.update(CAMPAIGNS_HOME=str(home), DAGSTER_PORT=str(dagster_port), TRACKING_PORT=str(tracking_port))
    with log.open("wb") as out:  # a file, not a pipe: dagster's logs would fill a pipe nobody reads
        return subprocess.Popen(
            [sys.executable, "-m", "campaign_pipelines.devserver"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _wait_until_up(process: subprocess.Popen, log: Path, urls: list[str]) -> None:
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


def _interrupt(process: subprocess.Popen, log: Path) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"devserver still running {STOP_TIMEOUT_SECONDS} s after SIGINT:\n{log.read_text()}")


def _ensure_stopped(process: subprocess.Popen) -> None:
    """After a failure: SIGTERM lets the devserver stop its children, SIGKILL would orphan them."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _leftovers(home: Path) -> list[str]:
    """Live processes started for this CAMPAIGNS_HOME: postgres names its data dir, the others inherit the env."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(process.cmdline())
            environ = process.environ()
        except psutil.Error:
            continue
        if str(home) in command or environ.get("CAMPAIGNS_HOME") == str(home):
            found.append(f"{process.pid}: {command[:120]}")
    return found


@pytest.mark.slow
def test_make_dev_starts_stops_on_ctrl_c_and_keeps_data(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dagster_port, tracking_port = _free_port(), _free_port()
    urls = [f"http://127.0.0.1:{dagster_port}/server_info", f"http://127.0.0.1:{tracking_port}/healthz"]

    first_log = tmp_path / "first.log"
    process = _start(home, first_log, dagster_port, tracking_port)
    try:
        _wait_until_up(process, first_log, urls)
        database_url = re.search(r"DATABASE_URL=(\S+)", first_log.read_text()).group(1)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE devserver_marker (note text)")
            conn.execute("INSERT INTO devserver_marker VALUES ('kept')")
        assert _interrupt(process, first_log) == 0, first_log.read_text()
    finally:
        _ensure_stopped(process)
    assert _leftovers(home) == []

    second_log = tmp_path / "second.log"
    process = _start(home, second_log, dagster_port, tracking_port)
    try:
        _wait_until_up(process, second_log, urls)
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT note FROM devserver_marker").fetchall() == [("kept",)]
        assert "schema up to date" in second_log.read_text()
        assert _interrupt(process, second_log) == 0, second_log.read_text()
    finally:
        _ensure_stopped(process)
    assert _leftovers(home) == []
