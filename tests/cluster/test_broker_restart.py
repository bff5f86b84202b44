"""The Celery broker restarted while a campaign sends on a worker: RabbitMQ is a node of the
test's own (tests/faults/support.OwnRabbitMQ), never the machine's, stopped cleanly mid-send
and started again on its data.

What a restart does (docs/deploy.md): the run loses its broker and fails at once; the steps
running on the worker go on sending (they need PostgreSQL and Redis, not the broker); a step
still queued survives in the broker's durable queue and runs once the worker has reconnected;
the line that ends last completes the campaign. No line goes stale, so the stalled-line sensor
has nothing to relaunch, and nobody is sent twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from campaign_pipelines import execution
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from tests.cluster.support import Worker, stop_workers, wait_for_workers, worker_env
from tests.fakes.server import FakeServer
from tests.faults.support import (
    OwnRabbitMQ,
    OwnRedis,
    Runs,
    Tally,
    assert_never_twice,
    deliveries,
    wait_for,
)
from tests.faults.test_provider_faults import MAILGUN
from tests.sending.fixtures import POSTMARK, SENDGRID

pytestmark = [pytest.mark.faults, pytest.mark.cluster]

CONTACTS = 1_000
BATCH = 100
# SendGrid and Postmark stop at their quota; Mailgun, without one, sends the rest.
QUOTAS = {"sendgrid": 500, "postmark": 300, "mailgun": 200}
LINES = ({**SENDGRID, "max_daily_sends": 500}, {**POSTMARK, "max_daily_sends": 300}, MAILGUN)
# Two lines at once on the one worker: the Mailgun line's step waits in the broker's queue.
CONCURRENCY = 2
# Each call is answered this late: the two running lines still send while the broker is down.
CALL_DELAY_S = 1.0
# How often the daemon evaluates the stalled-line sensor (its minimum_interval_seconds).
SENSOR_PERIOD_S = 15.0


@pytest.fixture(scope="module")
def broker_worker(
    own_database_url: str,
    own_redis_server: OwnRedis,
    own_broker: OwnRabbitMQ,
    contacts_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Worker]:
    env = worker_env(own_database_url, own_redis_server.url, own_broker.url, contacts_dir)
    worker = Worker("worker-r", env, tmp_path_factory.mktemp("broker_worker"), CONCURRENCY)
    try:
        wait_for_workers(own_broker.url, [worker])
        yield worker
    finally:
        stop_workers([worker])


@pytest.fixture
def fault_env(fault_env: dict[str, str], own_broker: OwnRabbitMQ) -> dict[str, str]:
    return {**fault_env, execution.BROKER_ENV: own_broker.url}


def test_a_broker_restart_mid_send_loses_nobody_and_sends_nobody_twice(
    db: psycopg.Connection,
    strict_fake: FakeServer,
    make_campaign,
    runs: Runs,
    broker: OwnRabbitMQ,
    broker_worker: Worker,
) -> None:
    setup = make_campaign(CONTACTS, list(LINES), base=strict_fake.url, launch=False)
    # One call in flight at a time: the lines must still be sending while the broker is down, and the
    # restart lands after the second SendGrid call (a window of calls at a crash: tests/sending/test_crash.py).
    db.execute("UPDATE servers SET batch_size = %s, calls_in_flight = 1", (BATCH,))
    for provider in QUOTAS:
        strict_fake.state.delay_next(provider, CALL_DELAY_S, times=CONTACTS)
    run = runs.send(setup.campaign_id)
    wait_for(lambda: len(strict_fake.state.calls("sendgrid")) == 2, "two SendGrid calls")
    assert not strict_fake.state.calls("mailgun"), "the third line started before the restart"

    broker.stop()
    assert run.wait() != 0, "the run went on without its broker"
    # The steps on the worker do not need the broker: their lines go on while it is down.
    calls_when_down = len(strict_fake.state.calls())
    wait_for(lambda: len(strict_fake.state.calls()) > calls_when_down, "a provider call while the broker is down")
    broker.start()

    def resumed() -> bool:
        # The daemon's sensor, evaluated meanwhile: no line looks stalled, none is sent by a second run.
        assert runs.stalled_requests() == []
        return bool(strict_fake.state.calls("mailgun"))

    # Within one period of the sensor after the broker is back (the worker's reconnection backoff).
    wait_for(resumed, "the queued line to start sending", SENSOR_PERIOD_S, every_s=0.2)

    def completed() -> bool:
        assert runs.stalled_requests() == []
        campaign = campaign_sql.campaign_by_id(db, setup.campaign_id)
        return campaign is not None and campaign.status == "completed"

    wait_for(completed, "the campaign to complete without its run", every_s=0.2)
    tally = assert_never_twice(db, strict_fake.state, setup.campaign_id)
    assert tally == Tally(delivered=CONTACTS, duplicates=0, sent=CONTACTS, failed=0, unknown=0, pending=0)
    assert {provider: len(deliveries(strict_fake.state, provider)) for provider in QUOTAS} == QUOTAS
    lines = line_sql.lines_of(db, setup.campaign_id)
    assert [(line.status, line.sent_count) for line in lines] == [
        ("quota_reached", 500),
        ("quota_reached", 300),
        ("done", 200),
    ]
    # Every line was sent by the failed run's own steps.
    assert runs.dagster_run(run).status == dg.DagsterRunStatus.FAILURE

    # The worker took its broker back: the next run's steps run on it, and the run succeeds.
    after = make_campaign(BATCH, [{**MAILGUN, "server": "Mailgun - Après"}], base=strict_fake.url, launch=False)
    runs.send(after.campaign_id).succeeded()
    campaign = campaign_sql.campaign_by_id(db, after.campaign_id)
    assert campaign is not None and (campaign.status, campaign.sent_count) == ("completed", BATCH)
