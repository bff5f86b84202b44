"""What the webhook tests share: campaign 12's contacts, a client of the webhook routes on the test
database with every fake provider's secrets, and what got recorded.

The app holds only the webhook routes, so these tests do not depend on the rest of the tracking
app. Import the fixtures (`ids`, `client`) into the test module that uses them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from starlette.applications import Starlette
from starlette.testclient import TestClient

from campaign_pipelines.store.contacts import contact_table, create_contact_table, create_send_indexes
from tests.fakes.providers import FAKES
from tracking_app import webhooks
from tracking_app.webhooks import WebhookSettings

CAMPAIGN = 12
ENVIRONMENT = {
    **{name: value for fake in FAKES.values() for name, value in fake.webhook_environment().items()},
    "SOFT_BOUNCE_LIMIT": "3",
}


def add_contacts(db: psycopg.Connection) -> dict[str, int]:
    """Campaign 12's contacts, email → contact id: their send ids are "12-<id>"."""
    create_contact_table(db, CAMPAIGN)
    table = contact_table(CAMPAIGN)
    with db.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO {} (email, attributes) VALUES (%s, '{{}}')").format(table),
            [(f"{name}@example.com",) for name in ("ana", "bob", "carl", "dan", "eve")],
        )
    create_send_indexes(db, CAMPAIGN)  # as its launch would
    return {email.split("@")[0]: id_ for email, id_ in db.execute(sql.SQL("SELECT email, id FROM {}").format(table))}


def client_for(database_url: str, environment: dict[str, str] | None = None) -> TestClient:
    app = Starlette(routes=webhooks.routes)
    app.state.webhook_settings = WebhookSettings.from_environment(
        ENVIRONMENT if environment is None else environment, database_url=database_url
    )
    return TestClient(app)


def events(db: psycopg.Connection) -> list[tuple]:
    """By request, then by address: one request's events are stored in event id order, not the payload's."""
    return db.execute(
        "SELECT provider, event, email, campaign_id, contact_id, detail FROM delivery_events"
        " ORDER BY received_at, email, event"
    ).fetchall()


def blacklisted(db: psycopg.Connection) -> dict[str, tuple[str, str]]:
    return {
        email: (source, reason) for email, source, reason in db.execute("SELECT email, source, reason FROM blacklist")
    }


def nothing_recorded(db: psycopg.Connection) -> bool:
    return (
        events(db) == []
        and blacklisted(db) == {}
        and db.execute("SELECT count(*) FROM webhook_tokens").fetchone() == (0,)
    )


# The arrival time the payload tests give the parsers.
NOW = datetime(2025, 11, 28, 12, 0, tzinfo=UTC)


def body(document: Any) -> bytes:
    return json.dumps(document).encode()
