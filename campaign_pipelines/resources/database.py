"""The campaign database as a Dagster resource (always a real PostgreSQL)."""

from __future__ import annotations

import dagster as dg
import psycopg
from pydantic import Field

from campaign_pipelines.store.connection import connect, ensure_schema


class PostgresResource(dg.ConfigurableResource):
    """PostgreSQL holding servers, templates, campaigns, contacts and the email log."""

    url: str = Field(description="PostgreSQL URL of the campaign database (set DATABASE_URL).")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        ensure_schema(self.url)

    def connect(self) -> psycopg.Connection:
        return connect(self.url)
