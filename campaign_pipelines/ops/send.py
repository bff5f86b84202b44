"""`send_campaign`: plan → one `send_channel` per line, in parallel → finalize.

The seed's ProcessCampaignEmails (planning) and SendCampaignBatch (one worker per line).
Ops are thin: the send loop is `sending.line.LineSender`; ids, never contacts, pass between steps.
The op names (`plan_channels`, `send_channel`) and `channel_ids` keep the words the code used
for a line before: they are what saved Launchpad configs (`ops: {plan_channels: ...}`) and past
runs' step keys say.
"""

import time
from collections.abc import Iterator

import dagster as dg
import psycopg
from pydantic import Field

from campaign_pipelines import execution
from campaign_pipelines.assets.sends import sends_materialization
from campaign_pipelines.ops.admin import refused_as_failure
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.resources.http import HttpClientResource
from campaign_pipelines.resources.quotas import QuotaResource
from campaign_pipelines.resources.tracking import TrackingResource
from campaign_pipelines.sending import campaign as lifecycle
from campaign_pipelines.sending.line import LineSender
from campaign_pipelines.sending.outcomes import LineOutcome
from campaign_pipelines.sending.progress import line_label, send_totals
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store.lines import STALE_AFTER_S, LineState

# Every line of a campaign must really send at once (the default is one step per CPU).
MAX_PARALLEL_LINES = 32
# How often a running line reports its progress in the Dagster UI: a log line, a campaign_sends record.
_REPORT_EVERY_S = 5.0
_RECORD_EVERY_S = 60.0


class SendConfig(dg.Config):
    """What the Launchpad asks to send a campaign by hand; the sensors fill it in themselves."""

    campaign_id: int = Field(
        description=(
            "Id of the campaign to send, e.g. 1 (`campaigns campaign list` shows them); its status must be"
            " scheduled (contacts imported) or running."
        ),
    )
    channel_ids: list[int] | None = Field(
        default=None,
        description=("Only these sending lines, by id (e.g. [7, 8]); leave empty for every line that still has work."),
    )


@dg.op(
    out={"lines": dg.DynamicOut(int), "campaign_id": dg.Out(int)},
    description="Launch the campaign (scheduled → running) and fan out one step per sending line.",
)
def plan_channels(
    context: dg.OpExecutionContext, config: SendConfig, database: PostgresResource
) -> Iterator[dg.Output | dg.DynamicOutput]:
    with refused_as_failure(), database.connect() as conn:
        campaign = lifecycle.launch(conn, config.campaign_id)
        lines = lifecycle.lines_to_run(
            conn, campaign.id, config.channel_ids, run_id=context.run_id, stale_after_s=STALE_AFTER_S
        )
        # This run now owns its lines: the relaunch sensor leaves them alone.
        line_sql.lease_lines(conn, [line.id for line in lines], context.run_id)
    context.log.info(
        f"campaign {campaign.id} '{campaign.name}' is running: {len(lines)} line(s) start now"
        f" ({', '.join(line.server_name for line in lines) or 'none'})"
    )
    yield dg.Output(campaign.id, "campaign_id")
    for line in lines:
        yield dg.DynamicOutput(line.id, output_name="lines", mapping_key=f"line_{line.id}")


class _LineReport:
    """Live progress of one line in the Dagster UI: a log line every few seconds and, every minute
    and when the line stops, a materialization of `campaign_sends` for the campaign's partition
    (the whole campaign's figures, read from the database, and the rate since the previous one)."""

    def __init__(self, context: dg.OpExecutionContext, conn: psycopg.Connection, line: LineState) -> None:
        self._context = context
        self._conn = conn
        self._line = line
        self._label = line_label(line.position)
        totals = send_totals(conn, line.campaign_id)
        self._total = totals.total
        self._last_sent = totals.sent
        self._started = self._last_log = self._last_record = time.monotonic()

    def __call__(self, outcome: LineOutcome) -> None:
        now = time.monotonic()
        if now - self._last_log >= _REPORT_EVERY_S:
            self._last_log = now
            rate = outcome.sent / max(now - self._started, 1e-9)
            self._context.log.info(
                f"{self._label} ('{self._line.server_name}'): {outcome.sent:,} sent by this run,"
                f" {outcome.failed:,} failed, {rate:,.1f}/s"
            )
        if now - self._last_record >= _RECORD_EVERY_S:
            self.record()

    def record(self) -> None:
        now = time.monotonic()
        totals = send_totals(self._conn, self._line.campaign_id)
        rate = (totals.sent - self._last_sent) / max(now - self._last_record, 1e-9)
        self._last_record, self._last_sent = now, totals.sent
        self._context.log_event(sends_materialization(totals, rate_per_s=max(rate, 0.0)))


@dg.op(description="Send one line until it is done, at its quota, waiting, paused or in error.")
def send_channel(
    context: dg.OpExecutionContext,
    line_id: int,
    database: PostgresResource,
    quotas: QuotaResource,
    http: HttpClientResource,
    tracking: TrackingResource,
) -> dict:
    with database.connect() as conn, database.connect() as results_conn, http.client() as client:
        line = line_sql.line_by_id(conn, line_id)
        assert line is not None, f"line {line_id} vanished"
        report = _LineReport(context, conn, line)
        outcome = LineSender(
            conn,
            line_id,
            run_id=context.run_id,
            quotas=quotas.store(conn),
            client=client,
            on_progress=report,
            tracking=tracking.config(),
            results_conn=results_conn,
        ).run()
        report.record()
        # The line that ends last completes the campaign: `finalize` never runs when the run dies
        # while its steps go on (its Celery broker restarted), and nothing would complete it then.
        lifecycle.finish(conn, line.campaign_id)
    label = line_label(line.position)
    for warning in outcome.warnings:
        context.log.warning(f"{label}: {warning}")
    if outcome.undefined_variables:
        context.log.warning(
            f"{label}: the template asked {outcome.undefined_variables:,} time(s) for a variable a contact"
            " does not have; it rendered empty"
        )
    context.log.info(
        f"{label} ('{line.server_name}', {line.sender_email}): {outcome.status}"
        f"{f' — {outcome.reason}' if outcome.reason else ''}; {outcome.sent:,} sent, {outcome.failed:,} failed,"
        f" {outcome.unknown:,} unknown, {outcome.suppressed:,} suppressed, {outcome.rate:,.1f}/s"
    )
    return {"line_id": line_id, "status": outcome.status, "reason": outcome.reason, "sent": outcome.sent}


@dg.op(description="Completed when every contact is final; else the campaign stays running with each line's reason.")
def finalize(context: dg.OpExecutionContext, campaign_id: int, outcomes: list[dict], database: PostgresResource) -> str:
    with database.connect() as conn:
        progress = lifecycle.finish(conn, campaign_id)
    for line in progress.lines:
        context.log.info(f"{line_label(line.position)} ('{line.server_name}'): {line.status} — {line.reason or ''}")
    context.log.info(
        f"campaign {campaign_id}: {progress.status}; {sum(o['sent'] for o in outcomes):,} sent by this run"
    )
    return progress.status


@dg.job(
    # Lines in processes of this machine, or steps on the Celery workers (CAMPAIGNS_EXECUTOR).
    executor_def=execution.send_executor(MAX_PARALLEL_LINES),
    description="Send a campaign: every sending line in parallel, at its own pace and quota.",
)
def send_campaign() -> None:
    lines, campaign_id = plan_channels()
    outcomes = lines.map(send_channel)
    finalize(campaign_id, outcomes.collect())
