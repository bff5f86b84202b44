"""The quotas resource: Redis counters only when REDIS_URL is set, kept apart per campaign database."""

from __future__ import annotations

from datetime import date

import psycopg

from campaign_pipelines.resources.quotas import QuotaResource
from tests.sending.fixtures import REDIS_URL

DAY = date(2026, 11, 30)


def test_without_a_redis_url_postgresql_alone_keeps_the_quotas(db: psycopg.Connection) -> None:
    assert QuotaResource().store(db) is None


def test_two_databases_on_one_redis_count_apart(
    db: psycopg.Connection, pg_server_url: str, quota_resource: QuotaResource
) -> None:
    # Line ids start at 1 in every database: the same counter name in two databases is two counters.
    mine = quota_resource.store(db)
    assert mine is not None
    with psycopg.connect(pg_server_url) as other_db:  # the server's own database, only read
        other = QuotaResource(redis_url=REDIS_URL).store(other_db)
        assert other is not None

        assert mine.reserve("line:1", DAY, 7, 10, lambda: 0) == 7
        assert other.used("line:1", DAY) is None
        assert mine.used("line:1", DAY) == 7
