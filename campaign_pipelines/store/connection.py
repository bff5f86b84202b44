"""Connections to the campaign database."""

from __future__ import annotations

import psycopg

from campaign_pipelines.store.migrate import apply_migrations


def connect(url: str) -> psycopg.Connection:
    """An autocommit connection: callers open a transaction where they need one."""
    return psycopg.connect(url, autocommit=True)


def ensure_schema(url: str) -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    with connect(url) as conn:
        return apply_migrations(conn)
