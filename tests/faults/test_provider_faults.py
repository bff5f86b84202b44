"""Providers misbehaving during one real run of three lines, each with its daily quota.

SendGrid answers 5xx to every other call, Postmark throws a storm of 429 with Retry-After,
Mailgun one without hints and then takes a call it answers after the client's read timeout.
The contacts are exactly the three quotas: every line must fill its own, and no more.
"""

from __future__ import annotations

import psycopg
import pytest

from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from tests.fakes.server import FakeServer
from tests.faults.support import Runs, Tally, assert_never_twice, deliveries
from tests.sending.fixtures import POSTMARK, SENDGRID

pytestmark = pytest.mark.faults

MAILGUN = {
    "sender_name": "Les Offres",
    "sender_email": "offres@mondomaine.com",
    "server": "Mailgun - Envois",
    "provider": "mailgun",
}
QUOTA = 300
BATCH = 50
CONTACTS = 3 * QUOTA
# A provider's answer is awaited this long (the run's `http` resource); the slow call takes longer.
READ_TIMEOUT_S = 1.0
LATE_S = 3.0
SERVER_ERRORS = 5
RATE_LIMITED_WITH_HINT = 4
RATE_LIMITED_WITHOUT_HINT = 3


def test_server_errors_rate_limits_and_a_read_timeout_send_nobody_twice_nor_over_quota(
    db: psycopg.Connection, strict_fake: FakeServer, make_campaign, runs: Runs
) -> None:
    lines = [{**spec, "max_daily_sends": QUOTA} for spec in (SENDGRID, POSTMARK, MAILGUN)]
    setup = make_campaign(CONTACTS, lines, base=strict_fake.url, launch=False)
    db.execute("UPDATE servers SET batch_size = %s", (BATCH,))
    fakes = strict_fake.state
    # Each line makes at least QUOTA / BATCH calls: every scripted fault is met.
    for _ in range(SERVER_ERRORS):
        fakes.fail_next("sendgrid", 500, after=1)
    fakes.fail_next("postmark", 429, times=RATE_LIMITED_WITH_HINT, after=1, retry_after_s=0.5)
    fakes.fail_next("mailgun", 429, times=RATE_LIMITED_WITHOUT_HINT, after=1)
    # After the storm, the retried call goes through; the next one is answered too late.
    fakes.delay_next("mailgun", LATE_S, after=1)

    runs.send(setup.campaign_id, http_timeout_s=READ_TIMEOUT_S).succeeded()

    statuses = {provider: [call.status for call in fakes.calls(provider)] for provider in ("sendgrid", "postmark")}
    assert statuses["sendgrid"].count(500) == SERVER_ERRORS
    assert statuses["postmark"].count(429) == RATE_LIMITED_WITH_HINT
    assert [call.status for call in fakes.calls("mailgun")].count(429) == RATE_LIMITED_WITHOUT_HINT
    tally = assert_never_twice(db, fakes, setup.campaign_id)
    # The late call's recipients were sent by the provider but never answered: unknown, not resent.
    assert tally == Tally(delivered=CONTACTS, duplicates=0, sent=CONTACTS - BATCH, failed=0, unknown=BATCH, pending=0)
    # Each provider got exactly its line's quota, the late call included.
    assert {
        provider: sum(deliveries(fakes, provider).values()) for provider in ("sendgrid", "postmark", "mailgun")
    } == {
        "sendgrid": QUOTA,
        "postmark": QUOTA,
        "mailgun": QUOTA,
    }
    by_server = {
        line.server_name: (line.sent_count, line.unknown_count) for line in line_sql.lines_of(db, setup.campaign_id)
    }
    assert by_server == {
        SENDGRID["server"]: (QUOTA, 0),
        POSTMARK["server"]: (QUOTA, 0),
        MAILGUN["server"]: (QUOTA - BATCH, BATCH),
    }
    campaign = campaign_sql.campaign_by_id(db, setup.campaign_id)
    assert campaign is not None and campaign.status == "completed"
