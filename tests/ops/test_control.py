"""`control_campaign` in-process: pause, resume, cancel, resend_unknown, and what is refused.

The line loops are run directly (the run_line fixture), as a send_channel step does;
one test pauses a line while it sends on the real clock and checks it stops within 5 s.
"""

from __future__ import annotations

import threading
import time

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from campaign_pipelines.ops.control import ControlConfig, control_campaign
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.sending import campaign as lifecycle
from campaign_pipelines.sending.clock import Clock
from campaign_pipelines.sending.outcomes import LineOutcome
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store.contacts import outcome_table
from tests.fakes.providers import FakeProviders
from tests.sending.fixtures import BREVO, SENDGRID
from tests.support import failure_message

# How soon a sending line must obey a pause (issue 3: "running lines stop within 5 s").
STOP_WITHIN_S = 5.0


@pytest.fixture
def control(instance: dg.DagsterInstance, database_url: str):
    """Runs control_campaign in-process with one action; failures are returned, not raised."""

    def control(campaign_id: int, action: str) -> dg.ExecuteInProcessResult:
        return control_campaign.execute_in_process(
            run_config=dg.RunConfig(ops={"apply_control": ControlConfig(campaign_id=campaign_id, action=action)}),
            instance=instance,
            resources={"database": PostgresResource(url=database_url)},
            raise_on_error=False,
        )

    return control


def campaign_status(db: psycopg.Connection, campaign_id: int) -> str:
    campaign = campaign_sql.campaign_by_id(db, campaign_id)
    assert campaign is not None
    return campaign.status


def line_states(db: psycopg.Connection, campaign_id: int) -> list[tuple[str, str | None]]:
    return [(line.status, line.reason) for line in line_sql.lines_of(db, campaign_id)]


def test_pause_then_resume(
    db: psycopg.Connection,
    control,
    make_campaign,
    run_line,
    fakes: FakeProviders,
) -> None:
    setup = make_campaign(20, [BREVO, SENDGRID])

    paused = control(setup.campaign_id, "pause")

    assert paused.success
    assert paused.output_for_node("apply_control") == "paused"
    assert campaign_status(db, setup.campaign_id) == "paused"
    # A line starting (or running) while the campaign is paused stops at once, sending nothing.
    outcomes = [run_line(line_id) for line_id in setup.line_ids]
    assert [(o.status, o.reason, o.sent) for o in outcomes] == [("paused", "paused by an operator", 0)] * 2
    assert line_states(db, setup.campaign_id) == [("paused", "paused by an operator")] * 2
    assert fakes.calls() == []

    resumed = control(setup.campaign_id, "resume")

    assert resumed.success
    assert resumed.output_for_node("apply_control") == "running"
    assert campaign_status(db, setup.campaign_id) == "running"
    # Paused lines are pending again: the stalled-lines sensor starts a run for them.
    assert line_states(db, setup.campaign_id) == [("pending", None)] * 2
    assert [line.line_id for line in line_sql.lines_due(db, stale_after_s=120, quota=False)] == setup.line_ids
    assert run_line(setup.line_ids[0]).sent == 20
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: 20}


def test_cancel_stops_the_campaign_for_good(
    db: psycopg.Connection,
    control,
    make_campaign,
    run_line,
    fakes: FakeProviders,
) -> None:
    setup = make_campaign(10, [BREVO])

    cancelled = control(setup.campaign_id, "cancel")

    assert cancelled.success
    assert cancelled.output_for_node("apply_control") == "cancelled"
    finished = db.execute("SELECT status, finished_at FROM campaigns WHERE id = %s", (setup.campaign_id,)).fetchone()
    assert finished[0] == "cancelled" and finished[1] is not None
    outcome = run_line(setup.line_ids[0])
    assert (outcome.status, outcome.reason, outcome.sent) == ("cancelled", "cancelled by an operator", 0)
    assert fakes.calls() == []
    # Nothing brings it back.
    assert line_sql.lines_due(db, stale_after_s=120, quota=False) == []
    refused = control(setup.campaign_id, "resume")
    assert not refused.success
    assert "cannot resume a campaign whose status is 'cancelled'" in failure_message(refused)


def test_resend_unknown_puts_interrupted_contacts_back_in_the_pool(
    db: psycopg.Connection,
    control,
    make_campaign,
    run_line,
    fakes: FakeProviders,
) -> None:
    setup = make_campaign(30, [SENDGRID])
    (line_id,) = setup.line_ids
    db.execute("UPDATE servers SET batch_size = 10")
    # The second call times out: SendGrid has no idempotency key, so its 10 contacts become unknown.
    fakes.delay_next("sendgrid", 60, after=1)
    first = run_line(line_id)
    assert (first.status, first.sent, first.unknown) == ("done", 20, 10)
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: 20, ContactStatus.UNKNOWN: 10}
    assert line_sql.lines_of(db, setup.campaign_id)[0].unknown_count == 10

    resent = control(setup.campaign_id, "resend_unknown")

    assert resent.success
    assert resent.output_for_node("apply_control") == "10 unknown contact(s) back in the pool"
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: 20, ContactStatus.PENDING: 10}
    line = line_sql.line_by_id(db, line_id)
    assert line is not None
    assert (line.status, line.reason, line.unknown_count) == ("pending", None, 0)
    second = run_line(line_id)
    assert (second.status, second.sent) == ("done", 10)
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: 30}
    # The 10 interrupted contacts were accepted by the provider the first time: they got it twice,
    # which is what the operator accepted by asking for it.
    assert fakes.sent_count("sendgrid") == 40


