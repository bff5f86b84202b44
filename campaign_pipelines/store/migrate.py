"""Versioned schema migrations, applied in order, once, under an advisory lock.

Called by `make dev`, the CLI and the database resource before any other query, so a
fresh database and an up-to-date one behave the same.
"""

from __future__ import annotations

from importlib import resources

import psycopg

# Any constant works; it only has to be the same for every process migrating this database.
_MIGRATION_LOCK = 7_202_611_30


def _migration_files() -> list[tuple[int, str]]:
    folder = resources.files("campaign_pipelines.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.read_text(encoding="utf-8")))
    return sorted(found)


def apply_migrations(conn: psycopg.Connection) -> list[int]:
    """Apply every migration not applied yet; returns the versions applied now."""
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, sql in _migration_files():
            if version in done:
                continue
            conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied_now.append(version)
    return applied_now
