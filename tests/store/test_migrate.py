"""Migrations: applied once, in order, and safe to run again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from campaign_pipelines.settings import with_database
from campaign_pipelines.store import migrate
from campaign_pipelines.store.migrate import apply_migrations


def test_migrations_are_recorded_and_idempotent(db) -> None:
    versions = [row[0] for row in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == sorted(versions) and versions[0] == 1

    assert apply_migrations(db) == []
    tables = {row[0] for row in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"servers", "templates", "campaigns", "campaign_channels", "blacklist", "daily_counters"} <= tables


def test_keys_are_bigint(db) -> None:
    types = dict(
        db.execute(
            "SELECT table_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' AND column_name = 'id'"
        ).fetchall()
    )
    assert set(types.values()) == {"bigint"}


@pytest.fixture
def scratch(pg_server_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to an empty database of its own."""
    name = f"cp_migrate_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(with_database(pg_server_url, name), autocommit=True) as conn:
            yield conn
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_event_ids_come_to_a_database_holding_delivery_events(
    scratch: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = migrate._migration_files()
    with monkeypatch.context() as patch:
        patch.setattr(migrate, "_migration_files", lambda: [(v, text) for v, text in files if v < 6])
        apply_migrations(scratch)
    # What replays stored before event ids: three copies of one soft bounce, and two distinct ones.
    with scratch.cursor() as cur:
        cur.executemany(
            "INSERT INTO delivery_events (provider, email, event, detail, occurred_at, received_at)"
            " VALUES (%s, 'ana@example.com', 'soft_bounce', %s, %s, now() + make_interval(hours => %s))",
            [
                ("brevo", "full", "2025-11-28 08:30Z", 0),
                ("brevo", "full", "2025-11-28 08:30Z", 1),
                ("brevo", "full", "2025-11-28 08:30Z", 2),
                ("brevo", None, "2025-11-29 08:30Z", 0),
                ("sendgrid", "full", "2025-11-28 08:30Z", 0),
            ],
        )

    with monkeypatch.context() as patch:
        patch.setattr(migrate, "_migration_files", lambda: [(v, text) for v, text in files if v <= 6])
        assert apply_migrations(scratch) == [6]

    rows = scratch.execute("SELECT id, provider, occurred_at::date::text, event_id FROM delivery_events ORDER BY id")
    assert rows.fetchall() == [
        (1, "brevo", "2025-11-28", None),
        (4, "brevo", "2025-11-29", None),
        (5, "sendgrid", "2025-11-28", None),
    ]
    insert = (
        "INSERT INTO delivery_events (provider, event_id, email, event, occurred_at)"
        " VALUES ('brevo', %s, 'a', 'x', now())"
    )
    scratch.execute(insert, ("e1",))
    with pytest.raises(psycopg.errors.UniqueViolation):
        scratch.execute(insert, ("e1",))
    with pytest.raises(psycopg.errors.CheckViolation):
        scratch.execute(insert, (None,))
