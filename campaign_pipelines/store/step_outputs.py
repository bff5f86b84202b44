"""SQL of the step outputs that Celery workers hand to each other (resources.step_outputs)."""

from __future__ import annotations

import psycopg


def save(conn: psycopg.Connection, key: str, value: bytes) -> None:
    """Store (or replace, for a retried step) one output."""
    conn.execute(
        "INSERT INTO step_outputs (key, value) VALUES (%s, %s)"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, stored_at = now()",
        (key, value),
    )


def load(conn: psycopg.Connection, key: str) -> bytes | None:
    row = conn.execute("SELECT value FROM step_outputs WHERE key = %s", (key,)).fetchone()
    return None if row is None else bytes(row[0])
