"""ProviderClient: one POST straight through an httpx transport, kept alive, timeouts applied."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from campaign_pipelines.providers.client import USER_AGENT, ProviderClient


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    peers: set[tuple[str, int]]
    delay_s = 0.0

    def do_POST(self) -> None:
        self.peers.add(self.client_address)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay_s)
        answer = self.headers["User-Agent"].encode() + b" " + body
        self.send_response(201)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"peers": set()})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/send", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_posts_are_read_whole_and_share_one_connection(server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    with ProviderClient(timeout=5.0) as client:
        answers = [client.post(url, content=f"call {n}".encode(), headers={}) for n in range(20)]

    assert [a.status_code for a in answers] == [201] * 20
    assert answers[7].text == f"{USER_AGENT} call 7"
    assert len(handler.peers) == 1


def test_the_read_timeout_applies(server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    handler.delay_s = 1.0
    started = time.monotonic()
    with ProviderClient(timeout=httpx.Timeout(5.0, read=0.2)) as client, pytest.raises(httpx.ReadTimeout):
        client.post(url, content=b"slow", headers={})
    assert time.monotonic() - started < 0.9


def test_the_caller_s_headers_reach_the_transport() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    with ProviderClient(httpx.MockTransport(answer), timeout=1.0) as client:
        response = client.post("https://api.example.com/v3/send", content=b"{}", headers={"api-key": "k"})

    assert response.json() == {"ok": True}
    (request,) = seen
    assert request.headers["api-key"] == "k" and request.headers["host"] == "api.example.com"
    assert request.content == b"{}"
