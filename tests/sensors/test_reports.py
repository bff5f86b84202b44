"""`campaign_report_sensor` against the real database: which campaigns get a report run, and their run keys."""

from __future__ import annotations

import dagster as dg
import pytest

from campaign_pipelines import campaigns, templates
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.sensors.reports import campaign_report_sensor


@pytest.fixture
def tick(instance: dg.DagsterInstance, database_url: str):
    def evaluate() -> dg.SensorResult:
        with dg.build_sensor_context(
            instance=instance, resources={"database": PostgresResource(url=database_url)}
        ) as context:
            result = campaign_report_sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    return evaluate


@pytest.fixture
def campaign(db):
    templates.save_template(db, "promo", "<p>Bonjour</p>")

    def make(status: str, *, finished_days_ago: int | None = None) -> int:
        campaign_id = campaigns.create_campaign(db, name=status, subject="Hi", template="promo")
        db.execute(
            "UPDATE campaigns SET status = %s, finished_at = now() - make_interval(days => %s) WHERE id = %s",
            (status, finished_days_ago, campaign_id),
        )
        return campaign_id

    return make


def test_running_campaigns_get_a_report_each_minute_and_stopped_ones_each_day(tick, campaign):
    running = campaign("running")
    completed = campaign("completed", finished_days_ago=3)
    campaign("completed", finished_days_ago=31)  # past the 30 days
    campaign("scheduled")

    result = tick()

    keys = {request.partition_key: request.run_key for request in result.run_requests}
    assert set(keys) == {str(running), str(completed)}
    assert keys[str(running)].startswith(f"report-{running}-") and keys[str(running)][-5] == "T"  # ...THHMM
    assert len(keys[str(completed)]) == len(f"report-{completed}-20261203")
    assert result.dynamic_partitions_requests[0].partition_keys == [str(running), str(completed)]


def test_a_campaign_whose_report_is_still_running_is_skipped(tick, campaign, instance):
    running = campaign("running")
    instance.create_run_for_job(  # queued: not ended yet
        dg.Definitions(jobs=[dg.define_asset_job("x")]).resolve_job_def("x"),
        tags={"campaign": str(running), "report": "campaign"},
    )

    assert tick().run_requests == []
    assert "no campaign report is due" in tick().skip_reason.skip_message


def test_nothing_due_says_so(tick, campaign):
    campaign("draft")

    result = tick()

    assert result.run_requests == [] and "no campaign report is due" in result.skip_reason.skip_message
