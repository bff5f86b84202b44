"""The Redis counters in front of PostgreSQL's daily quota record, when REDIS_URL is set."""

from __future__ import annotations

import dagster as dg
import psycopg
import redis
from pydantic import Field

from campaign_pipelines.quotas import RedisQuotas


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
        info = conn.info
        return RedisQuotas(redis.Redis.from_url(self.redis_url), namespace=f"{info.host}:{info.port}/{info.dbname}")