def test_resend_unknown_reopens_a_completed_campaign(
    db: psycopg.Connection,
    control,
    make_campaign,
    run_line,
    fakes: FakeProviders,
) -> None:
    setup = make_campaign(5, [SENDGRID])
    fakes.delay_next("sendgrid", 60)
    assert run_line(setup.line_ids[0]).unknown == 5
    assert lifecycle.finish(db, setup.campaign_id).status == "completed"

    resent = control(setup.campaign_id, "resend_unknown")

    assert resent.output_for_node("apply_control") == "5 unknown contact(s) back in the pool"
    assert campaign_status(db, setup.campaign_id) == "running"


@pytest.mark.parametrize(
    ("status", "action", "problem"),
    [
        ("running", "resume", "cannot resume a campaign whose status is 'running'"),
        ("completed", "pause", "cannot pause a campaign whose status is 'completed'"),
        ("cancelled", "cancel", "cannot cancel a campaign whose status is 'cancelled'"),
        ("scheduled", "resend_unknown", "nothing was sent yet (status 'scheduled')"),
    ],
)
def test_refusals_say_why(
    db: psycopg.Connection,
    control,
    make_campaign,
    status: str,
    action: str,
    problem: str,
) -> None:
    setup = make_campaign(3, [BREVO])
    db.execute("UPDATE campaigns SET status = %s WHERE id = %s", (status, setup.campaign_id))

    result = control(setup.campaign_id, action)

    assert not result.success
    assert f"campaign {setup.campaign_id}: 1 problem(s)\n  - {problem}" in failure_message(result)
    assert campaign_status(db, setup.campaign_id) == status


def test_an_unknown_campaign_is_refused(db: psycopg.Connection, control) -> None:
    for action in ("pause", "resend_unknown"):
        result = control(777, action)

        assert not result.success
        assert "campaign 777 does not exist" in failure_message(result)


def test_an_unknown_action_is_refused_by_the_config() -> None:
    with pytest.raises(dg.DagsterInvalidConfigError, match="restart"):
        control_campaign.execute_in_process(
            run_config={"ops": {"apply_control": {"config": {"campaign_id": 1, "action": "restart"}}}},
            resources={"database": PostgresResource(url="postgresql://unused")},
        )


def test_a_pause_stops_a_sending_line_within_seconds_and_loses_nothing(
    db: psycopg.Connection,
    control,
    make_campaign,
    run_line,
    fakes: FakeProviders,
) -> None:
    # Paced at 0.6 s on the real clock: 200 contacts would take two minutes.
    setup = make_campaign(200, [{**SENDGRID, "send_frequency_minutes": 0.01}])
    (line_id,) = setup.line_ids
    outcome: list[LineOutcome] = []
    worker = threading.Thread(target=lambda: outcome.append(run_line(line_id, clock=Clock())), daemon=True)
    worker.start()
    deadline = time.monotonic() + 30
    while fakes.sent_count("sendgrid") < 3:
        assert worker.is_alive() and time.monotonic() < deadline, "the line did not start sending"
        time.sleep(0.05)

    asked = time.monotonic()
    paused = control(setup.campaign_id, "pause")
    worker.join(timeout=asked + STOP_WITHIN_S - time.monotonic())

    assert paused.success
    assert not worker.is_alive(), f"the line was still sending {STOP_WITHIN_S} s after the pause"
    (result,) = outcome
    assert (result.status, result.reason) == ("paused", "paused by an operator")
    assert line_states(db, setup.campaign_id) == [("paused", "paused by an operator")]
    counts = send_sql.status_counts(db, setup.campaign_id)
    # Nothing lost: no contact left reserved, every message the provider took is recorded as sent.
    assert ContactStatus.RESERVED not in counts
    assert counts == {
        ContactStatus.SENT: fakes.sent_count("sendgrid"),
        ContactStatus.PENDING: 200 - fakes.sent_count("sendgrid"),
    }
    assert result.sent == counts[ContactStatus.SENT] < 200
    recorded = db.execute(
        sql.SQL("SELECT contact_id FROM {} WHERE status = %s").format(outcome_table(setup.campaign_id)),
        (ContactStatus.SENT,),
    ).fetchall()
    assert {message.custom_id for message in fakes.messages()} == {f"{setup.campaign_id}-{id_}" for (id_,) in recorded}


def test_a_campaign_id_below_1_is_refused(
    db: psycopg.Connection, instance: dg.DagsterInstance, database_url: str
) -> None:
    # The Launchpad's scaffold fills a required int with 0: it is not taken for a campaign.
    result = control_campaign.execute_in_process(
        run_config={"ops": {"apply_control": {"config": {"campaign_id": 0, "action": "cancel"}}}},
        instance=instance,
        resources={"database": PostgresResource(url=database_url)},
        raise_on_error=False,
    )

    assert not result.success
    assert failure_message(result) == "campaign 0 does not exist; no campaign can be cancelled"
