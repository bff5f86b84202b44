"""`build_report`: a campaign's report from PostgreSQL (its lines, links, blacklist) and DuckDB (the funnels).

Called by the `campaign_report` asset (through `publish_report`), the CLI and the report benchmark.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from campaign_pipelines.errors import NotFoundError
from campaign_pipelines.reports.model import (
    CampaignReport,
    DomainFunnel,
    Funnel,
    HourActivity,
    LineFunnel,
    LinkClicks,
)
from campaign_pipelines.statuses import NOT_LAUNCHED, CampaignStatus
from campaign_pipelines.store import outcomes as outcome_sql
from campaign_pipelines.store import reports as report_sql
from campaign_pipelines.store.connection import connect
from campaign_pipelines.store.contacts import contact_table_exists
from campaign_pipelines.store.duck import duckdb_over
from campaign_pipelines.store.tracking import links_of

TOP_DOMAINS = 20
_HOUR = timedelta(hours=1)


def build_report(
    database_url: str,
    campaign_id: int,
    *,
    outcomes: Path | None = None,
    outcomes_while_running: bool = False,
    top_domains: int = TOP_DOMAINS,
    slice_contacts: int = outcome_sql.SLICE_CONTACTS,
) -> CampaignReport:
    """The report of one campaign now. Read-only; never fails for lack of data (its notes say why).

    `outcomes`: a folder, not there yet, to write the per-contact outcomes into when the campaign
    is not running (or `outcomes_while_running`): one Parquet file per slice (`part-000000.parquet`,
    `part-000001.parquet`, … in contact-id order), each written once where it stays, together one
    table (`read_parquet('<folder>/*.parquet')`); created only when the campaign has contacts or events.
    Without it, or while it runs, the slices' files are deleted once counted and nothing per
    contact is kept. `slice_contacts`: contact ids read, folded and counted at a time (the report's
    memory). Raises NotFoundError when the campaign does not exist.
    """
    generated_at = datetime.now(UTC)
    with connect(database_url) as conn, report_sql.report_snapshot(conn):
        facts = report_sql.campaign_facts(conn, campaign_id)
        if facts is None:
            raise NotFoundError(f"campaign {campaign_id} does not exist")
        lines = report_sql.line_labels(conn, campaign_id)
        urls = links_of(conn, campaign_id)
        imported = contact_table_exists(conn, campaign_id)
        blacklisted = report_sql.pending_blacklisted(conn, campaign_id) if imported else 0

    funnel_rows: list[outcome_sql.FunnelRow] = []
    event_hours: list[outcome_sql.EventHourRow] = []
    link_rows: list[outcome_sql.LinkRow] = []
    if imported:
        export = (
            outcomes
            if outcomes is not None and (outcomes_while_running or facts.status != CampaignStatus.RUNNING)
            else None
        )
        with (
            tempfile.TemporaryDirectory(prefix="campaign-report-") as tmp,
            duckdb_over(database_url, Path(tmp)) as duck,
        ):
            outcome_sql.start_totals(duck)
            slices = outcome_sql.id_ranges(duck, campaign_id, size=slice_contacts)
            if export is not None and slices:
                export.mkdir(parents=True)  # never into an older set: its parts would count twice
            folder = Path(tmp) if export is None else export
            for n, (lo, hi) in enumerate(slices):
                path = folder / f"part-{n:06d}.parquet"
                outcome_sql.add_slice(duck, campaign_id, lo, hi, path)
                if export is None:
                    path.unlink()  # counted: nothing per contact is kept
            funnel_rows = outcome_sql.funnels(duck, top_domains=top_domains)
            event_hours = outcome_sql.events_by_hour(duck)
            link_rows = outcome_sql.clicks_by_link(duck)

    by_group: dict[int, list[outcome_sql.FunnelRow]] = {}
    for row in funnel_rows:
        by_group.setdefault(row.grouping, []).append(row)
    totals = next((_funnel(row) for row in by_group.get(outcome_sql.ALL, [])), Funnel())
    per_line = {row.line_id: _funnel(row) for row in by_group.get(outcome_sql.BY_LINE, []) if row.line_id is not None}
    domains = tuple(DomainFunnel(row.domain or "", _funnel(row)) for row in by_group.get(outcome_sql.BY_DOMAIN, []))
    other = totals
    for domain in domains:
        other = other.minus(domain.funnel)
    links = _links(urls, link_rows)
    report = CampaignReport(
        campaign_id=facts.id,
        name=facts.name,
        status=facts.status,
        generated_at=generated_at,
        started_at=facts.started_at,
        finished_at=facts.finished_at,
        sendable=max(totals.contacts - totals.suppressed - blacklisted, 0),
        totals=totals,
        lines=tuple(
            LineFunnel(
                line_id=line.id,
                position=line.position,
                sender=f"{line.sender_name} <{line.sender_email}>",
                server=line.server_name,
                funnel=per_line.get(line.id, Funnel()),
            )
            for line in lines
        ),
        domains=domains,
        other_domains=other,
        hours=_hours(facts.started_at, by_group.get(outcome_sql.BY_HOUR, []), event_hours),
        links=links,
    )
    notes = _notes(report, facts, imported=imported, events=bool(event_hours), lines=bool(lines))
    return replace(report, notes=notes)


def _funnel(row: outcome_sql.FunnelRow) -> Funnel:
    return Funnel(**{name: int(getattr(row, name)) for name in Funnel.__dataclass_fields__})


def _utc(hour: datetime) -> datetime:
    # DuckDB hands back UTC times without a zone (the SELECTs convert them).
    return hour.replace(tzinfo=UTC)


def _hours(
    started_at: datetime | None,
    send_hours: Sequence[outcome_sql.FunnelRow],
    event_hours: Sequence[outcome_sql.EventHourRow],
) -> tuple[HourActivity, ...]:
    sends = {_utc(row.hour): row for row in send_hours if row.hour is not None}
    events = {_utc(row.hour): row for row in event_hours}
    launch = started_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0) if started_at else None
    hours = []
    for hour in sorted(sends.keys() | events.keys()):
        send, event = sends.get(hour), events.get(hour)
        hours.append(
            HourActivity(
                hour=hour,
                hours_since_launch=(hour - launch) // _HOUR if launch else None,
                sent=send.sent if send else 0,
                failed=send.failed if send else 0,
                opens=event.opens if event else 0,
                human_opens=event.human_opens if event else 0,
                clicks=event.clicks if event else 0,
                human_clicks=event.human_clicks if event else 0,
                unsubscribes=event.unsubscribes if event else 0,
            )
        )
    return tuple(hours)


def _links(urls: Sequence[str], rows: Sequence[outcome_sql.LinkRow]) -> tuple[LinkClicks, ...]:
    clicked = {row.idx: row for row in rows}
    result = []
    for idx in sorted(set(range(len(urls))) | clicked.keys()):
        row = clicked.get(idx)
        result.append(
            LinkClicks(
                idx=idx,
                url=urls[idx] if idx < len(urls) else None,
                clicks=row.clicks if row else 0,
                unique_clicks=row.unique_clicks if row else 0,
                human_clicks=row.human_clicks if row else 0,
                human_unique_clicks=row.human_unique_clicks if row else 0,
            )
        )
    return tuple(result)


def _notes(
    report: CampaignReport, facts: report_sql.CampaignFacts, *, imported: bool, events: bool, lines: bool
) -> tuple[str, ...]:
    notes = []
    totals = report.totals
    if facts.status == CampaignStatus.FAILED:
        notes.append(f"the import failed: {facts.error or 'no reason recorded'}")
    if not imported:
        notes.append("no contacts: the campaign's contacts have not been imported yet")
    elif totals.contacts == 0:
        notes.append("no contacts: the import found none")
    if not lines:
        notes.append("no sending lines configured yet")
    if imported and totals.contacts and not totals.sent:
        notes.append(
            "nothing sent yet: the campaign has not been launched"
            if facts.status in NOT_LAUNCHED
            else "nothing sent yet"
        )
    if totals.sent and not events:
        notes.append("no opens, clicks or unsubscribes recorded yet")
    if totals.sent and not (totals.delivered or totals.bounced or totals.complained):
        notes.append(
            "no provider webhook events yet: delivered, bounces and complaints stay 0 until providers post them"
        )
    return tuple(notes)
