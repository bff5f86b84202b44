"""`campaign_report_sensor` against the real database: which campaigns get a report run, and their run keys."""

from __future__ import annotations

import time

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


def _report_ran(instance: dg.DagsterInstance, campaign_id: int, *, ended_s_ago: float, took_s: float) -> None:
    job = dg.Definitions(jobs=[dg.define_asset_job("x")]).resolve_job_def("x")
    run = instance.create_run_for_job(job, tags={"campaign": str(campaign_id), "report": "campaign"})
    ended = time.time() - ended_s_ago
    for kind, at in ((dg.DagsterEventType.RUN_START, ended - took_s), (dg.DagsterEventType.RUN_SUCCESS, ended)):
        event = dg.DagsterEvent(event_type_value=kind.value, job_name="x")
        instance.report_dagster_event(event, run.run_id, timestamp=at)


def test_a_long_report_spaces_the_next_ones_to_a_tenth_of_the_time(tick, campaign, instance):
    slow, quick = campaign("running"), campaign("running")
    _report_ran(instance, slow, ended_s_ago=120, took_s=45)  # next one 405 s after it ended
    _report_ran(instance, quick, ended_s_ago=60, took_s=5)

    result = tick()

    assert [request.partition_key for request in result.run_requests] == [str(quick)]
    _report_ran(instance, quick, ended_s_ago=10, took_s=5)
    skipped = tick().skip_reason.skip_message
    assert f"campaign {slow}: its last report took 45 s: the next one after" in skipped
    assert f"campaign {quick}: its last report took 5 s" in skipped


def test_a_report_that_ran_long_ago_is_due_again(tick, campaign, instance):
    running = campaign("running")
    _report_ran(instance, running, ended_s_ago=500, took_s=45)

    assert [request.partition_key for request in tick().run_requests] == [str(running)]
