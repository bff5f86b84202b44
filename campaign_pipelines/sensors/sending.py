"""What starts and restarts `send_campaign` runs (the seed's campaigns:relaunch-stalled, and more).

- `campaign_launch_sensor`: scheduled, fully imported campaigns whose earliest start date has come.
- `stalled_lines_sensor`: lines of running campaigns that need a run now: new or resumed lines,
  waits that are over (start date, pacing, provider rate limit) and lines whose worker died
  (stale heartbeat). Only those lines are relaunched.
- `relaunch_stalled` schedule: lines stopped at their daily quota, once their day is over in
  their server's time zone (it runs hourly so every time zone's midnight is honoured).
Run keys carry the line's attempt number: a key is remembered forever by Dagster.
"""

from collections import defaultdict

import dagster as dg

from campaign_pipelines.ops.send import SendConfig, send_campaign
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store.lines import STALE_AFTER_S

MAX_LAUNCHES_PER_TICK = 20


def _send_request(campaign_id: int, run_key: str, line_ids: list[int] | None = None) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        run_config=dg.RunConfig(ops={"plan_channels": SendConfig(campaign_id=campaign_id, channel_ids=line_ids)}),
        tags={"campaign": str(campaign_id)},
    )


@dg.sensor(
    job=send_campaign,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts sending scheduled, fully imported campaigns once their earliest start date has come.",
)
def campaign_launch_sensor(context: dg.SensorEvaluationContext, database: PostgresResource) -> dg.SensorResult:
    with database.connect() as conn:
        ready = campaign_sql.campaigns_ready_to_send(conn, MAX_LAUNCHES_PER_TICK)
    if not ready:
        return dg.SensorResult(skip_reason="no campaign is ready to send")
    return dg.SensorResult(
        run_requests=[
            _send_request(campaign_id, f"send-{campaign_id}-{configured_at.timestamp():.6f}")
            for campaign_id, configured_at in ready
        ]
    )


def _relaunch(database: PostgresResource, *, quota: bool) -> list[dg.RunRequest]:
    with database.connect() as conn:
        due = line_sql.lines_due(conn, stale_after_s=STALE_AFTER_S, quota=quota)
        by_campaign: defaultdict[int, list[int]] = defaultdict(list)
        for line in due:
            by_campaign[line.campaign_id].append(line.line_id)
        requests = []
        for campaign_id, line_ids in by_campaign.items():
            attempt = line_sql.lease_lines(conn, line_ids, None)
            ids = "_".join(map(str, line_ids))
            requests.append(_send_request(campaign_id, f"lines-{campaign_id}-{ids}-{attempt}", line_ids))
    return requests


@dg.sensor(
    job=send_campaign,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Relaunches lines of running campaigns that need a run: resumed, done waiting, or worker died.",
)
def stalled_lines_sensor(context: dg.SensorEvaluationContext, database: PostgresResource) -> dg.SensorResult:
    requests = _relaunch(database, quota=False)
    if not requests:
        return dg.SensorResult(skip_reason="no line needs a run")
    return dg.SensorResult(run_requests=requests)


@dg.schedule(
    job=send_campaign,
    cron_schedule="1 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Wakes lines stopped at their daily quota once a new day has begun in their server's time zone.",
)
def relaunch_stalled(context: dg.ScheduleEvaluationContext, database: PostgresResource):
    requests = _relaunch(database, quota=True)
    return requests or dg.SkipReason("no line waits for a new quota day")
