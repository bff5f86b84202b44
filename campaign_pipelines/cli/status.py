"""`campaigns campaign list` and `campaigns campaign status ID`: where campaigns stand now."""

from __future__ import annotations

import argparse
from dataclasses import astuple
from datetime import UTC, datetime

import psycopg

from campaign_pipelines.cli.common import _campaign, _Database, _to_send, _wrap
from campaign_pipelines.cli.output import _age, _cell, _print_table
from campaign_pipelines.sending.progress import SendTotals
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import catalog
from campaign_pipelines.store import contacts as contact_sql
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import tracking as tracking_sql


def _campaign_list(args: argparse.Namespace, db: _Database) -> None:
    rows = campaign_sql.list_campaigns(db.conn, limit=args.limit)
    engagement = tracking_sql.engagement_of(db.conn, [c.id for c in rows])
    table = []
    for c in rows:
        totals = SendTotals.of(c, line_sql.lines_of(db.conn, c.id))
        seen = engagement.get(c.id, tracking_sql.Engagement())
        table.append(
            (
                c.id,
                c.name,
                c.status,
                f"{totals.done_share:.0%}" if c.imported_at else "-",
                f"{c.sent_count:,}/{_to_send(c):,}",
                *(_share(count, c.sent_count) for count in astuple(seen)),
            )
        )
    _print_table(
        ("id", "name", "status", "progress", "sent", "human opens", "all opens", "human clicks", "all clicks"),
        table,
        empty="no campaigns yet: create one with 'campaigns campaign create'",
    )
    if table:
        print(
            _wrap(
                "progress: contacts whose send is final; opens and clicks: unique contacts per email sent,"
                " by people (human) or including machines (all: Apple Mail privacy proxies, link scanners)"
            )
        )


def _share(count: int, of: int) -> str:
    return f"{count / of:.1%}" if of else "-"


def _campaign_status(args: argparse.Namespace, db: _Database) -> None:
    campaign = _campaign(db.conn, args.campaign_id)
    template = catalog.template_by_id(db.conn, campaign.template_id)
    lines = line_sql.lines_of(db.conn, campaign.id)
    to_send = _to_send(campaign)
    progress = f" ({campaign.sent_count / to_send:.0%})" if to_send else ""
    fields: list[tuple[str, object]] = [
        ("campaign", f"{campaign.id} '{campaign.name}'"),
        ("status", campaign.status),
        ("subject", campaign.subject),
        ("template", template.name),
        ("contact files", ", ".join(campaign.contact_files) or None),
        ("nbre_contacts", campaign.nbre_contacts),
        ("blacklisted", _blacklisted_now(db.conn, campaign)),
        ("sent_count", f"{campaign.sent_count}{progress}"),
    ]
    unknown = sum(line.unknown_count for line in lines)
    if lines:
        fields += [
            ("failed", sum(line.failed_count for line in lines)),
            ("unknown", unknown),
            ("suppressed", sum(line.suppressed_count for line in lines)),
        ]
    fields += [
        ("created", campaign.created_at),
        ("configured", campaign.configured_at),
        ("imported", campaign.imported_at),
    ]
    if campaign.error:
        fields.append(("error", campaign.error))
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        print(f"{label + ':':<{width + 1}} {_cell(value)}")

    print()
    _print_table(
        ("line", "sender", "server", "every (min)", "max/day", "start"),
        [
            (
                line.position,
                f"{line.sender_name} <{line.sender_email}>",
                line.server_name,
                "as fast as possible" if line.send_frequency_minutes is None else line.send_frequency_minutes,
                "unlimited" if line.max_daily_sends is None else line.max_daily_sends,
                "now" if line.scheduled_at is None else line.scheduled_at,
            )
            for line in lines
        ],
        empty="no sending lines yet: see 'campaigns campaign configure --help'",
    )
    if not lines:
        return
    now = datetime.now(UTC)
    print()
    _print_table(
        ("line", "status", "sent", "failed", "unknown", "suppressed", "last sent", "next run", "heartbeat", "reason"),
        [
            (
                line.position,
                line.status,
                line.sent_count,
                line.failed_count,
                line.unknown_count,
                line.suppressed_count,
                line.last_sent_at,
                line.next_run_at,
                _age(line.heartbeat_at, now),
                line.reason,
            )
            for line in lines
        ],
        empty="",
    )
    if unknown:
        print(
            f"\n{unknown} contact(s) may or may not have received the campaign (a worker stopped mid-send);"
            " see 'campaigns campaign resend-unknown --help'"
        )


def _blacklisted_now(conn: psycopg.Connection, campaign: campaign_sql.CampaignRow) -> int:
    """Its contacts blacklisted today (suppressed, or unsubscribed, bounced, complained since)."""
    if campaign.imported_at is None or not contact_sql.contact_table_exists(conn, campaign.id):
        return campaign.blacklisted_contacts
    return contact_sql.count_blacklisted_now(conn, campaign.id)
