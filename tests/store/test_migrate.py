"""Migrations: applied once, in order, and safe to run again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from campaign_pipelines.settings import with_database
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import migrate
from campaign_pipelines.store import sending as send_sql
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


def _migrated_before(version: int, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> list:
    """Apply the migrations older than `version`, as a database made before it was; returns them all."""
    files = migrate._migration_files()
    with monkeypatch.context() as patch:
        patch.setattr(migrate, "_migration_files", lambda: [(v, text) for v, text in files if v < version])
        apply_migrations(conn)
    return files


def test_event_ids_come_to_a_database_holding_delivery_events(
    scratch: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _migrated_before(6, scratch, monkeypatch)
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


def _running_campaign_before_0010(conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database migrated up to 0009 holding campaign 1, running, on template 1 and sandbox
    server 1, and its contact table as it was then (send states in its rows); no line yet."""
    _migrated_before(10, conn, monkeypatch)
    conn.execute("INSERT INTO templates (name, html) VALUES ('t', '<p>x</p>')")
    conn.execute("INSERT INTO servers (name, provider, url, api_key_ref) VALUES ('s', 'sandbox', 'sandbox:', 'env:K')")
    conn.execute(
        "INSERT INTO campaigns (name, subject, template_id, template_html, status) VALUES ('c', 's', 1, 'x', 'running')"
    )
    conn.execute(
        "CREATE TABLE contacts_campaign_1 (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL,"
        " attributes json NOT NULL, send_status smallint NOT NULL DEFAULT 0, channel_id bigint, message_id text,"
        " error text, attempted_at timestamptz)"
    )


def test_send_states_move_to_outcome_tables_and_nobody_is_sent_twice(
    scratch: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A campaign stopped mid-send before outcome tables: its contact table held each send state.
    _running_campaign_before_0010(scratch, monkeypatch)
    scratch.execute(
        "INSERT INTO campaign_channels (campaign_id, position, sender_name, sender_email, server_id, unknown_count)"
        " VALUES (1, 1, 'n', 'n@example.com', 1, 0)"
    )
    # user1-2 sent, 3 failed, 4 suppressed, 5 pending, 6 reserved by a call that left, 7 reserved only.
    for status, message_id, error in [(2, "m1", None), (2, "m2", None), (3, None, "refused"), (5, None, None),
                                      (0, None, None), (1, None, None), (1, None, None)]:  # fmt: skip
        scratch.execute(
            "INSERT INTO contacts_campaign_1 (email, attributes, send_status, channel_id, message_id, error,"
            " attempted_at) VALUES ('user' || (SELECT count(*) + 1 FROM contacts_campaign_1) || '@example.com', '{}',"
            " %s, CASE WHEN %s > 0 THEN 1 END, %s, %s, CASE WHEN %s > 0 THEN now() END)",
            (status, status, message_id, error, status),
        )
    scratch.execute("INSERT INTO inflight_calls (line_id, contact_ids) VALUES (1, '{6}')")

    assert apply_migrations(scratch) == [10]

    outcomes = scratch.execute(
        "SELECT contact_id, line_id, status, message_id, error FROM outcomes_campaign_1 ORDER BY contact_id"
    ).fetchall()
    assert outcomes == [
        (1, 1, 2, "m1", None),
        (2, 1, 2, "m2", None),
        (3, 1, 3, None, "refused"),
        (4, 1, 5, None, None),
        (6, 1, 4, None, None),
    ]
    columns = scratch.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'contacts_campaign_1'"
        " ORDER BY ordinal_position"
    ).fetchall()
    assert columns == [("id",), ("email",), ("attributes",)]
    assert scratch.execute("SELECT count(*) FROM inflight_calls").fetchone() == (0,)
    assert scratch.execute("SELECT unknown_count FROM campaign_channels").fetchone() == (1,)
    # The next claims take the pending contact and the one reserved but never requested, and nobody else.
    scratch.execute("UPDATE campaign_channels SET run_id = 'run'")
    claimed = send_sql.claim(scratch, 1, 1, "run", 10)
    assert [c.email for c in claimed.contacts] == ["user5@example.com", "user7@example.com"]
    assert send_sql.claim(scratch, 1, 1, "run", 10).contacts == []


def test_a_run_of_the_previous_version_sending_across_the_migration_may_not_call_again(
    scratch: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    _running_campaign_before_0010(scratch, monkeypatch)
    # A worker of the previous version is sending the line: it reserved contact 2 and has not called yet.
    scratch.execute(
        "INSERT INTO campaign_channels (campaign_id, position, sender_name, sender_email, server_id, status, run_id,"
        " heartbeat_at) VALUES (1, 1, 'n', 'n@example.com', 1, 'sending', 'old-run', now())"
    )
    scratch.execute(
        "INSERT INTO contacts_campaign_1 (email, attributes, send_status, channel_id)"
        " VALUES ('user1@example.com', '{}', 0, NULL), ('user2@example.com', '{}', 1, 1)"
    )

    assert apply_migrations(scratch) == [10]

    # Contact 2 is to send again, so the old worker (whose notes are written as this version's)
    # may not make its call: it lost the line, which a run of this version takes at once.
    assert send_sql.mark_in_flight(scratch, 1, "old-run", [2]) is None
    assert line_sql.heartbeat(scratch, 1, "old-run") == line_sql.LOST
    assert line_sql.claim_line(scratch, 1, "new-run", stale_after_s=120)
    assert [c.id for c in send_sql.claim(scratch, 1, 1, "new-run", 10).contacts] == [1, 2]
