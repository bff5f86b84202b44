"""The HTTP resource: a provider that does not answer is given up after the configured seconds."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from campaign_pipelines.resources.http import HttpClientResource


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v3/smtp/email"


def test_an_answer_that_never_comes_times_out_after_timeout_s(silent_server: str) -> None:
    client = HttpClientResource(timeout_s=0.3).client()
    started = time.monotonic()

    with pytest.raises(httpx.ReadTimeout):
        client.post(silent_server, content=b"{}", headers={"Content-Type": "application/json"})

    assert 0.25 <= time.monotonic() - started < 5
