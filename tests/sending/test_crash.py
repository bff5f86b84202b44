"""A worker killed in the middle of a batch: nothing is sent twice, nothing is lost silently."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from campaign_pipelines.providers.client import ProviderClient
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store.contacts import RESERVED, SENT, UNKNOWN
from tests.fakes.server import running_fakes
from tests.sending.test_line import SENDGRID

_WORKER = textwrap.dedent(
    """
    import sys
    from campaign_pipelines.providers import ProviderClient
    from campaign_pipelines.quotas import PostgresQuotas
    from campaign_pipelines.sending.line import LineSender
    from campaign_pipelines.store.connection import connect

    with connect(sys.argv[1]) as conn, connect(sys.argv[1]) as results, ProviderClient(timeout=60) as client:
        LineSender(
            conn, int(sys.argv[2]), run_id="doomed-run", quotas=PostgresQuotas(conn), client=client,
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

        assert send_sql.status_counts(db, setup.campaign_id)[RESERVED] == 100
        # Later, the stalled sensor's relaunch: the dead worker's heartbeat is old.
        db.execute("UPDATE campaign_channels SET heartbeat_at = now() - interval '10 minutes'")
        fake.state.reset()
        outcome = run_line(setup.line_ids[0], client=ProviderClient(timeout=10))
        resent = {m.to for m in fake.state.messages()}

    assert outcome.status == "done" and outcome.warnings == [
        "100 contact(s) reserved by an interrupted run are now 'unknown'"
    ]
    counts = send_sql.status_counts(db, setup.campaign_id)
    assert counts == {SENT: 400, UNKNOWN: 100}
    table = f"contacts_campaign_{setup.campaign_id}"
    unknown = {row[0] for row in db.execute(f"SELECT email FROM {table} WHERE send_status = {UNKNOWN}")}
    assert resent.isdisjoint(unknown)  # the batch in flight was not sent again
    assert len(resent) == 200  # only what the dead worker had not reached
