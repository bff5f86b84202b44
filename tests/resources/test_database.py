"""The database resource: a step finds the campaign schema in place, and each connect is its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.settings import with_database


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """A database of its own with no table yet, dropped after the test."""
    name = f"cp_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_database(pg_server_url, name)
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_step_on_a_new_database_finds_the_schema_and_connections_of_its_own(empty_database_url: str) -> None:
    tables: list[str] = []

    @dg.op
    def read_tables(database: PostgresResource) -> None:
        with database.connect() as first, database.connect() as second:
            assert first.info.backend_pid != second.info.backend_pid
            rows = first.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
            tables.extend(row[0] for row in rows)

    @dg.job
    def tables_job() -> None:
        read_tables()

    result = tables_job.execute_in_process(resources={"database": PostgresResource(url=empty_database_url)})

    assert result.success
    assert {"servers", "templates", "campaigns", "campaign_channels", "blacklist"} <= set(tables)
