"""Daily quotas: PostgreSQL's record enforces them at every claim; the Redis counters in front of
it are seeded from that record when missing and never go below zero."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

from campaign_pipelines.quotas import RedisQuotas, quota_day
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import quotas as quota_sql
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store.connection import connect
from campaign_pipelines.store.quotas import Quota
from tests.sending.fixtures import BREVO, DAY, SENDGRID, lose_counters


def test_a_redis_counter_grants_up_to_the_limit_and_gives_back(cache: RedisQuotas) -> None:
    counter = "line:1"
    assert cache.reserve(counter, DAY, 7, 10, lambda: 0) == 7
    assert cache.reserve(counter, DAY, 7, 10, lambda: 0) == 3
    assert cache.reserve(counter, DAY, 1, 10, lambda: 0) == 0
    cache.give_back(counter, DAY, 2)
    assert cache.used(counter, DAY) == 8
    assert cache.reserve(counter, DAY, 5, 10, lambda: 0) == 2
    # A new day starts from what PostgreSQL recorded for it.
    assert cache.reserve(counter, date(2026, 12, 1), 5, 10, lambda: 0) == 5


def test_a_lost_counter_is_seeded_from_what_postgresql_recorded(cache: RedisQuotas, client, namespace) -> None:
    assert cache.reserve("line:1", DAY, 400, 3000, lambda: 0) == 400
    lose_counters(client, namespace)
    # 2,900 were recorded in PostgreSQL that day: only 100 are left, not 3,000.
    assert cache.reserve("line:1", DAY, 400, 3000, lambda: 2900) == 100
    assert cache.used("line:1", DAY) == 3000


def test_a_give_back_on_a_lost_counter_neither_recreates_it_nor_goes_negative(
    cache: RedisQuotas, client, namespace
) -> None:
    assert cache.reserve("line:1", DAY, 400, 3000, lambda: 0) == 400
    lose_counters(client, namespace)
    cache.give_back("line:1", DAY, 400)
    assert cache.used("line:1", DAY) is None
    assert cache.reserve("line:1", DAY, 5000, 3000, lambda: 1000) == 2000
    cache.give_back("line:1", DAY, 10_000)
    assert cache.used("line:1", DAY) == 0


def test_a_counter_is_raised_to_what_postgresql_recorded_never_lowered(cache: RedisQuotas) -> None:
    cache.reserve("line:1", DAY, 100, 3000, lambda: 0)
    cache.raise_to("line:1", DAY, 250)
    assert cache.used("line:1", DAY) == 250
    cache.raise_to("line:1", DAY, 50)
    assert cache.used("line:1", DAY) == 250


def test_concurrent_claims_never_take_more_than_the_quota(db, database_url, make_campaign) -> None:
    setup = make_campaign(3_000, [BREVO, SENDGRID])
    line_quota = Quota("server:shared", DAY, 1_000, "server cap 1000/day")

    def worker(line_id: int) -> int:
        taken = 0
        with connect(database_url) as conn:
            while claimed := send_sql.claim(conn, setup.campaign_id, line_id, "run", 7, [line_quota]).contacts:
                taken += len(claimed)
        return taken

    for line_id in setup.line_ids:
        assert line_sql.claim_line(db, line_id, "run", stale_after_s=120)
    with ThreadPoolExecutor(4) as pool:
        totals = list(pool.map(worker, setup.line_ids * 2))

    assert sum(totals) == quota_sql.used(db, "server:shared", DAY) == 1_000
    assert send_sql.status_counts(db, setup.campaign_id)[ContactStatus.PENDING] == 2_000


def test_a_claim_reports_the_quota_that_left_no_room(db, make_campaign) -> None:
    setup = make_campaign(50, [BREVO])
    line = Quota("line:1", DAY, 30, "30/day")
    server = Quota("server:1", DAY, 20, "server cap 20/day")
    (line_id,) = setup.line_ids
    assert line_sql.claim_line(db, line_id, "run", stale_after_s=120)
    first = send_sql.claim(db, setup.campaign_id, line_id, "run", 100, [line, server])
    assert (len(first.contacts), first.room, first.tightest) == (20, 20, server)
    second = send_sql.claim(db, setup.campaign_id, line_id, "run", 100, [line, server])
    assert (second.contacts, second.room, second.tightest) == ([], 0, server)


def test_released_contacts_give_their_sends_back(db, make_campaign) -> None:
    setup = make_campaign(50, [BREVO])
    quota = Quota("line:1", DAY, 30, "30/day")
    (line_id,) = setup.line_ids
    assert line_sql.claim_line(db, line_id, "run", stale_after_s=120)
    claim = send_sql.claim(db, setup.campaign_id, line_id, "run", 30, [quota])
    sent = [c.id for c in claim.contacts[:20]]
    send_sql.record_results(
        db, setup.campaign_id, line_id, "run", ids=sent, statuses=[ContactStatus.SENT] * 20,
        message_ids=[None] * 20, errors=[None] * 20,
    )  # fmt: skip
    assert claim.lease is not None
    # The 10 contacts of the lease no call was made for go back, and their sends with them.
    assert send_sql.release_lease(db, setup.campaign_id, line_id, "run", claim.lease, [quota]) == 10
    assert quota_sql.used(db, "line:1", DAY) == 20
    # Releasing it again gives nothing more back.
    assert send_sql.release_lease(db, setup.campaign_id, line_id, "run", claim.lease, [quota]) == 0
    assert quota_sql.used(db, "line:1", DAY) == 20


def test_days_follow_the_server_time_zone() -> None:
    late_evening_utc = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    assert quota_day(late_evening_utc, "UTC") == (date(2026, 11, 30), datetime(2026, 12, 1, tzinfo=UTC))
    day, next_day = quota_day(late_evening_utc, "Europe/Paris")
    assert day == date(2026, 12, 1)
    assert next_day.isoformat() == "2026-12-02T00:00:00+01:00"
