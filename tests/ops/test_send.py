"""`send_campaign` in-process: plan → send_channel per line → finalize, on real PostgreSQL and Redis.

The providers are the in-process fakes (`fake_http`); the multiprocess executor and a real
instance are covered by tests/test_multiprocess_send.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from campaign_pipelines import campaigns, servers, templates
from campaign_pipelines.ops.send import SendConfig, send_campaign, send_channel
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.resources.http import HttpClientResource
from campaign_pipelines.resources.quotas import QuotaResource
from campaign_pipelines.resources.tracking import TrackingResource
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import sending as send_sql
from tests.fakes.providers import DEFAULT_KEYS, FakeProviders
from tests.sending.fixtures import BREVO, SENDGRID, Setup
from tests.support import failure_message


@pytest.fixture
def send(
    instance: dg.DagsterInstance,
    database_url: str,
    quota_resource: QuotaResource,
    fake_http: HttpClientResource,
):
    """Runs send_campaign in-process for one campaign (optionally some lines); failures are returned."""

    def send(campaign_id: int, channel_ids: list[int] | None = None) -> dg.ExecuteInProcessResult:
        return send_campaign.execute_in_process(
            run_config=dg.RunConfig(
                ops={"plan_channels": SendConfig(campaign_id=campaign_id, channel_ids=channel_ids)}
            ),
            instance=instance,
            resources={
                "database": PostgresResource(url=database_url),
                "quotas": quota_resource,
                "http": fake_http,
                "tracking": TrackingResource(base_url="https://t.example.com", secret="test-secret"),
            },
            raise_on_error=False,
        )

    return send


def step_keys(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.step_key for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_START}


def assert_each_contact_sent_once(db: psycopg.Connection, fakes: FakeProviders, setup: Setup, n: int) -> None:
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: n}
    recipients = [message.to for message in fakes.messages()]
    assert len(recipients) == len(set(recipients)) == n
    campaign = campaign_sql.campaign_by_id(db, setup.campaign_id)
    assert campaign is not None and campaign.sent_count == n


def test_a_scheduled_campaign_is_launched_and_sent_completely(
    db: psycopg.Connection,
    send,
    make_campaign,
    fakes: FakeProviders,
) -> None:
    setup = make_campaign(300, [BREVO, SENDGRID], launch=False)
    db.execute("UPDATE servers SET batch_size = 40")

    result = send(setup.campaign_id)

    assert result.success
    assert result.output_for_node("finalize") == "completed"
    outcomes = result.output_for_node("send_channel")
    assert set(outcomes) == {f"line_{line_id}" for line_id in setup.line_ids}
    assert sum(outcome["sent"] for outcome in outcomes.values()) == 300
    assert {outcome["status"] for outcome in outcomes.values()} == {"done"}
    assert_each_contact_sent_once(db, fakes, setup, 300)
    campaign = campaign_sql.campaign_by_id(db, setup.campaign_id)
    assert campaign is not None
    assert campaign.status == "completed"
    started, finished = db.execute(
        "SELECT started_at, finished_at FROM campaigns WHERE id = %s", (setup.campaign_id,)
    ).fetchone()
    assert started is not None and finished is not None and started <= finished
    lines = line_sql.lines_of(db, setup.campaign_id)
    assert [(line.status, line.attempt) for line in lines] == [("done", 1), ("done", 1)]
    assert sum(line.sent_count for line in lines) == 300
    # Batches of the server's size, not one call per contact.
    assert {call.messages for call in fakes.calls()} <= {40, 300 % 40}


def test_a_line_at_its_quota_leaves_the_campaign_running_with_the_reason(
    db: psycopg.Connection,
    send,
    make_campaign,
    fakes: FakeProviders,
) -> None:
    setup = make_campaign(8, [{**SENDGRID, "max_daily_sends": 5}])
    (line_id,) = setup.line_ids

    result = send(setup.campaign_id)

    assert result.success
    assert result.output_for_node("finalize") == "running"
    assert result.output_for_node("send_channel")[f"line_{line_id}"]["status"] == "quota_reached"
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: 5, ContactStatus.PENDING: 3}
    assert fakes.sent_count("sendgrid") == 5
    line = line_sql.line_by_id(db, line_id)
    assert line is not None
    tomorrow = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(0), UTC)
    assert line.status == "quota_reached"
    assert line.reason == f"reached 5/day, stopping until {tomorrow:%Y-%m-%d} 00:00 UTC"
    assert line.next_run_at == tomorrow
    campaign = campaign_sql.campaign_by_id(db, setup.campaign_id)
    assert campaign is not None and campaign.status == "running"


def test_selected_channel_ids_run_only_those_lines(
    db: psycopg.Connection,
    send,
    make_campaign,
    fakes: FakeProviders,
) -> None:
    setup = make_campaign(50, [BREVO, SENDGRID])
    brevo_line, sendgrid_line = setup.line_ids

    result = send(setup.campaign_id, [sendgrid_line])

    assert result.success
    assert step_keys(result) == {"plan_channels", f"send_channel[line_{sendgrid_line}]", "finalize"}
    assert fakes.sent_count("brevo") == 0
    assert fakes.sent_count("sendgrid") == 50
    brevo, sendgrid = line_sql.lines_of(db, setup.campaign_id)
    assert (brevo.status, brevo.sent_count, brevo.attempt, brevo.run_id) == ("pending", 0, 0, None)
    assert (sendgrid.status, sendgrid.sent_count, sendgrid.run_id) == ("done", 50, result.run_id)


def test_a_line_of_another_campaign_is_refused(
    db: psycopg.Connection,
    send,
    make_campaign,
    fakes: FakeProviders,
) -> None:
    setup = make_campaign(5, [BREVO])

    result = send(setup.campaign_id, [setup.line_ids[0], 9999])

    assert not result.success
    assert f"campaign {setup.campaign_id}: 1 problem(s)\n  - line(s) [9999] do not belong to it" in failure_message(
        result
    )
    assert fakes.calls() == []


@pytest.fixture
def unimported(db: psycopg.Connection, contacts_dir: Path, provider_keys) -> int:
    """A configured campaign (status scheduled) whose contacts were never imported."""
    servers.add_server(
        db, servers.ServerSpec(name=BREVO["server"], provider="brevo", url="http://x.test", api_key_env="BREVO_API_KEY")
    )
    templates.save_template(db, "promo", "<p>Bonjour {{ first_name }}</p>")
    (contacts_dir / "contacts.ndjson").write_text('{"email": "a@example.com"}\n')
    campaign_id = campaigns.create_campaign(db, name="Black Friday", subject="Offres", template="promo")
    line = campaigns.LineSpec(BREVO["sender_name"], BREVO["sender_email"], BREVO["server"])
    campaigns.configure_campaign(
        db, campaign_id, contact_files=["contacts.ndjson"], lines=[line], contacts_dir=contacts_dir
    )
    return campaign_id


def test_a_campaign_whose_contacts_are_not_imported_fails_the_plan(
    db: psycopg.Connection,
    send,
    unimported: int,
    fakes: FakeProviders,
) -> None:
    result = send(unimported)

    assert not result.success
    assert f"campaign {unimported}: 1 problem(s)\n  - its contacts are not imported yet" in failure_message(result)
    assert step_keys(result) == {"plan_channels"}
    campaign = campaign_sql.campaign_by_id(db, unimported)
    assert campaign is not None and campaign.status == "scheduled"
    assert [line.status for line in line_sql.lines_of(db, unimported)] == ["pending"]
    assert fakes.calls() == []


def test_a_draft_campaign_fails_the_plan(db: psycopg.Connection, send) -> None:
    templates.save_template(db, "promo", "<p>Bonjour</p>")
    draft = campaigns.create_campaign(db, name="Brouillon", subject="Offres", template="promo")

    result = send(draft)

    assert not result.success
    message = failure_message(result)
    assert (
        f"campaign {draft}: 1 problem(s)\n  - status is 'draft': only a scheduled campaign can be launched" in message
    )
    campaign = campaign_sql.campaign_by_id(db, draft)
    assert campaign is not None and campaign.status == "draft"


def test_an_unknown_campaign_fails_the_plan_naming_those_that_can_be_sent(
    db: psycopg.Connection, send, make_campaign
) -> None:
    setup = make_campaign(3, [BREVO], launch=False)
    result = send(4242)

    assert not result.success
    assert failure_message(result) == (
        f"campaign 4242 does not exist; campaigns that can be sent: {setup.campaign_id} 'Black Friday' (scheduled)"
    )


def test_a_refused_api_key_stops_that_line_while_the_other_sends_everything(
    db: psycopg.Connection,
    send,
    make_campaign,
    fakes: FakeProviders,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The refused line comes first, so it claims contacts before the other line runs.
    setup = make_campaign(120, [SENDGRID, BREVO])
    sendgrid_line, brevo_line = setup.line_ids
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.revoked-key-0123")

    result = send(setup.campaign_id)

    assert result.success
    outcomes = result.output_for_node("send_channel")
    assert outcomes[f"line_{sendgrid_line}"]["status"] == "error"
    assert outcomes[f"line_{brevo_line}"] == {
        "line_id": brevo_line,
        "status": "done",
        "reason": "no contact left to send",
        "sent": 120,
    }
    assert result.output_for_node("finalize") == "completed"
    # SendGrid was really called, and refused the key.
    assert [call.status for call in fakes.calls("sendgrid")] == [401]
    assert fakes.sent_count("sendgrid") == 0
    assert_each_contact_sent_once(db, fakes, setup, 120)
    line = line_sql.line_by_id(db, sendgrid_line)
    assert line is not None
    assert line.status == "error"
    assert line.reason is not None
    assert line.reason.startswith("the provider refused the API key: sendgrid: the API key was refused")
    assert "SG.revoked-key-0123" not in line.reason and DEFAULT_KEYS["sendgrid"] not in line.reason
    assert line.sent_count == 0


def sends_records(instance: dg.DagsterInstance) -> list[dg.AssetMaterialization]:
    """The campaign_sends materializations the runs recorded, oldest first."""
    records = instance.fetch_materializations(dg.AssetKey("campaign_sends"), limit=100).records
    materializations = [record.asset_materialization for record in reversed(records)]
    return [m for m in materializations if m is not None]


def test_each_line_records_the_campaigns_sends_with_stable_keys_and_a_true_rate(
    db: psycopg.Connection, send, make_campaign, instance: dg.DagsterInstance
) -> None:
    setup = make_campaign(120, [BREVO, SENDGRID], launch=False)
    db.execute("UPDATE servers SET batch_size = 40")

    result = send(setup.campaign_id)

    assert result.success
    records = sends_records(instance)
    assert len(records) == 2  # one per line, when it stopped
    assert {record.partition for record in records} == {str(setup.campaign_id)}
    for record in records:
        assert {"total", "sent", "failed", "unknown", "suppressed", "pending", "rate_per_s", "lines"} <= set(
            record.metadata
        )
    last = records[-1].metadata
    assert (last["total"].value, last["sent"].value, last["pending"].value) == (120, 120, 0)
    assert (last["failed"].value, last["unknown"].value, last["suppressed"].value) == (0, 0, 0)
    # The first line to run sent everything: a rate of the campaign's sends, never 0 while it sent.
    assert records[0].metadata["rate_per_s"].value > 0
    table = last["lines"].value
    assert [(row.data["line"], row.data["status"]) for row in table.records] == [("line 1", "done"), ("line 2", "done")]
    assert sum(row.data["sent"] for row in table.records) == 120


def test_a_campaign_id_below_1_is_refused_before_anything_is_sent(
    db: psycopg.Connection, send, fakes: FakeProviders
) -> None:
    # The Launchpad's scaffold fills a required int with 0: the run must not take it for a campaign.
    result = send(0)

    assert not result.success
    assert fakes.calls() == []
    assert failure_message(result) == "campaign 0 does not exist; no campaign can be sent yet: configure one first"


def test_the_line_that_ends_last_completes_the_campaign_without_finalize(
    db: psycopg.Connection,
    database_url: str,
    quota_resource: QuotaResource,
    fake_http: HttpClientResource,
    make_campaign,
    fakes: FakeProviders,
) -> None:
    # As when the run died while its steps went on on the workers: only the line steps run.
    setup = make_campaign(120, [{**BREVO, "max_daily_sends": 50}, SENDGRID])
    resources = {
        "database": PostgresResource(url=database_url),
        "quotas": quota_resource,
        "http": fake_http,
        "tracking": TrackingResource(base_url="https://t.example.com", secret="test-secret"),
    }
    first, last = setup.line_ids

    with dg.build_op_context(resources=resources) as context:
        assert send_channel(context, first)["status"] == "quota_reached"
    campaign = campaign_sql.campaign_by_id(db, setup.campaign_id)
    assert campaign is not None and campaign.status == "running"
    with dg.build_op_context(resources=resources) as context:
        assert send_channel(context, last)["status"] == "done"

    assert_each_contact_sent_once(db, fakes, setup, 120)
    campaign = campaign_sql.campaign_by_id(db, setup.campaign_id)
    assert campaign is not None and campaign.status == "completed"
