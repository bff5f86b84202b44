"""A line's reservations on the Redis counters of all its quotas at once, and the run going on
with PostgreSQL alone once Redis fails."""

from __future__ import annotations

import redis

from campaign_pipelines.quotas import RedisQuotas
from campaign_pipelines.sending.reservations import Reservations
from campaign_pipelines.store.quotas import Quota
from tests.sending.fixtures import DAY

LINE = Quota("line:1", DAY, 100, "100/day")
SERVER = Quota("server:1", DAY, 30, "server cap 30/day")


def test_the_tightest_quota_bounds_every_counter_and_unused_sends_go_back(db, cache: RedisQuotas) -> None:
    warnings: list[str] = []
    reservations = Reservations(db, cache, warnings.append)

    granted, full, give_back = reservations.reserve([LINE, SERVER], 50)
    assert (granted, full) == (30, None)
    assert (cache.used("line:1", DAY), cache.used("server:1", DAY)) == (30, 30)
    give_back(10)
    assert (cache.used("line:1", DAY), cache.used("server:1", DAY)) == (20, 20)

    reservations.reserve([LINE, SERVER], 10)
    granted, full, _ = reservations.reserve([LINE, SERVER], 10)
    assert (granted, full) == (0, SERVER)
    assert (cache.used("line:1", DAY), cache.used("server:1", DAY)) == (30, 30)  # nothing kept on the line
    assert warnings == []


def test_an_unreachable_redis_grants_what_is_wanted_and_says_so_once(db) -> None:
    unreachable = RedisQuotas(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5), "x")
    warnings: list[str] = []
    reservations = Reservations(db, unreachable, warnings.append)

    assert reservations.reserve([LINE], 50)[:2] == (50, None)
    assert reservations.reserve([LINE], 50)[:2] == (50, None)
    assert len(warnings) == 1 and warnings[0].startswith("Redis is unreachable (")
    assert warnings[0].endswith("the rest of this run counts its quotas in PostgreSQL alone")
