"""SIGTERM under load: uvicorn stops, the lifespan writes the buffer, and no answered hit is lost."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.tracking_app.conftest import SECRET, add_campaign, events

REQUESTS = 5_000
THREADS = 16
SIGTERM_AFTER = 1_500
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"uvicorn exited ({process.returncode}):\n{log.read_text()}"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"uvicorn did not answer within {START_TIMEOUT_S} s:\n{log.read_text()}")


def test_sigterm_under_load_loses_no_answered_hit(database_url: str, db, tmp_path: Path) -> None:
    campaign = add_campaign(db, 200)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TRACKING_SECRET": SECRET.decode(),
        # Most hits are still in memory when SIGTERM comes: the shutdown flush is what is tested.
        "TRACKING_FLUSH_INTERVAL": "2",
        "TRACKING_FLUSH_SIZE": "100000",
    }
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tracking_app.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(process, f"{base}/healthz", log)
        paths = [
            f"/o/{campaign.token(i % 200)}.gif" if i % 3 else f"/c/{campaign.token(i % 200)}/{i // 3 % 3}"
            for i in range(REQUESTS)
        ]
        answered = itertools.count()
        done = itertools.count()
        local = threading.local()
        term_sent = threading.Event()

        def fire(path: str) -> None:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=base, timeout=10)
            try:
                status = local.client.get(path).status_code
            except httpx.HTTPError:
                status = None
            if status in (200, 302):
                next(answered)
            if next(done) == SIGTERM_AFTER:
                process.send_signal(signal.SIGTERM)
                term_sent.set()

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(fire, paths))
        assert term_sent.is_set()
        # uvicorn re-raises the signal once its shutdown is complete.
        assert process.wait(timeout=STOP_TIMEOUT_S) in (0, -signal.SIGTERM), log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    answered_count = next(answered)
    recorded = len(events(db))
    assert SIGTERM_AFTER <= answered_count < REQUESTS, "SIGTERM should land while requests are in flight"
    assert recorded == answered_count, log.read_text()
