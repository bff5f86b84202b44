"""Step outputs in the campaign database, for runs whose steps run on Celery workers.

Dagster's default IO manager pickles outputs under the launching machine's DAGSTER_HOME, which
another worker cannot read. Every worker already reaches the campaign database, and only ids
and small summaries pass between our steps (a line id, a line's outcome), so they go there.
"""

from __future__ import annotations

import pickle

import dagster as dg
from pydantic import Field

from campaign_pipelines.store import step_outputs as outputs_sql
from campaign_pipelines.store.connection import connect, ensure_schema


def _key(identifier: list[str]) -> str:
    return "/".join(identifier)


class PostgresStepOutputs(dg.ConfigurableIOManager):
    """Pickled step outputs in the `step_outputs` table, readable by every worker."""

    url: str = Field(description="PostgreSQL URL of the campaign database (set DATABASE_URL).")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A step may store an output before any resource of it has touched the database.
        ensure_schema(self.url)

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        with connect(self.url) as conn:
            outputs_sql.save(conn, _key(context.get_identifier()), pickle.dumps(obj))

    def load_input(self, context: dg.InputContext) -> object:
        upstream = context.upstream_output
        assert upstream is not None, f"input '{context.name}' has no upstream output to load"
        key = _key(upstream.get_identifier())
        with connect(self.url) as conn:
            value = outputs_sql.load(conn, key)
        if value is None:
            raise dg.Failure(f"step output {key} is not in the campaign database's step_outputs table")
        return pickle.loads(value)
