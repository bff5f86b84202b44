"""Fixtures for the tracking app: a campaign with contacts and links, the app on the test database."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from starlette.testclient import TestClient

from campaign_pipelines import campaigns, templates
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store import tracking as tracking_sql
from campaign_pipelines.store.contacts import contact_table, create_contact_table, create_send_indexes, outcome_table
from campaign_pipelines.tracking.tokens import make_token
from tracking_app.app import create_app
from tracking_app.settings import Settings

SECRET = b"tracking-test-secret"
LINKS = ["https://shop.example.com/bf?utm=mail", "https://shop.example.com/vip", "https://x.example/a?b=1&amp;c=2"]
# The load balancer in front of the app, as the tests configure it.
PROXY = "10.0.0.7"


@dataclass(frozen=True)
class Campaign:
    id: int
    contact_ids: list[int]
    emails: list[str]

    def token(self, index: int = 0) -> str:
        return make_token(SECRET, self.id, self.contact_ids[index])


def add_campaign(
    conn: psycopg.Connection, contacts: int, *, links: list[str] = LINKS, sent_ago_s: float = 3600
) -> Campaign:
    """A campaign with its contact table and link table, its contacts sent `sent_ago_s` seconds ago."""
    if templates.catalog.template_by_name(conn, "tracked") is None:
        templates.save_template(conn, "tracked", "<p>Bonjour</p>")
    campaign_id = campaigns.create_campaign(conn, name="Black Friday", subject="Offres", template="tracked")
    create_contact_table(conn, campaign_id)
    emails = [f"user{i}@example.com" for i in range(contacts)]
    rows = conn.execute(
        sql.SQL("INSERT INTO {} (email, attributes) SELECT e, '{{}}' FROM unnest(%s::text[]) AS e RETURNING id").format(
            contact_table(campaign_id)
        ),
        (emails,),
    ).fetchall()
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (contact_id, status, at) SELECT id, %s, now() - make_interval(secs => %s) FROM {}"
        ).format(outcome_table(campaign_id), contact_table(campaign_id)),
        (ContactStatus.SENT, sent_ago_s),
    )
    send_sql.open_cursor(conn, campaign_id)
    conn.execute(
        "INSERT INTO servers (name, provider, url, api_key_ref) VALUES ('sandbox', 'sandbox', 'sandbox:', 'env:NONE')"
        " ON CONFLICT (name) DO NOTHING"
    )
    conn.execute(
        "INSERT INTO campaign_channels (campaign_id, position, sender_name, sender_email, server_id, last_sent_at)"
        " SELECT %s, 1, 'Boutique', 'news@shop.example.com', id, now() - make_interval(secs => %s)"
        " FROM servers WHERE name = 'sandbox'",
        (campaign_id, sent_ago_s),
    )
    tracking_sql.save_links(conn, campaign_id, links)
    create_send_indexes(conn, campaign_id)  # as its launch would
    return Campaign(campaign_id, [row[0] for row in rows], emails)


@pytest.fixture
def campaign(db: psycopg.Connection) -> Campaign:
    return add_campaign(db, 5)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        secret=SECRET,
        trusted_proxies=(ipaddress.ip_network(PROXY),),
        flush_interval_s=0.05,
    )


@pytest.fixture
def make_client(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """Starts the app (lifespan included) on the test database; `peer` is the client's address."""
    clients: list[TestClient] = []

    def make(peer: str = "198.51.100.20", **changes) -> TestClient:
        client = TestClient(create_app(replace(settings, **changes)), follow_redirects=False, client=(peer, 40000))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def events(conn: psycopg.Connection) -> list[dict]:
    """Every tracking event, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT campaign_id, contact_id, kind, link_idx, flag, host(ip) AS ip, user_agent, occurred_at"
            " FROM tracking_events ORDER BY id"
        ).fetchall()


def stop(client: TestClient) -> None:
    """Stop the app as uvicorn does on SIGTERM: its lifespan writes every buffered event."""
    client.__exit__(None, None, None)


def wait_for_events(conn: psycopg.Connection, count: int, timeout_s: float = 5) -> list[dict]:
    """The events once `count` are written (the writer flushes on its own, every flush interval)."""
    deadline = time.monotonic() + timeout_s
    while len(found := events(conn)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return found
