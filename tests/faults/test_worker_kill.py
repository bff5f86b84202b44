"""Send processes killed mid-batch through real Dagster runs, then relaunched by the stalled-line sensor.

The provider fake takes the third call and answers it only much later: the kill lands while
that request's recipients may have been sent. They end `unknown`; nobody is sent twice and
nobody is lost. With a claim spanning several calls, only contacts of a request the provider
received may end `unknown`; the rest of the claim is sent by the relaunch, once.
"""

from __future__ import annotations

import os
import signal

import psycopg
import pytest

from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import sending as send_sql
from tests.fakes.server import FakeServer
from tests.faults.support import Run, Runs, Tally, assert_never_twice, deliveries, emails_by_status, wait_for
from tests.sending.fixtures import POSTMARK, SENDGRID, Setup

pytestmark = pytest.mark.faults

CONTACTS = 1_000
BATCH = 100
# Ten messages per call: one claim (at least 100 contacts) is ten calls.
SMALL_BATCH = 10
# The third call is accepted at once and answered after this: longer than any test waits.
HELD_S = 60.0


def _send_holding_the_third_call(
    db: psycopg.Connection, fake: FakeServer, make_campaign, runs: Runs, line: dict, batch: int
) -> tuple[Setup, Run]:
    setup = make_campaign(CONTACTS, [line], base=fake.url, launch=False)
    # One call in flight at a time: the kill's arithmetic below counts calls in order (a window of calls at a
    # crash: tests/sending/test_crash.py, tests/faults/test_frozen_run.py).
    db.execute("UPDATE servers SET batch_size = %s, calls_in_flight = 1", (batch,))
    fake.state.delay_next(line["provider"], HELD_S, after=2)
    return setup, runs.send(setup.campaign_id)


def _sending_third_batch(db: psycopg.Connection, fake: FakeServer, provider: str, campaign_id: int) -> None:
    """Wait until the third call is in flight and the first two are recorded."""
    wait_for(lambda: len(fake.state.calls(provider)) == 3, "the third provider call")
    wait_for(
        lambda: send_sql.status_counts(db, campaign_id).get(ContactStatus.SENT) == 2 * BATCH, "two batches recorded"
    )


def _expect_in_flight_batch_unknown(db: psycopg.Connection, fake: FakeServer, campaign_id: int) -> Tally:
    tally = assert_never_twice(db, fake.state, campaign_id)
    assert tally == Tally(delivered=CONTACTS, duplicates=0, sent=CONTACTS - BATCH, failed=0, unknown=BATCH, pending=0)
    campaign = campaign_sql.campaign_by_id(db, campaign_id)
    assert campaign is not None and campaign.status == "completed"
    return tally


def test_a_send_step_killed_mid_batch_is_relaunched_by_the_sensor(
    db: psycopg.Connection, strict_fake: FakeServer, make_campaign, runs: Runs
) -> None:
    setup, run = _send_holding_the_third_call(db, strict_fake, make_campaign, runs, SENDGRID, BATCH)
    (line_id,) = setup.line_ids
    step_pid = runs.step_pid(run, f"send_channel[line_{line_id}]")
    _sending_third_batch(db, strict_fake, "sendgrid", setup.campaign_id)

    os.kill(step_pid, signal.SIGKILL)
    assert run.wait() != 0, "the run went on as if its step had not died"
    (relaunch,) = runs.relaunch_stalled(db, setup.campaign_id)

    _expect_in_flight_batch_unknown(db, strict_fake, setup.campaign_id)
    # The relaunch sent only what the dead step had not reached.
    assert len(strict_fake.state.calls("sendgrid")) == 3 + (CONTACTS - 3 * BATCH) // BATCH
    (line,) = line_sql.lines_of(db, setup.campaign_id)
    assert (line.status, line.sent_count, line.unknown_count) == ("done", CONTACTS - BATCH, BATCH)
    assert runs.dagster_run(relaunch).tags["campaign"] == str(setup.campaign_id)


def test_a_whole_run_killed_mid_batch_is_relaunched_by_the_sensor(
    db: psycopg.Connection, strict_fake: FakeServer, make_campaign, runs: Runs
) -> None:
    setup, run = _send_holding_the_third_call(db, strict_fake, make_campaign, runs, POSTMARK, BATCH)
    _sending_third_batch(db, strict_fake, "postmark", setup.campaign_id)

    run.kill_group()
    runs.relaunch_stalled(db, setup.campaign_id)

    _expect_in_flight_batch_unknown(db, strict_fake, setup.campaign_id)
    assert len(strict_fake.state.calls("postmark")) == 3 + (CONTACTS - 3 * BATCH) // BATCH


def test_only_recipients_of_requests_sent_end_unknown_after_a_kill(
    db: psycopg.Connection, strict_fake: FakeServer, make_campaign, runs: Runs
) -> None:
    setup, run = _send_holding_the_third_call(db, strict_fake, make_campaign, runs, SENDGRID, SMALL_BATCH)
    (line_id,) = setup.line_ids
    step_pid = runs.step_pid(run, f"send_channel[line_{line_id}]")
    wait_for(lambda: len(strict_fake.state.calls("sendgrid")) == 3, "the third provider call")
    requested = [message.to for message in strict_fake.state.messages()]
    assert len(requested) == 3 * SMALL_BATCH
    os.kill(step_pid, signal.SIGKILL)
    assert run.wait() != 0
    runs.relaunch_stalled(db, setup.campaign_id)

    tally = assert_never_twice(db, strict_fake.state, setup.campaign_id)
    states = emails_by_status(db, setup.campaign_id)
    unknown = states.get(ContactStatus.UNKNOWN, set())
    # Unknown: only recipients of the dead step's requests, the unanswered one's at least.
    assert set(requested[2 * SMALL_BATCH :]) <= unknown <= set(requested)
    assert SMALL_BATCH <= tally.unknown <= 3 * SMALL_BATCH
    # Everyone never requested before the kill was sent by the relaunch, once.
    never_requested = {f"user{i}@example.com" for i in range(CONTACTS)} - set(requested)
    assert never_requested <= states.get(ContactStatus.SENT, set())
    counts = deliveries(strict_fake.state)
    assert all(counts[email] == 1 for email in never_requested)
    assert (tally.delivered, tally.sent + tally.unknown) == (CONTACTS, CONTACTS)
    # The relaunch made only the calls for those never requested.
    assert len(strict_fake.state.calls("sendgrid")) == 3 + len(never_requested) // SMALL_BATCH
