"""A line's quotas for the day, and its reservations on their Redis counters, taken before each claim.

PostgreSQL's record enforces every quota at the claim (store.quotas); these reservations let many
workers learn at once that a quota is spent. On any Redis error the rest of the run goes on
with PostgreSQL alone, with a warning. Called by sending.line.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import psycopg

from campaign_pipelines.quotas import RedisQuotas, quota_day
from campaign_pipelines.store import quotas as quota_sql
from campaign_pipelines.store.lines import LineState
from campaign_pipelines.store.quotas import Quota

if TYPE_CHECKING:
    import redis


def day_quotas(line: LineState, now: datetime) -> tuple[list[Quota], datetime]:
    """The quotas a send of the line made `now` is charged to (its own max_daily_sends, its
    server's daily cap), and when their day ends in the server's time zone."""
    day, next_day = quota_day(now, line.server_timezone)
    quotas = []
    if line.max_daily_sends is not None:
        quotas.append(Quota(f"line:{line.id}", day, line.max_daily_sends, f"{line.max_daily_sends}/day"))
    if line.server_daily_cap is not None:
        quotas.append(
            Quota(f"server:{line.server_id}", day, line.server_daily_cap, f"server cap {line.server_daily_cap}/day")
        )
    return quotas, next_day


def _redis_error() -> type[Exception]:
    """redis-py's error, imported only when an exception reaches a handler: by then Redis is in use
    (the quota resource imported it), and every run worker's start stays without redis-py's 0.2-0.3 s."""
    import redis

    return redis.RedisError


def _nothing_to_give_back(unused: int) -> None:
    return None


class Reservations:
    def __init__(self, conn: psycopg.Connection, cache: RedisQuotas | None, warn: Callable[[str], None]) -> None:
        self._conn = conn
        self._cache = cache
        self._warn = warn

    def reserve(self, quotas: list[Quota], wanted: int) -> tuple[int, Quota | None, Callable[[int], None]]:
        """Reserve up to `wanted` sends on the counters of `quotas` (all of them, or none).

        Returns what was granted, the quota that had no room left (when nothing was granted),
        and a function giving back an unused part. Without Redis everything is granted here:
        the claim takes what PostgreSQL's record leaves.
        """
        cache = self._cache
        if cache is None or not quotas:
            return wanted, None, _nothing_to_give_back
        granted = wanted
        taken: list[Quota] = []
        for quota in quotas:

            def recorded(quota: Quota = quota) -> int:
                return quota_sql.used(self._conn, quota.counter, quota.day)

            try:
                got = cache.reserve(quota.counter, quota.day, granted, quota.limit, recorded)
            except _redis_error() as error:
                for earlier in taken:
                    self._give_back(earlier, granted)
                self._lose(error)
                return wanted, None, _nothing_to_give_back
            for earlier in taken:
                self._give_back(earlier, granted - got)
            taken.append(quota)
            granted = got
            if granted == 0:
                return 0, quota, _nothing_to_give_back

        def give_back(unused: int) -> None:
            for quota in taken:
                self._give_back(quota, unused)

        return granted, None, give_back

    def raise_to_recorded(self, quotas: list[Quota]) -> None:
        """Redis held less than PostgreSQL recorded (seeded while another claim was in flight)."""
        if self._cache is not None:
            try:
                for quota in quotas:
                    self._cache.raise_to(quota.counter, quota.day, quota_sql.used(self._conn, quota.counter, quota.day))
            except _redis_error() as error:
                self._lose(error)

    def _give_back(self, quota: Quota, unused: int) -> None:
        """Best effort: a counter left too high only ends a line's day early."""
        if self._cache is not None:
            try:
                self._cache.give_back(quota.counter, quota.day, unused)
            except _redis_error() as error:
                self._lose(error)

    def _lose(self, error: redis.RedisError) -> None:
        # PostgreSQL enforces every quota at the claim: the line goes on without the cache.
        self._cache = None
        self._warn(f"Redis is unreachable ({error}); the rest of this run counts its quotas in PostgreSQL alone")
