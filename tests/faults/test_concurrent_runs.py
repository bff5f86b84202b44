"""Two runs of one line started at once: one sends, the other finds the line taken; everyone gets one copy."""

from __future__ import annotations

import psycopg
import pytest

from campaign_pipelines.store import campaigns as campaign_sql
from tests.fakes.server import FakeServer
from tests.faults.support import Runs, Tally, assert_never_twice
from tests.sending.fixtures import SENDGRID

pytestmark = pytest.mark.faults

CONTACTS = 500
BATCH = 10
# Every call is answered this late: sending lasts long enough for two runs to overlap.
CALL_DELAY_S = 0.1


def test_two_runs_of_one_line_started_together_send_everyone_once(
    db: psycopg.Connection, strict_fake: FakeServer, make_campaign, runs: Runs
) -> None:
    setup = make_campaign(CONTACTS, [SENDGRID], base=strict_fake.url, launch=False)
    db.execute("UPDATE servers SET batch_size = %s", (BATCH,))
    strict_fake.state.delay_next("sendgrid", CALL_DELAY_S, times=CONTACTS)
    both = [runs.send(setup.campaign_id, setup.line_ids) for _ in range(2)]
    for run in both:
        run.succeeded()

    tally = assert_never_twice(db, strict_fake.state, setup.campaign_id)
    assert tally == Tally(delivered=CONTACTS, duplicates=0, sent=CONTACTS, failed=0, unknown=0, pending=0)
    assert len(strict_fake.state.calls("sendgrid")) == CONTACTS // BATCH
    campaign = campaign_sql.campaign_by_id(db, setup.campaign_id)
    assert campaign is not None and campaign.status == "completed"
