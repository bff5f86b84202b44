"""A worker killed in the middle of a batch: nothing is sent twice, nothing is lost silently, and
only the contacts of calls that may have left become `unknown`.

A line keeps several calls in flight (sending.window) while one is held: every call noted in flight
whose answer was not recorded before the kill is `unknown` (the held one always), at most the
window's ceiling of calls and the few answered ones the recorder had not yet written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from campaign_pipelines.providers import get as get_provider
from campaign_pipelines.providers.client import ProviderClient
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import sending as send_sql
from tests.fakes.server import running_fakes
from tests.sending.fixtures import SENDGRID
from tests.support import contact_outcomes

# The most calls whose contacts a kill can leave `unknown` when a claim is one call: a SendGrid line's
# calls in flight, and three answered claims at the results recorder (one being written, one queued,
# one being handed over).
EXPOSED_CALLS = get_provider("sendgrid").max_in_flight + 3

_WORKER = textwrap.dedent(
    """
    import sys
    from campaign_pipelines.providers import ProviderClient
    from campaign_pipelines.sending.line import LineSender
    from campaign_pipelines.store.connection import connect

    with connect(sys.argv[1]) as conn, connect(sys.argv[1]) as results, ProviderClient(timeout=60) as client:
        LineSender(
            conn, int(sys.argv[2]), run_id="doomed-run", quotas=None, client=client,
            results_conn=results,
        ).run()
    """
)


@pytest.mark.slow
def test_sigkill_mid_batch_then_relaunch_sends_nobody_twice(db, database_url, make_campaign, run_line) -> None:
    with running_fakes() as fake:
        setup = make_campaign(500, [SENDGRID], base=fake.url)
        db.execute("UPDATE servers SET batch_size = 100")
        # The third call is accepted by the provider but answered late: the worker dies waiting.
        fake.state.delay_next("sendgrid", 30, after=2)
        worker = subprocess.Popen(
            [sys.executable, "-c", _WORKER, database_url, str(setup.line_ids[0])], env=os.environ.copy()
        )
        try:
            deadline = time.monotonic() + 30
            while len(fake.state.calls("sendgrid")) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(fake.state.calls("sendgrid")) >= 3, "the worker never reached its third batch"
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()

        first_run = _received_from_the_dead_worker(fake)
        # The held call, and any other call in flight or answered but not yet recorded.
        assert send_sql.status_counts(db, setup.campaign_id)[ContactStatus.RESERVED] >= 100
        # Later, the stalled sensor's relaunch: the dead worker's heartbeat is old.
        db.execute("UPDATE campaign_channels SET heartbeat_at = now() - interval '10 minutes'")
        fake.state.reset()
        outcome = run_line(setup.line_ids[0], client=ProviderClient(timeout=10))
        resent = {m.to for m in fake.state.messages()}

    unknown = _unknown(db, setup.campaign_id)
    assert outcome.status == "done"
    assert (
        outcome.warnings[0] == f"{len(unknown)} contact(s) of a call an interrupted run had started are now 'unknown'"
    )
    counts = send_sql.status_counts(db, setup.campaign_id)
    assert counts == {ContactStatus.SENT: 500 - len(unknown), ContactStatus.UNKNOWN: len(unknown)}
    # The held call's recipients (the third hundred the provider received) and those of the other calls
    # noted in flight and not recorded.
    assert set(first_run[200:300]) <= unknown and len(unknown) <= EXPOSED_CALLS * 100
    assert resent.isdisjoint(first_run)  # no call that left was sent again
    assert len(resent) == 500 - len(set(first_run) | unknown)  # only what the dead worker had not reached


def _received_from_the_dead_worker(fake) -> list[str]:
    """Recipients the provider received, requests already on the wire at the kill included."""
    seen = -1
    while len(messages := fake.state.messages()) != seen:
        seen = len(messages)
        time.sleep(0.3)
    return [message.to for message in messages]


def _unknown_warning(count: int) -> str:
    return f"{count} contact(s) of a call an interrupted run had started are now 'unknown'"


def _unknown(db, campaign_id: int) -> set[str]:
    return {email for email, _ in contact_outcomes(db, campaign_id, ContactStatus.UNKNOWN)}


@pytest.mark.slow
def test_after_a_sigkill_only_the_contacts_of_calls_that_left_are_unknown(
    db, database_url, make_campaign, run_line
) -> None:
    with running_fakes() as fake:
        setup = make_campaign(300, [SENDGRID], base=fake.url)
        # Calls of 10: a claim of 100 takes ten calls; the worker dies waiting for the third.
        db.execute("UPDATE servers SET batch_size = 10")
        fake.state.delay_next("sendgrid", 30, after=2)
        worker = subprocess.Popen(
            [sys.executable, "-c", _WORKER, database_url, str(setup.line_ids[0])], env=os.environ.copy()
        )
        try:
            deadline = time.monotonic() + 30
            while len(fake.state.calls("sendgrid")) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(fake.state.calls("sendgrid")) >= 3, "the worker never reached its third call"
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        first_run = _received_from_the_dead_worker(fake)
        db.execute("UPDATE campaign_channels SET heartbeat_at = now() - interval '10 minutes'")
        outcome = run_line(setup.line_ids[0], client=ProviderClient(timeout=10))
        every = [m.to for m in fake.state.messages()]

    # The calls that left may have been sent (they were): those not recorded are `unknown`, the held
    # one's ten at least; the rest of the claim never left and went back to the pool.
    unknown = _unknown(db, setup.campaign_id)
    assert (
        outcome.warnings[0] == f"{len(unknown)} contact(s) of a call an interrupted run had started are now 'unknown'"
    )
    assert send_sql.status_counts(db, setup.campaign_id) == {
        ContactStatus.SENT: 300 - len(unknown),
        ContactStatus.UNKNOWN: len(unknown),
    }
    # (A claim of ten calls is recorded once its calls are all made: a kill can leave its answered calls,
    # the window's and the recorder's claims `unknown`, which here may be most of the 300.)
    assert set(first_run[20:30]) <= unknown
    # Nobody twice; everybody reached but `unknown` ones whose call was noted and never left.
    assert len(every) == len(set(every)) and len(set(every) | unknown) == 300
