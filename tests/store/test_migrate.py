"""Migrations: applied once, in order, and safe to run again."""

from __future__ import annotations

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
