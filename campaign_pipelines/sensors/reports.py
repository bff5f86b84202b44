"""`campaign_report_sensor`: keeps each campaign's report fresh while it matters.

Every minute for a running campaign, then once a day for 30 days after it stopped (completed,
cancelled or paused); any other time from the UI (Materialize, partition = campaign id). Run keys
hold the minute or the day: Dagster remembers a run key forever, so a key without them would run once.
A campaign whose report is still being built is skipped until that run ends.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from campaign_pipelines.assets.report import campaign_report
from campaign_pipelines.partitions import add_missing, campaign_key
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.statuses import CampaignStatus
from campaign_pipelines.store import reports as report_sql

REPORT_DAYS_AFTER = 30
MAX_REPORTS_PER_TICK = 50
_IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def report_run_key(campaign_id: int, status: str, now: datetime) -> str:
    """`report-<id>-<minute>` while running, `report-<id>-<day>` after (UTC)."""
    when = now.astimezone(UTC).strftime("%Y%m%dT%H%M" if status == CampaignStatus.RUNNING else "%Y%m%d")
    return f"report-{campaign_id}-{when}"


def _reporting(instance: dg.DagsterInstance, key: str) -> bool:
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={"campaign": key, "report": "campaign"}, statuses=_IN_PROGRESS), limit=1
    )
    return bool(runs)


@dg.sensor(
    asset_selection=[campaign_report],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Refreshes campaign_report every minute while a campaign runs, then daily for 30 days after it stops.",
)
def campaign_report_sensor(context: dg.SensorEvaluationContext, database: PostgresResource) -> dg.SensorResult:
    now = datetime.now(UTC)
    with database.connect() as conn:
        due = report_sql.campaigns_to_report(conn, within_days=REPORT_DAYS_AFTER, limit=MAX_REPORTS_PER_TICK)
    keys = {campaign_id: campaign_key(campaign_id) for campaign_id, _ in due}
    requests = [
        dg.RunRequest(
            run_key=report_run_key(campaign_id, status, now),
            partition_key=keys[campaign_id],
            tags={"campaign": keys[campaign_id], "report": "campaign"},
        )
        for campaign_id, status in due
        if not _reporting(context.instance, keys[campaign_id])
    ]
    if not requests:
        return dg.SensorResult(skip_reason="no campaign report is due")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=add_missing(context.instance, keys.values()),
    )
