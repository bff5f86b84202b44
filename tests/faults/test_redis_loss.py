"""Redis killed while a line with a daily quota sends, and back empty: the quota still holds.

PostgreSQL's record of the day is the truth; a Redis counter that vanished is seeded from it,
and a give-back on a vanished counter neither recreates it nor takes it below zero.
"""

from __future__ import annotations

import uuid
from datetime import date

import psycopg
import pytest
import redis

from campaign_pipelines.quotas import RedisQuotas
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import sending as send_sql
from tests.fakes.server import FakeServer
from tests.faults.support import OwnRedis, Runs, assert_never_twice, deliveries, emails_by_status, wait_for
from tests.sending.fixtures import SENDGRID

pytestmark = pytest.mark.faults

CONTACTS = 3_000
QUOTA = 1_000
BATCH = 100
# Each call is answered this late, so the kill lands mid-quota.
CALL_DELAY_S = 0.1
DAY = date(2026, 11, 30)


def test_redis_lost_mid_send_and_back_empty_never_lets_a_line_past_its_quota(
    db: psycopg.Connection, own_redis: OwnRedis, strict_fake: FakeServer, make_campaign, runs: Runs
) -> None:
    setup = make_campaign(CONTACTS, [{**SENDGRID, "max_daily_sends": QUOTA}], base=strict_fake.url, launch=False)
    db.execute("UPDATE servers SET batch_size = %s", (BATCH,))
    strict_fake.state.delay_next("sendgrid", CALL_DELAY_S, times=CONTACTS)
    run = runs.send(setup.campaign_id)
    wait_for(lambda: len(strict_fake.state.calls("sendgrid")) >= QUOTA // BATCH // 2, "half the quota sent")

    own_redis.kill()
    own_redis.start()  # empty: every counter of the day is gone
    if run.wait() != 0:
        # The step failed with its Redis: the sensor relaunches the line.
        runs.relaunch_stalled(db, setup.campaign_id)

    tally = assert_never_twice(db, strict_fake.state, setup.campaign_id, settled=False)
    reached = deliveries(strict_fake.state).keys() | emails_by_status(db, setup.campaign_id).get(
        ContactStatus.UNKNOWN, set()
    )
    # Everyone the provider got, and everyone it may have got, fit in the day's quota; and the
    # quota was used to the last send.
    assert len(reached) == tally.sent + tally.unknown == QUOTA
    assert send_sql.status_counts(db, setup.campaign_id).get(ContactStatus.PENDING) == CONTACTS - QUOTA
    (line,) = line_sql.lines_of(db, setup.campaign_id)
    assert (line.status, line.sent_count + line.unknown_count) == ("quota_reached", QUOTA)


def test_a_give_back_on_a_counter_redis_lost_does_not_make_room(own_redis: OwnRedis) -> None:
    client = redis.Redis.from_url(own_redis.url)
    try:
        quotas = RedisQuotas(client, uuid.uuid4().hex)
        counter = "line:1"
        assert quotas.reserve(counter, DAY, 300, QUOTA, recorded=lambda: 0) == 300
        own_redis.kill()
        own_redis.start()
        # 100 of the 300 were not sent: PostgreSQL now records 200 for the day.
        quotas.give_back(counter, DAY, 100)
        assert quotas.used(counter, DAY) is None  # not recreated, and never negative
        assert quotas.reserve(counter, DAY, QUOTA, QUOTA, recorded=lambda: 200) == QUOTA - 200
        assert quotas.used(counter, DAY) == QUOTA
        assert quotas.reserve(counter, DAY, 1, QUOTA, recorded=lambda: QUOTA) == 0
    finally:
        client.close()
