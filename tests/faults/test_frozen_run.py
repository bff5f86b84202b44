"""A run frozen past its lease (SIGSTOP: a VM pause, a swap storm) with a call in flight: the
sensor relaunches its line, then the frozen step wakes up, finds its answer and must send nothing more."""

from __future__ import annotations

import os
import signal

import psycopg
import pytest

from campaign_pipelines.providers import get as get_provider
from campaign_pipelines.sending.setup import CLAIM_AT_LEAST
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import sending as send_sql
from tests.fakes.server import FakeServer
from tests.faults.support import Runs, assert_never_twice, wait_for
from tests.sending.fixtures import SENDGRID

pytestmark = pytest.mark.faults

CONTACTS = 500
BATCH = 10
# Every call is answered this late: the relaunch sends while the frozen step still holds a claim.
CALL_DELAY_S = 0.1
# The most contacts the frozen step leaves `unknown`: its calls in flight, the answered calls of the
# claim it was sending (recorded together once its calls are all made) and three claims at its results
# recorder (one being written, one queued, one being handed over).
EXPOSED = get_provider("sendgrid").max_in_flight * BATCH + 4 * CLAIM_AT_LEAST


def test_a_frozen_run_coming_back_after_its_relaunch_sends_nobody_twice(
    db: psycopg.Connection, strict_fake: FakeServer, make_campaign, runs: Runs
) -> None:
    setup = make_campaign(CONTACTS, [SENDGRID], base=strict_fake.url, launch=False)
    db.execute("UPDATE servers SET batch_size = %s", (BATCH,))
    strict_fake.state.delay_next("sendgrid", CALL_DELAY_S, times=CONTACTS)
    first = runs.send(setup.campaign_id)
    (line_id,) = setup.line_ids
    step_pid = runs.step_pid(first, f"send_channel[line_{line_id}]")
    wait_for(
        lambda: send_sql.status_counts(db, setup.campaign_id).get(ContactStatus.SENT, 0) >= 5 * BATCH,
        "a few batches sent",
    )
    os.kill(step_pid, signal.SIGSTOP)
    try:
        in_flight_at_freeze = len(strict_fake.state.calls("sendgrid"))
        (relaunch,) = runs.launch_stalled(db, setup.campaign_id)
        wait_for(
            lambda: len(strict_fake.state.calls("sendgrid")) >= in_flight_at_freeze + 5,
            "the relaunch to send a few batches",
        )
    finally:
        os.kill(step_pid, signal.SIGCONT)
    first.succeeded()
    relaunch.succeeded()

    tally = assert_never_twice(db, strict_fake.state, setup.campaign_id)
    assert tally.delivered == CONTACTS and tally.duplicates == 0 and tally.pending == 0
    # At most the frozen step's calls in flight (its window) and the answered ones its recorder had not
    # written are unknown: the rest of its claim went to the relaunch.
    assert tally.unknown <= EXPOSED and tally.sent == CONTACTS - tally.unknown
    campaign = campaign_sql.campaign_by_id(db, setup.campaign_id)
    assert campaign is not None and campaign.status == "completed"
