"""Fixtures for the send loop, loaded by tests/conftest.py: launched campaigns, fake providers, a fake clock."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest
import redis

from campaign_pipelines import campaigns, servers, templates
from campaign_pipelines.contacts.campaign_import import import_campaign
from campaign_pipelines.providers.client import ProviderClient
from campaign_pipelines.quotas import RedisQuotas
from campaign_pipelines.resources.http import HttpClientResource
from campaign_pipelines.resources.quotas import QuotaResource
from campaign_pipelines.sending import campaign as lifecycle
from campaign_pipelines.sending.line import LineSender
from campaign_pipelines.sending.outcomes import LineOutcome
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store.connection import connect
from tests.fakes.clock import FakeClock
from tests.fakes.providers import DEFAULT_KEYS, FakeProviders, urls
from tests.support import BREVO_SERVER, SENDGRID_SERVER

FAKE_BASE = "http://fake-providers.test"
REDIS_URL = "redis://127.0.0.1:6379/0"
MIDNIGHT = datetime(2026, 12, 1, tzinfo=UTC)
TEMPLATE = '<p>Bonjour {{ first_name }}</p><p><a href="https://shop.example.com/bf">Offres</a></p>'
# A sending day of the quota tests.
DAY = date(2026, 11, 30)
# The lines `make_campaign` takes: the seed's two, and a third on Postmark.
BREVO = {
    "sender_name": "L'équipe Promo",
    "sender_email": "offres@mondomaine.com",
    "server": BREVO_SERVER,
    "provider": "brevo",
}
SENDGRID = {
    "sender_name": "Le Service Client",
    "sender_email": "support@mondomaine.com",
    "server": SENDGRID_SERVER,
    "provider": "sendgrid",
}
POSTMARK = {
    "sender_name": "Promo",
    "sender_email": "promo@mondomaine.com",
    "server": "Postmark",
    "provider": "postmark",
}


@pytest.fixture
def fakes() -> FakeProviders:
    return FakeProviders()


@pytest.fixture
def provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for provider, key in DEFAULT_KEYS.items():
        monkeypatch.setenv(f"{provider.upper()}_API_KEY", key)


@dataclass
class Setup:
    campaign_id: int
    line_ids: list[int]


@pytest.fixture
def make_campaign(db: psycopg.Connection, database_url: str, contacts_dir: Path, provider_keys) -> Callable[..., Setup]:
    """A launched campaign with `n` contacts and the given lines (dicts of LineSpec fields + provider).

    `launch=False` leaves it scheduled and imported, as the launch sensor and `plan_channels` find it.
    `attributes(i)` adds attributes to contact i; `template` replaces the default HTML.
    """

    def make(
        n: int,
        lines: list[dict],
        *,
        base: str = FAKE_BASE,
        blacklist: tuple[str, ...] = (),
        launch: bool = True,
        template: str = TEMPLATE,
        attributes: Callable[[int], dict] = lambda i: {},
    ) -> Setup:
        for spec in lines:
            name = spec["server"]
            if servers.catalog.server_by_name(db, name) is None:
                provider = spec["provider"]
                servers.add_server(
                    db,
                    servers.ServerSpec(
                        name=name,
                        provider=provider,
                        url=urls(base)[provider],
                        api_key_env=f"{provider.upper()}_API_KEY",
                    ),
                )
        templates.save_template(db, "promo", template)
        campaign_id = campaigns.create_campaign(
            db, name="Black Friday", subject="Offres {{ first_name }}", template="promo"
        )
        path = contacts_dir / "contacts.ndjson"
        path.write_text(
            "".join(
                json.dumps({"email": f"user{i}@example.com", "first_name": f"User{i}", **attributes(i)}) + "\n"
                for i in range(n)
            )
        )
        campaigns.configure_campaign(
            db,
            campaign_id,
            contact_files=[path.name],
            lines=[campaigns.LineSpec(**{k: v for k, v in spec.items() if k != "provider"}) for spec in lines],
            contacts_dir=contacts_dir,
        )
        for email in blacklist:
            db.execute("INSERT INTO blacklist (email, reason) VALUES (%s, 'unsubscribed')", (email,))
        import_campaign(lambda: connect(database_url), campaign_id, contacts_dir)
        if launch:
            lifecycle.launch(db, campaign_id)
        return Setup(campaign_id, [line.id for line in line_sql.lines_of(db, campaign_id)])

    return make


@pytest.fixture
def quota_namespace() -> Iterator[str]:
    namespace = uuid.uuid4().hex
    yield namespace
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"campaigns:{namespace}:*"):
        client.delete(key)
    client.close()


@pytest.fixture
def run_line(database_url: str, fakes: FakeProviders, quota_namespace: str) -> Callable[..., LineOutcome]:
    """Run one line to its end through the in-process fakes, with its own connection, as a worker does."""

    def run(
        line_id: int,
        *,
        clock=None,
        run_id: str | None = None,
        on_progress=None,
        client=None,
        tracking=None,
        second_connection: bool = True,
    ) -> LineOutcome:
        with (
            connect(database_url) as conn,
            connect(database_url) as results_conn,
            client or ProviderClient(fakes.transport(), timeout=5) as http,
        ):
            quotas = RedisQuotas(redis.Redis.from_url(REDIS_URL), quota_namespace)
            sender = LineSender(
                conn,
                line_id,
                run_id=run_id or uuid.uuid4().hex,
                quotas=quotas,
                client=http,
                clock=clock or FakeClock(MIDNIGHT),
                on_progress=on_progress,
                tracking=tracking,
                results_conn=results_conn if second_connection else None,
            )
            return sender.run()

    return run


@pytest.fixture
def quota_resource(database_url: str) -> Iterator[QuotaResource]:
    """The `quotas` resource on the test Redis; the counters of this test's database are dropped after it.

    Its namespace is the database's (host, port, name): line ids repeat from one test to the next.
    """
    yield QuotaResource(redis_url=REDIS_URL)
    with connect(database_url) as conn:
        info = conn.info
        namespace = f"{info.host}:{info.port}/{info.dbname}"
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"campaigns:{namespace}:*"):
        client.delete(key)
    client.close()


@pytest.fixture
def fake_http(fakes: FakeProviders) -> HttpClientResource:
    """The `http` resource whose clients reach the in-process fakes (no socket)."""

    class FakeHttpClientResource(HttpClientResource):
        def client(self) -> ProviderClient:
            return ProviderClient(fakes.transport(), timeout=self.timeout_s)

    return FakeHttpClientResource(timeout_s=5.0)


def lose_counters(client: redis.Redis, namespace: str) -> None:
    """What a Redis restarted empty keeps of a namespace's counters: nothing."""
    for key in client.scan_iter(f"campaigns:{namespace}:*"):
        client.delete(key)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    """The real Redis make test runs against."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail("Redis must run on 127.0.0.1:6379 (make test uses the real one)")
    yield client
    client.close()


@pytest.fixture
def namespace(client: redis.Redis) -> Iterator[str]:
    namespace = uuid.uuid4().hex
    yield namespace
    lose_counters(client, namespace)


@pytest.fixture
def cache(client: redis.Redis, namespace: str) -> RedisQuotas:
    """Quota counters of their own namespace, emptied afterwards."""
    return RedisQuotas(client, namespace)
