"""Fixtures for the provider tests: the fake providers, reached in-process or over a socket, and the
webhook routes on the test database."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from starlette.testclient import TestClient

from campaign_pipelines.providers.client import ProviderClient
from tests.fakes.providers import FakeProviders, urls
from tests.fakes.server import FakeServer, fake_server  # noqa: F401  (the session fixture)
from tests.providers.support import CLIENT_TIMEOUT, Recorder, Wire
from tests.providers.webhook_support import add_contacts, client_for


@pytest.fixture
def fakes(fake_server: FakeServer) -> FakeProviders:  # noqa: F811
    fake_server.state.reset()
    return fake_server.state


@pytest.fixture(params=["mock", "socket"])
def wire(request: pytest.FixtureRequest, fakes: FakeProviders, fake_server: FakeServer) -> Iterator[Wire]:  # noqa: F811
    """The same fake state through httpx.MockTransport (no socket) and through uvicorn on loopback."""
    if request.param == "mock":
        client = ProviderClient(fakes.transport(), timeout=CLIENT_TIMEOUT)
        base = "http://fake-providers.test"
    else:
        client = ProviderClient(timeout=CLIENT_TIMEOUT)
        base = fake_server.url
    with client:
        yield Wire(client, urls(base), fakes)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A fresh in-process fake whose requests are kept, for assertions on the wire format."""
    recording = Recorder(FakeProviders())
    with recording.client:
        yield recording


@pytest.fixture
def ids(db: psycopg.Connection) -> dict[str, int]:
    return add_contacts(db)


@pytest.fixture
def client(db: psycopg.Connection, database_url: str) -> Iterator[TestClient]:
    """A client of the webhook routes, with every fake provider's secrets."""
    with client_for(database_url) as client:
        yield client
