"""The fake providers on a real socket: uvicorn in a background thread on a free 127.0.0.1 port.

`running_fakes()` is a context manager for tests and benchmarks; `fake_server` is a session-wide
pytest fixture built on it (import it into a conftest.py to use it). `serving()` does the same
for any ASGI app (the fault tests serve the tracking app with it).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import pytest
import uvicorn
from starlette.types import ASGIApp

from tests.fakes.providers import FakeProviders, create_app, urls

_STARTUP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class FakeServer:
    url: str
    state: FakeProviders

    @property
    def urls(self) -> dict[str, str]:
        """Each provider's server URL on this fake, as servers.DEFAULT_URLS gives the real ones."""
        return urls(self.url)


@contextmanager
def serving(app: ASGIApp, *, name: str, lifespan: Literal["on", "off"] = "off") -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread on a free 127.0.0.1 port until the block ends; yields its URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan=lifespan,
        ws="none",
        # A scripted delay keeps a request open; shutdown does not wait for it.
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            listener.close()
            raise RuntimeError(f"the {name} server did not start")
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=_STARTUP_TIMEOUT_S)
        listener.close()


@contextmanager
def running_fakes(state: FakeProviders | None = None) -> Iterator[FakeServer]:
    """Serve the fake providers until the block ends; yields the base URL and the shared state."""
    state = state or FakeProviders()
    with serving(create_app(state), name="fake-providers") as url:
        yield FakeServer(url, state)


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeServer]:
    with running_fakes() as server:
        yield server
