"""Daily send quotas: atomic counters, reserve n / give back what was not used.

Redis when REDIS_URL is set (the seed's atomic counter in the cache); otherwise PostgreSQL
gives the same guarantees through a row lock. Days are counted in the server's time zone.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import psycopg
import redis

# Counters outlive their day by this much, then Redis drops them.
_KEEP_S = 3 * 24 * 3600

# KEYS[1] counter; ARGV: wanted, limit, ttl. Grants min(wanted, limit - used), never beyond.
_RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local free = tonumber(ARGV[2]) - used
if free <= 0 then return 0 end
local granted = math.min(free, tonumber(ARGV[1]))
redis.call('INCRBY', KEYS[1], granted)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return granted
"""


class QuotaStore(Protocol):
    def reserve(self, counter: str, day: date, wanted: int, limit: int) -> int:
        """Take up to `wanted` of the day's `limit`; returns how many were granted."""

    def give_back(self, counter: str, day: date, count: int) -> None:
        """Return sends that were reserved but not made."""

    def used(self, counter: str, day: date) -> int: ...


class RedisQuotas:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        """`namespace` keeps apart the counters of databases sharing one Redis (line ids repeat)."""
        self._client = client
        self._namespace = namespace
        self._reserve = client.register_script(_RESERVE)

    def _key(self, counter: str, day: date) -> str:
        return f"campaigns:{self._namespace}:quota:{counter}:{day.isoformat()}"

    def reserve(self, counter: str, day: date, wanted: int, limit: int) -> int:
        return int(self._reserve(keys=[self._key(counter, day)], args=[wanted, limit, _KEEP_S]))

    def give_back(self, counter: str, day: date, count: int) -> None:
        if count > 0:
            self._client.decrby(self._key(counter, day), count)

    def used(self, counter: str, day: date) -> int:
        return int(self._client.get(self._key(counter, day)) or 0)


class PostgresQuotas:
    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def reserve(self, counter: str, day: date, wanted: int, limit: int) -> int:
        with self._conn.transaction():
            self._conn.execute(
                "INSERT INTO daily_counters (counter, day) VALUES (%s, %s) ON CONFLICT DO NOTHING", (counter, day)
            )
            row = self._conn.execute(
                "SELECT used FROM daily_counters WHERE counter = %s AND day = %s FOR UPDATE", (counter, day)
            ).fetchone()
            assert row is not None
            granted = max(0, min(wanted, limit - int(row[0])))
            if granted:
                self._conn.execute(
                    "UPDATE daily_counters SET used = used + %s WHERE counter = %s AND day = %s",
                    (granted, counter, day),
                )
            return granted

    def give_back(self, counter: str, day: date, count: int) -> None:
        if count > 0:
            self._conn.execute(
                "UPDATE daily_counters SET used = used - %s WHERE counter = %s AND day = %s", (count, counter, day)
            )

    def used(self, counter: str, day: date) -> int:
        row = self._conn.execute(
            "SELECT used FROM daily_counters WHERE counter = %s AND day = %s", (counter, day)
        ).fetchone()
        return int(row[0]) if row else 0


def quota_day(now: datetime, timezone: str) -> tuple[date, datetime]:
    """The day `now` falls in, in `timezone`, and the instant the next day starts."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    next_midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
    return local.date(), next_midnight
