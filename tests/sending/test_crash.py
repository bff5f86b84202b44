"""A worker killed in the middle of a batch: nothing is sent twice, nothing is lost silently, and
only the contacts of calls that may have left become `unknown`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from psycopg import sql

from campaign_pipelines.providers.client import ProviderClient
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store.contacts import contact_table
from tests.fakes.server import running_fakes
from tests.sending.fixtures import SENDGRID

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
            assert len(fake.state.calls("sendgrid")) == 3, "the worker never reached its third batch"
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()

        assert send_sql.status_counts(db, setup.campaign_id)[ContactStatus.RESERVED] == 100
        # Later, the stalled sensor's relaunch: the dead worker's heartbeat is old.
        db.execute("UPDATE campaign_channels SET heartbeat_at = now() - interval '10 minutes'")
        fake.state.reset()
        outcome = run_line(setup.line_ids[0], client=ProviderClient(timeout=10))
        resent = {m.to for m in fake.state.messages()}

    assert outcome.status == "done" and outcome.warnings == [
        "100 contact(s) of a call an interrupted run had started are now 'unknown'"
    ]
    counts = send_sql.status_counts(db, setup.campaign_id)
    assert counts == {ContactStatus.SENT: 400, ContactStatus.UNKNOWN: 100}
    query = sql.SQL("SELECT email FROM {} WHERE send_status = %s").format(contact_table(setup.campaign_id))
    unknown = {row[0] for row in db.execute(query, (ContactStatus.UNKNOWN,))}
    assert resent.isdisjoint(unknown)  # the batch in flight was not sent again
    assert len(resent) == 200  # only what the dead worker had not reached


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
            assert len(fake.state.calls("sendgrid")) == 3, "the worker never reached its third call"
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        first_run = [m.to for m in fake.state.messages()]
        db.execute("UPDATE campaign_channels SET heartbeat_at = now() - interval '10 minutes'")
        outcome = run_line(setup.line_ids[0], client=ProviderClient(timeout=10))
        every = [m.to for m in fake.state.messages()]

    # The three calls that left may have been sent (they were); the other 70 of the claim never left.
    assert outcome.warnings == [
        "30 contact(s) of a call an interrupted run had started are now 'unknown'",
        "70 contact(s) an interrupted run had reserved but not requested went back to the pool",
    ]
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: 270, ContactStatus.UNKNOWN: 30}
    query = sql.SQL("SELECT email FROM {} WHERE send_status = %s").format(contact_table(setup.campaign_id))
    unknown = {row[0] for row in db.execute(query, (ContactStatus.UNKNOWN,))}
    assert unknown == set(first_run)
    assert len(every) == len(set(every)) == 300
