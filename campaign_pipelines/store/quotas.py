"""SQL of daily quotas: `daily_counters`, the record of what each counter took each day.

Called inside the transactions that claim, release or fail contacts (store.sending), so the
record moves with the contacts' states and a crash can never leave it behind them. A claim
locks its counters' rows (in name order, so two lines sharing a server never deadlock) and
takes no more than their room: the quota holds even when the Redis counters lie.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import psycopg


@dataclass(frozen=True)
class Quota:
    """One daily counter a send is charged to: a line's `max_daily_sends` or a server's cap."""

    counter: str
    day: date
    limit: int
    # How a person reads it: "3000/day", "server cap 5000/day".
    label: str


def lock_room(conn: psycopg.Connection, quotas: Sequence[Quota]) -> tuple[int | None, Quota | None]:
    """Lock the counters' rows for this transaction; (smallest room left, the quota having it).

    (None, None) without quotas: no limit.
    """
    room: int | None = None
    tightest: Quota | None = None
    for quota in sorted(quotas, key=lambda q: q.counter):
        conn.execute(
            "INSERT INTO daily_counters (counter, day) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (quota.counter, quota.day),
        )
        row = conn.execute(
            "SELECT used FROM daily_counters WHERE counter = %s AND day = %s FOR UPDATE", (quota.counter, quota.day)
        ).fetchone()
        assert row is not None
        left = max(0, quota.limit - int(row[0]))
        if room is None or left < room:
            room, tightest = left, quota
    return room, tightest


def charge(conn: psycopg.Connection, quotas: Sequence[Quota], count: int) -> None:
    """Add `count` sends to every counter (`count` < 0 gives sends back, never below zero)."""
    if count:
        for quota in sorted(quotas, key=lambda q: q.counter):
            conn.execute(
                "UPDATE daily_counters SET used = greatest(0, used + %s) WHERE counter = %s AND day = %s",
                (count, quota.counter, quota.day),
            )


def used(conn: psycopg.Connection, counter: str, day: date) -> int:
    row = conn.execute("SELECT used FROM daily_counters WHERE counter = %s AND day = %s", (counter, day)).fetchone()
    return int(row[0]) if row else 0
