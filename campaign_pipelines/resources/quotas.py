"""The Redis counters in front of PostgreSQL's daily quota record, when REDIS_URL is set."""

from __future__ import annotations

import dagster as dg
import psycopg
from pydantic import Field

from campaign_pipelines.quotas import RedisQuotas

# A Redis that does not answer within this is given up for the run (PostgreSQL enforces quotas).
REDIS_TIMEOUT_S = 5.0


class QuotaResource(dg.ConfigurableResource):
    redis_url: str = Field(
        default="",
        description=(
            "Redis URL for the atomic daily counters (REDIS_URL); empty = PostgreSQL's record alone."
            " PostgreSQL enforces every quota either way."
        ),
    )

    def store(self, conn: psycopg.Connection) -> RedisQuotas | None:
        """The Redis counters of `conn`'s database (None without Redis)."""
        if not self.redis_url:
            return None
        # Here, not at the top: every run worker imports this module with the Definitions, and
        # redis-py costs 0.2-0.3 s of each run's start (an admin form's too) where REDIS_URL is unset.
        import redis

        info = conn.info
        client = redis.Redis.from_url(
            self.redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        return RedisQuotas(client, namespace=f"{info.host}:{info.port}/{info.dbname}")
