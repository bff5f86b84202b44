"""Daily quotas: never exceeded with concurrent workers, on Redis and on PostgreSQL alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

import pytest
import redis

from campaign_pipelines.quotas import PostgresQuotas, QuotaStore, RedisQuotas, quota_day
from campaign_pipelines.store.connection import connect

REDIS_URL = "redis://127.0.0.1:6379/0"
DAY = date(2026, 11, 30)


@pytest.fixture(params=["redis", "postgres"])
def make_store(request, database_url: str, db) -> Iterator:
    """A factory: one store per worker, as each line process has its own."""
    if request.param == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        try:
            client.ping()
        except redis.ConnectionError:
            pytest.fail("Redis must run on 127.0.0.1:6379 (make test uses the real one)")
        namespace = uuid.uuid4().hex
        yield lambda: RedisQuotas(redis.Redis.from_url(REDIS_URL), namespace)
        client.close()
    else:
        conns = []

        def factory() -> QuotaStore:
            conns.append(connect(database_url))
            return PostgresQuotas(conns[-1])

        yield factory
        for conn in conns:
            conn.close()


def test_reserve_grants_up_to_the_limit_and_gives_back(make_store) -> None:
    store = make_store()
    counter = f"line:{uuid.uuid4().hex}"
    assert store.reserve(counter, DAY, 7, 10) == 7
    assert store.reserve(counter, DAY, 7, 10) == 3
    assert store.reserve(counter, DAY, 1, 10) == 0
    store.give_back(counter, DAY, 2)
    assert store.used(counter, DAY) == 8
    assert store.reserve(counter, DAY, 5, 10) == 2
    # A new day starts from zero.
    assert store.reserve(counter, date(2026, 12, 1), 5, 10) == 5


def test_four_concurrent_workers_never_exceed_the_quota(make_store) -> None:
    counter = f"line:{uuid.uuid4().hex}"
    stores = [make_store() for _ in range(4)]

    def worker(store: QuotaStore) -> int:
        taken = 0
        while granted := store.reserve(counter, DAY, 7, 1000):
            # Use part of each grant and give the rest back, as a line does with suppressed contacts.
            used = granted - 1 if granted > 1 else granted
            store.give_back(counter, DAY, granted - used)
            taken += used
        return taken

    with ThreadPoolExecutor(4) as pool:
        totals = list(pool.map(worker, stores))

    assert sum(totals) == stores[0].used(counter, DAY) == 1000
    assert all(total > 0 for total in totals)


def test_days_follow_the_server_time_zone() -> None:
    late_evening_utc = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    assert quota_day(late_evening_utc, "UTC") == (date(2026, 11, 30), datetime(2026, 12, 1, tzinfo=UTC))
    day, next_day = quota_day(late_evening_utc, "Europe/Paris")
    assert day == date(2026, 12, 1)
    assert next_day.isoformat() == "2026-12-02T00:00:00+01:00"
