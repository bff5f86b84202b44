"""Daily send quotas: the seed's atomic counter in the cache, in front of PostgreSQL's record.

PostgreSQL's `daily_counters` (store.quotas) is the truth: every claim is charged there, in the
claim's own transaction, and takes no more than the room left, so a quota holds whatever fails.
With REDIS_URL set, each line first reserves from a Redis counter (`RedisQuotas`): many workers
learn at once that a quota is spent, without queuing on the counter's row. A Redis counter
that is missing (a new day, or a Redis that lost its data) is seeded from PostgreSQL's record
before it grants anything; a give-back never takes it below zero nor recreates it; and when
PostgreSQL finds less room than Redis granted, the counter is raised to PostgreSQL's figure.
Days are counted in the server's time zone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    import redis

# Counters outlive their day by this much, then Redis drops them.
_KEEP_S = 3 * 24 * 3600

# KEYS[1] counter; ARGV: wanted, limit. Grants min(wanted, limit - used), never beyond;
# -1 when the counter does not exist: it must be seeded first.
_RESERVE = """
local used = redis.call('GET', KEYS[1])
if not used then return -1 end
local free = tonumber(ARGV[2]) - tonumber(used)
if free <= 0 then return 0 end
local granted = math.min(free, tonumber(ARGV[1]))
redis.call('INCRBY', KEYS[1], granted)
return granted
"""

# KEYS[1] counter; ARGV: count. A missing counter stays missing (its seed will be right).
_GIVE_BACK = """
local used = redis.call('GET', KEYS[1])
if not used then return 0 end
local left = math.max(0, tonumber(used) - tonumber(ARGV[1]))
redis.call('SET', KEYS[1], left, 'KEEPTTL')
return left
"""

# KEYS[1] counter; ARGV: at_least, ttl. Raises the counter to what PostgreSQL recorded.
_RAISE_TO = """
local used = tonumber(redis.call('GET', KEYS[1]) or '-1')
if used < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
return 0
"""


class RedisQuotas:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        """`namespace` keeps apart the counters of databases sharing one Redis (line ids repeat)."""
        self._client = client
        self._namespace = namespace
        self._reserve = client.register_script(_RESERVE)
        self._give_back = client.register_script(_GIVE_BACK)
        self._raise_to = client.register_script(_RAISE_TO)

    def _key(self, counter: str, day: date) -> str:
        return f"campaigns:{self._namespace}:quota:{counter}:{day.isoformat()}"

    def reserve(self, counter: str, day: date, wanted: int, limit: int, recorded: Callable[[], int]) -> int:
        """Take up to `wanted` of the day's `limit`; returns how many were granted.

        `recorded()` gives what PostgreSQL recorded for this counter and day: the seed of a
        counter Redis does not have.
        """
        key = self._key(counter, day)
        granted = int(self._reserve(keys=[key], args=[wanted, limit]))
        if granted < 0:
            # SET NX: of two workers seeding at once, the first wins and both then reserve.
            self._client.set(key, recorded(), nx=True, ex=_KEEP_S)
            granted = int(self._reserve(keys=[key], args=[wanted, limit]))
        return max(0, granted)

    def give_back(self, counter: str, day: date, count: int) -> None:
        """Return sends that were reserved but not made."""
        if count > 0:
            self._give_back(keys=[self._key(counter, day)], args=[count])

    def raise_to(self, counter: str, day: date, recorded: int) -> None:
        """PostgreSQL recorded more than this counter holds (it was seeded while a claim was in flight)."""
        self._raise_to(keys=[self._key(counter, day)], args=[recorded, _KEEP_S])

    def used(self, counter: str, day: date) -> int | None:
        """The counter's value; None when Redis does not have it."""
        value = self._client.get(self._key(counter, day))
        return None if value is None else int(value)


def quota_day(now: datetime, timezone: str) -> tuple[date, datetime]:
    """The day `now` falls in, in `timezone`, and the instant the next day starts."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    next_midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
    return local.date(), next_midnight
