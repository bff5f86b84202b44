"""`campaign_report_sensor`: keeps each campaign's report fresh while it matters.

Every minute for a running campaign, then once a day for 30 days after it stopped (completed,
cancelled or paused); any other time from the UI (Materialize, partition = campaign id). Run keys
hold the minute or the day: Dagster remembers a run key forever, so a key without them would run once.
A campaign whose report is still being built is skipped until that run ends, and a report never
takes more than a tenth of the time (REPORT_SHARE): after a run of d seconds the campaign's next
one waits 9 d (a 10M-contact campaign's 45 s report runs every 7 or 8 minutes, not back to back
beside its send).
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
# The most of the time a campaign's reports may take (the rest is left to its send).
REPORT_SHARE = 0.1
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


def _report_wait(instance: dg.DagsterInstance, key: str, now: datetime) -> str | None:
    """Why campaign `key`'s report is not due now, judging by its last report run; None if it is."""
    records = instance.get_run_records(filters=dg.RunsFilter(tags={"campaign": key, "report": "campaign"}), limit=1)
    if not records:
        return None
    last = records[0]
    if last.dagster_run.status in _IN_PROGRESS:
        return "its report is still being built"
    if last.start_time is None or last.end_time is None:
        return None
    took = last.end_time - last.start_time
    due = datetime.fromtimestamp(last.end_time + took * (1 / REPORT_SHARE - 1), UTC)
    if now < due:
        return f"its last report took {took:.0f} s: the next one after {due:%H:%M:%S} UTC"
    return None


@dg.sensor(
    asset_selection=[campaign_report],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Refreshes campaign_report every minute while a campaign runs (its reports never taking more than"
        " a tenth of the time), then daily for 30 days after it stops."
    ),
)
def campaign_report_sensor(context: dg.SensorEvaluationContext, database: PostgresResource) -> dg.SensorResult:
    now = datetime.now(UTC)
    with database.connect() as conn:
        due = report_sql.campaigns_to_report(conn, within_days=REPORT_DAYS_AFTER, limit=MAX_REPORTS_PER_TICK)
    keys = {campaign_id: campaign_key(campaign_id) for campaign_id, _ in due}
    requests, waiting = [], []
    for campaign_id, status in due:
        wait = _report_wait(context.instance, keys[campaign_id], now)
        if wait is not None:
            waiting.append(f"campaign {campaign_id}: {wait}")
            continue
        requests.append(
            dg.RunRequest(
                run_key=report_run_key(campaign_id, status, now),
                partition_key=keys[campaign_id],
                tags={"campaign": keys[campaign_id], "report": "campaign"},
            )
        )
    if not requests:
        return dg.SensorResult(skip_reason="; ".join(["no campaign report is due", *waiting]))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=add_missing(context.instance, keys.values()),
    )
