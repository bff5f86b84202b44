"""A send step killed mid-batch, its claim spanning several calls: only contacts of a request the
provider received may end `unknown`; the rest of the claim is sent by the relaunch, once."""

from __future__ import annotations

import os
import signal

import psycopg
import pytest

from campaign_pipelines.store.contacts import SENT, UNKNOWN
from tests.fakes.server import FakeServer
from tests.faults.support import Runs, assert_never_twice, deliveries, emails_by_status, wait_for
from tests.sending.test_line import SENDGRID

pytestmark = pytest.mark.faults

CONTACTS = 1_000
# Ten messages per call: one claim (at least 100 contacts) is ten calls.
BATCH = 10
HELD_S = 60.0


def test_only_recipients_of_requests_sent_end_unknown_after_a_kill(
    db: psycopg.Connection, strict_fake: FakeServer, make_campaign, runs: Runs
) -> None:
    setup = make_campaign(CONTACTS, [SENDGRID], base=strict_fake.url, launch=False)
    db.execute("UPDATE servers SET batch_size = %s", (BATCH,))
    # The third call is taken by the provider and answered long after the step is dead.
    strict_fake.state.delay_next("sendgrid", HELD_S, after=2)
    run = runs.send(setup.campaign_id)
    (line_id,) = setup.line_ids
    step_pid = runs.step_pid(run, f"send_channel[line_{line_id}]")
    wait_for(lambda: len(strict_fake.state.calls("sendgrid")) == 3, "the third provider call")
    requested = [message.to for message in strict_fake.state.messages()]
    assert len(requested) == 3 * BATCH
    os.kill(step_pid, signal.SIGKILL)
    assert run.wait() != 0
    runs.relaunch_stalled(db, setup.campaign_id)

    tally = assert_never_twice(db, strict_fake.state, setup.campaign_id)
    states = emails_by_status(db, setup.campaign_id)
    unknown = states.get(UNKNOWN, set())
    # Unknown: only recipients of the dead step's requests, the unanswered one's at least.
    assert set(requested[2 * BATCH :]) <= unknown <= set(requested)
    assert BATCH <= tally.unknown <= 3 * BATCH
    # Everyone never requested before the kill was sent by the relaunch, once.
    never_requested = {f"user{i}@example.com" for i in range(CONTACTS)} - set(requested)
    assert never_requested <= states.get(SENT, set())
    counts = deliveries(strict_fake.state)
    assert all(counts[email] == 1 for email in never_requested)
    assert (tally.delivered, tally.sent + tally.unknown) == (CONTACTS, CONTACTS)
    # The relaunch made only the calls for those never requested.
    assert len(strict_fake.state.calls("sendgrid")) == 3 + len(never_requested) // BATCH
