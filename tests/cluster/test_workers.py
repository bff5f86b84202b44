"""`send_campaign` with CAMPAIGNS_EXECUTOR=celery: one campaign's lines on two Celery workers.

The runs are `dagster job execute` processes (support.Runs, as in tests/faults) whose steps are
tasks on the broker; the workers are separate processes with their own environment. The
provider fakes answer every call a little late, so the four lines send at the same time.
"""

from __future__ import annotations

import os
import signal

import dagster as dg
import psycopg
import pytest

from campaign_pipelines.partitions import campaign_key, campaign_partitions
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from tests.cluster.support import Worker, step_workers
from tests.fakes.server import FakeServer
from tests.faults.support import Runs, Tally, assert_never_twice, deliveries, wait_for
from tests.faults.test_provider_faults import MAILGUN
from tests.sending.fixtures import BREVO, POSTMARK, SENDGRID

pytestmark = [pytest.mark.faults, pytest.mark.cluster]

LINES = (BREVO, SENDGRID, POSTMARK, MAILGUN)
PROVIDERS = tuple(line["provider"] for line in LINES)
QUOTA = 300
BATCH = 50
# Each call is answered this late: a line sends for about a second, its neighbours with it.
CALL_DELAY_S = 0.2


def test_four_lines_on_two_workers_send_everyone_once_within_their_quotas(
    db: psycopg.Connection, strict_fake: FakeServer, make_campaign, runs: Runs, workers: list[Worker]
) -> None:
    lines = [{**spec, "max_daily_sends": QUOTA} for spec in LINES]
    setup = make_campaign(len(LINES) * QUOTA, lines, base=strict_fake.url, launch=False)
    db.execute("UPDATE servers SET batch_size = %s", (BATCH,))
    for provider in PROVIDERS:
        strict_fake.state.delay_next(provider, CALL_DELAY_S, times=QUOTA)

    run = runs.send(setup.campaign_id)
    run.succeeded()

    tally = assert_never_twice(db, strict_fake.state, setup.campaign_id)
    assert tally == Tally(
        delivered=len(LINES) * QUOTA, duplicates=0, sent=len(LINES) * QUOTA, failed=0, unknown=0, pending=0
    )
    # Every line filled its own quota, and no more.
    assert {provider: len(deliveries(strict_fake.state, provider)) for provider in PROVIDERS} == dict.fromkeys(
        PROVIDERS, QUOTA
    )
    assert [line.sent_count for line in line_sql.lines_of(db, setup.campaign_id)] == [QUOTA] * len(LINES)
    campaign = campaign_sql.campaign_by_id(db, setup.campaign_id)
    assert campaign is not None and campaign.status == "completed"

    ran_on = step_workers(runs.instance, runs.dagster_run(run).run_id)
    sends = {key: worker for key, worker in ran_on.items() if key.startswith("send_channel[")}
    assert set(sends) == {f"send_channel[line_{line_id}]" for line_id in setup.line_ids}
    assert {worker.split("@")[0] for worker in sends.values()} == {"worker-a", "worker-b"}, ran_on


def test_a_contact_import_runs_on_a_worker(
    db: psycopg.Connection, strict_fake: FakeServer, make_campaign, runs: Runs, workers: list[Worker]
) -> None:
    setup = make_campaign(QUOTA, [SENDGRID], base=strict_fake.url, launch=False)
    partition = campaign_key(setup.campaign_id)
    runs.instance.add_dynamic_partitions(campaign_partitions.name, [partition])

    runs.materialize(partition).succeeded()

    # The newest run of the partition: the session's instance also holds earlier tests' runs of it.
    (run,) = runs.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": partition}), limit=1)
    assert step_workers(runs.instance, run.run_id)["campaign_contacts"].split("@")[0] in {"worker-a", "worker-b"}
    campaign = campaign_sql.campaign_by_id(db, setup.campaign_id)
    assert campaign is not None and (campaign.status, campaign.nbre_contacts) == ("scheduled", QUOTA)


# The kill: the SendGrid line's third call is accepted at once and answered only after this,
# longer than the test waits; the Postmark line stops at its quota, leaving the rest to the relaunch.
CONTACTS = 1_000
KILL_BATCH = 100
HELD_S = 60.0


def test_a_worker_process_killed_mid_batch_is_relaunched_by_the_sensor(
    db: psycopg.Connection, strict_fake: FakeServer, make_campaign, runs: Runs, workers: list[Worker]
) -> None:
    lines = [SENDGRID, {**POSTMARK, "max_daily_sends": QUOTA}]
    setup = make_campaign(CONTACTS, lines, base=strict_fake.url, launch=False)
    # One call in flight at a time: the kill's arithmetic below counts calls in order (a window of calls at a
    # crash: tests/sending/test_crash.py, tests/faults/test_frozen_run.py).
    db.execute("UPDATE servers SET batch_size = %s, calls_in_flight = 1", (KILL_BATCH,))
    strict_fake.state.delay_next("sendgrid", HELD_S, after=2)
    run = runs.send(setup.campaign_id)
    held_line = setup.line_ids[0]
    step_pid = runs.step_pid(run, f"send_channel[line_{held_line}]")
    (holder,) = [worker for worker in workers if step_pid in worker.children()]
    wait_for(lambda: len(strict_fake.state.calls("sendgrid")) == 3, "the third SendGrid call")
    wait_for(lambda: line_sql.line_by_id(db, held_line).sent_count == 2 * KILL_BATCH, "two batches recorded")

    os.kill(step_pid, signal.SIGKILL)
    assert run.wait() != 0, "the run went on as if its step had not died"
    assert holder.process.poll() is None, "the worker itself died with its pool process"
    (relaunch,) = runs.relaunch_stalled(db, setup.campaign_id)

    tally = assert_never_twice(db, strict_fake.state, setup.campaign_id)
    assert tally == Tally(
        delivered=CONTACTS, duplicates=0, sent=CONTACTS - KILL_BATCH, failed=0, unknown=KILL_BATCH, pending=0
    )
    held, quota_line = line_sql.lines_of(db, setup.campaign_id)
    assert (held.status, held.sent_count, held.unknown_count) == ("done", CONTACTS - QUOTA - KILL_BATCH, KILL_BATCH)
    assert quota_line.sent_count == QUOTA
    # The relaunch sent only what the dead step had not reached, on a worker.
    assert len(strict_fake.state.calls("sendgrid")) == 3 + (CONTACTS - QUOTA - 3 * KILL_BATCH) // KILL_BATCH
    relaunched_on = step_workers(runs.instance, runs.dagster_run(relaunch).run_id)
    assert relaunched_on[f"send_channel[line_{held_line}]"].split("@")[0] in {"worker-a", "worker-b"}
