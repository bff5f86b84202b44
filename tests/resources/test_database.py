"""The database resource: a step finds the campaign schema in place, and each connect is its own."""

from __future__ import annotations

import dagster as dg

from campaign_pipelines.resources.database import PostgresResource


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
