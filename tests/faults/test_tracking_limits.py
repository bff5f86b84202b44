"""The tracking app under real uvicorn, started as `make dev` starts it, refuses oversized requests
without growing: a header of several MB, a webhook body past the webhooks' limit (declared or
streamed), while a request of a browser's size is still answered."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tracking_app.settings import DEFAULT_MAX_HEADER_BYTES, uvicorn_command
from tracking_app.webhooks import MAX_BODY_BYTES

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15
SOCKET_TIMEOUT_S = 10
BIG_HEADER_BYTES = 32 * 1024 * 1024
MB = 1024 * 1024
# Without a limit, uvicorn keeps about twice a header's size while parsing it.
MAX_GROWTH_KB = 16 * 1024
MAX_PEAK_KB = 150 * 1024
BREVO_TOKEN = "fault-test-token"


@dataclass(frozen=True)
class Served:
    process: subprocess.Popen
    port: int
    log: Path

    def peak_kb(self) -> int:
        """VmHWM: the most resident memory the process has had since it started."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc status")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TRACKING_SECRET": "fault-test-secret",
        "BREVO_WEBHOOK_TOKEN": BREVO_TOKEN,
    }
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(uvicorn_command(port, env), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(f"http://127.0.0.1:{port}/healthz"):
            assert process.poll() is None, f"uvicorn exited ({process.returncode}):\n{log.read_text()}"
            assert time.monotonic() < deadline, f"uvicorn did not answer in {START_TIMEOUT_S} s:\n{log.read_text()}"
            time.sleep(0.1)
        yield Served(process, port, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _exchange(port: int, head: bytes, pieces: Iterator[bytes]) -> tuple[int, bytes]:
    """Send `head` then `pieces` until the server stops reading; (bytes sent, its answer or b"")."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_S) as sock:
        try:
            sock.sendall(head)
            for piece in pieces:
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection while we were still sending: what is tested
        try:
            return sent, sock.recv(4096)
        except ConnectionResetError:
            return sent, b""


def _megabytes(total: int, last: bytes = b"") -> Iterator[bytes]:
    piece = b"a" * MB
    for _ in range(total // MB):
        yield piece
    yield last


def test_a_header_of_several_megabytes_is_refused_and_the_process_stays_small(served: Served) -> None:
    before = served.peak_kb()

    sent, answer = _exchange(
        served.port,
        b"GET /healthz HTTP/1.1\r\nHost: t.example.com\r\nX-Padding: ",
        _megabytes(BIG_HEADER_BYTES, b"\r\n\r\n"),
    )

    assert sent < BIG_HEADER_BYTES, "the server read the whole header instead of closing the connection"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400 "), answer[:100]
    after = served.peak_kb()
    assert after - before < MAX_GROWTH_KB and after < MAX_PEAK_KB, (before, after)
    assert httpx.get(f"http://127.0.0.1:{served.port}/healthz", timeout=5).status_code == 200


def test_headers_of_a_browser_with_many_cookies_are_answered(served: Served) -> None:
    headers = {
        "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0",
        "accept": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
        "accept-language": "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7",
        "referer": "https://mail.example.com/",
        # A parent domain's analytics and session cookies: the biggest legitimate header we expect.
        "cookie": "; ".join(f"c{index}={'v' * 100}" for index in range(DEFAULT_MAX_HEADER_BYTES // 2 // 105)),
    }

    assert httpx.get(f"http://127.0.0.1:{served.port}/healthz", headers=headers, timeout=5).status_code == 200


def test_a_webhook_body_declared_too_large_is_refused_unread(served: Served) -> None:
    declared = MAX_BODY_BYTES + 1
    head = (
        f"POST /webhooks/brevo HTTP/1.1\r\nHost: t.example.com\r\nAuthorization: Bearer {BREVO_TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    ).encode()

    _, answer = _exchange(served.port, head, _megabytes(MB))

    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]


def test_a_streamed_webhook_body_is_refused_once_past_the_limit(served: Served) -> None:
    before = served.peak_kb()
    head = (
        f"POST /webhooks/brevo HTTP/1.1\r\nHost: t.example.com\r\nAuthorization: Bearer {BREVO_TOKEN}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"%x\r\n%s\r\n" % (MB, b"a" * MB)
    chunks = iter([chunk] * (2 * MAX_BODY_BYTES // MB) + [b"0\r\n\r\n"])

    _, answer = _exchange(served.port, head, chunks)

    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
    after = served.peak_kb()
    assert after - before < 4 * MAX_BODY_BYTES // 1024 and after < MAX_PEAK_KB, (before, after)
    assert httpx.get(f"http://127.0.0.1:{served.port}/healthz", timeout=5).status_code == 200
