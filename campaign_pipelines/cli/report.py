"""`campaigns campaign report ID`: the campaign report (reports.build_report) as rich tables, or JSON."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from campaign_pipelines.cli.common import _Database
from campaign_pipelines.cli.output import _STATUS_STYLES, _cell
from campaign_pipelines.reports import TOP_DOMAINS, CampaignReport, Funnel, build_report


def _campaign_report(args: argparse.Namespace, db: _Database) -> None:
    report = build_report(db.url, args.campaign_id)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        return
    console = Console(highlight=False)
    title = Text.assemble(
        (f"campaign {report.campaign_id}", "bold"),
        f"  '{report.name}'  ",
        (report.status, _STATUS_STYLES.get(report.status, "")),
    )
    console.print(title)
    console.print(
        Text(
            f"as of {_cell(report.generated_at)}"
            + (f" · started {_cell(report.started_at)}" if report.started_at else "")
            + (f" · finished {_cell(report.finished_at)}" if report.finished_at else ""),
            style="dim",
        )
    )
    console.print(_funnel_table(report))
    if report.lines:
        lines = [(line.label, line.funnel) for line in report.lines]
        console.print(_breakdown_table("per line", "line", lines, failed=True))
    if report.domains:
        domains = [(domain.domain, domain.funnel) for domain in report.domains]
        if report.other_domains.contacts:
            domains.append(("other domains", report.other_domains))
        console.print(_breakdown_table(f"per recipient domain (top {TOP_DOMAINS})", "domain", domains, failed=False))
    if report.links:
        console.print(_links_table(report))
    if any(hour.sent or hour.opens or hour.clicks for hour in report.hours):
        console.print(_hours_table(report))
    for note in report.notes:
        console.print(Text(f"note: {note}", style="yellow"))


def _rate_cell(count: int, sent: int) -> str:
    return f"{count / sent:.1%}" if sent else "-"


def _funnel_table(report: CampaignReport) -> Table:
    totals = report.totals
    table = Table(title="funnel", title_justify="left", show_edge=False)
    table.add_column("")
    table.add_column("contacts", justify="right")
    table.add_column("of sent", justify="right")
    rows: list[tuple[str, int, int | None]] = [
        ("contacts", totals.contacts, None),
        ("sendable", report.sendable, None),
        ("sent", totals.sent, None),
        ("failed", totals.failed, None),
        ("unknown", totals.unknown, None),
        ("suppressed", totals.suppressed, None),
        ("pending", totals.pending, None),
        ("delivered", totals.delivered, totals.sent),
        ("hard bounced", totals.hard_bounced, totals.sent),
        ("soft bounced", totals.soft_bounced, totals.sent),
        ("complained", totals.complained, totals.sent),
        ("opened (human)", totals.human_unique_opens, totals.sent),
        ("opened (all)", totals.unique_opens, totals.sent),
        ("clicked (human)", totals.human_unique_clicks, totals.sent),
        ("clicked (all)", totals.unique_clicks, totals.sent),
        ("unsubscribed", totals.unsubscribed, totals.sent),
    ]
    for label, count, of in rows:
        table.add_row(label, f"{count:,}", "" if of is None else _rate_cell(count, of))
    return table


def _breakdown_table(title: str, what: str, rows: Sequence[tuple[str, Funnel]], *, failed: bool) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column(what, no_wrap=True)
    names = ("sent", *(("failed",) if failed else ()), "opens\nhuman", "opens\nall", "clicks\nhuman", "clicks\nall")
    for name in (*names, "bounced", "unsub."):
        table.add_column(name, justify="right")
    for label, funnel in rows:
        table.add_row(
            label,
            f"{funnel.sent:,}",
            *((f"{funnel.failed:,}",) if failed else ()),
            _rate_cell(funnel.human_unique_opens, funnel.sent),
            _rate_cell(funnel.unique_opens, funnel.sent),
            _rate_cell(funnel.human_unique_clicks, funnel.sent),
            _rate_cell(funnel.unique_clicks, funnel.sent),
            _rate_cell(funnel.bounced, funnel.sent),
            _rate_cell(funnel.unsubscribed, funnel.sent),
        )
    return table


def _links_table(report: CampaignReport) -> Table:
    table = Table(title="per tracked link", title_justify="left", show_edge=False)
    table.add_column("link", overflow="fold")
    for name in ("clickers\nhuman", "clickers\nall", "clicks\nall"):
        table.add_column(name, justify="right")
    for link in report.links:
        table.add_row(
            link.url or f"link {link.idx} (no longer in the template)",
            f"{link.human_unique_clicks:,}",
            f"{link.unique_clicks:,}",
            f"{link.clicks:,}",
        )
    return table


def _hours_table(report: CampaignReport) -> Table:
    table = Table(title="per hour since launch", title_justify="left", show_edge=False)
    table.add_column("hour", no_wrap=True)
    for name in ("sent", "opens\nhuman", "opens\nall", "clicks\nhuman", "clicks\nall", "unsub."):
        table.add_column(name, justify="right")
    for hour in report.hours:
        table.add_row(
            _cell(hour.hour),
            f"{hour.sent:,}",
            f"{hour.human_opens:,}",
            f"{hour.opens:,}",
            f"{hour.human_clicks:,}",
            f"{hour.clicks:,}",
            f"{hour.unsubscribes:,}",
        )
    return table
