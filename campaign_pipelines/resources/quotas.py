"""Where daily quota counters live: Redis when REDIS_URL is set, else PostgreSQL."""

from __future__ import annotations

import dagster as dg
import psycopg
import redis
from pydantic import Field

from campaign_pipelines.quotas import PostgresQuotas, QuotaStore, RedisQuotas


class QuotaResource(dg.ConfigurableResource):
    redis_url: str = Field(
        default="", description="Redis URL for the atomic daily counters (REDIS_URL); empty = PostgreSQL counters."
    )

    def store(self, conn: psycopg.Connection) -> QuotaStore:
        """Counters for one sending line; `conn` serves the PostgreSQL fallback."""
        if self.redis_url:
            info = conn.info
            return RedisQuotas(redis.Redis.from_url(self.redis_url), namespace=f"{info.host}:{info.port}/{info.dbname}")
        return PostgresQuotas(conn)
