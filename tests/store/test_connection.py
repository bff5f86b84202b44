"""Connections to the campaign database: autocommit, and a schema brought up to date once."""

from __future__ import annotations

import psycopg

from campaign_pipelines.store.connection import connect, ensure_schema


def test_a_connection_commits_each_statement_unless_a_transaction_is_opened(
    db: psycopg.Connection, database_url: str
) -> None:
    with connect(database_url) as writer:
        assert writer.autocommit
        writer.execute("INSERT INTO templates (name, html) VALUES ('committed', '<p/>')")
        assert db.execute("SELECT count(*) FROM templates").fetchone() == (1,)
        with writer.transaction():
            writer.execute("INSERT INTO templates (name, html) VALUES ('in a transaction', '<p/>')")
            assert db.execute("SELECT count(*) FROM templates").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM templates").fetchone() == (2,)


def test_the_schema_is_applied_to_a_new_database_once(empty_database_url: str) -> None:
    applied = ensure_schema(empty_database_url)

    assert applied and applied == sorted(applied)
    assert ensure_schema(empty_database_url) == []
    with psycopg.connect(empty_database_url) as conn:
        assert conn.execute("SELECT to_regclass('campaigns') IS NOT NULL").fetchone() == (True,)
