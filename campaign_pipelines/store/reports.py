"""SQL of campaign reports on the PostgreSQL side: the campaign, its lines, and what the report sensor picks.

Called by campaign_pipelines.reports (with store.outcomes, DuckDB's part: the per-contact funnel)
and by the report sensor. A report runs while lines send and the tracking app writes: every query
here only reads, takes no explicit lock and runs inside `report_snapshot`, one short READ ONLY
transaction that waits on no lock for more than a few seconds. Table names are built only from
the campaign's integer id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from campaign_pipelines.statuses import CampaignStatus
from campaign_pipelines.store.contacts import contact_table, outcome_table

# A report never queues behind a DDL (the primary key built at launch) for long: it fails and the next one runs.
_LOCK_TIMEOUT = "5s"
# Statuses whose campaigns are reported on: while they run, and for a while after they stop.
REPORTED_AFTER = (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED, CampaignStatus.PAUSED)


@contextmanager
def report_snapshot(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """One consistent, read-only view of the database for every query of a report.

    REPEATABLE READ READ ONLY: the counts of one report agree with each other, and PostgreSQL
    refuses any write. It takes only the ACCESS SHARE locks every SELECT takes, which block no
    INSERT or UPDATE of the send loop or the tracking app.
    """
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(_LOCK_TIMEOUT)))
        yield conn


@dataclass(frozen=True)
class CampaignFacts:
    id: int
    name: str
    status: str
    error: str | None
    nbre_contacts: int
    imported_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


def campaign_facts(conn: psycopg.Connection, campaign_id: int) -> CampaignFacts | None:
    with conn.cursor(row_factory=class_row(CampaignFacts)) as cur:
        return cur.execute(
            "SELECT id, name, status, error, nbre_contacts, imported_at, started_at, finished_at"
            " FROM campaigns WHERE id = %s",
            (campaign_id,),
        ).fetchone()


@dataclass(frozen=True)
class LineLabel:
    id: int
    position: int
    sender_name: str
    sender_email: str
    server_name: str


def line_labels(conn: psycopg.Connection, campaign_id: int) -> list[LineLabel]:
    """The campaign's lines in the CLI's order (by position)."""
    with conn.cursor(row_factory=class_row(LineLabel)) as cur:
        return cur.execute(
            "SELECT l.id, l.position, l.sender_name, l.sender_email, s.name AS server_name"
            " FROM campaign_channels l JOIN servers s ON s.id = l.server_id"
            " WHERE l.campaign_id = %s ORDER BY l.position",
            (campaign_id,),
        ).fetchall()


def pending_blacklisted(conn: psycopg.Connection, campaign_id: int) -> int:
    """Contacts still to send whose address is blacklisted: the send loop will suppress them.

    One probe of the contacts' email index per blacklist entry, as at import.
    """
    row = conn.execute(
        sql.SQL(
            "SELECT count(*) FROM blacklist b WHERE EXISTS (SELECT 1 FROM {} c WHERE c.email = b.email"
            " AND NOT EXISTS (SELECT 1 FROM {} o WHERE o.contact_id = c.id))"
        ).format(contact_table(campaign_id), outcome_table(campaign_id)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def campaigns_to_report(conn: psycopg.Connection, *, within_days: int, limit: int) -> list[tuple[int, str]]:
    """(id, status) of the campaigns running now, and of those stopped (completed, cancelled, paused)
    at most `within_days` ago, oldest first."""
    rows = conn.execute(
        "SELECT id, status FROM campaigns"
        " WHERE status = %s"
        " OR (status = ANY(%s) AND coalesce(finished_at, updated_at) >= now() - make_interval(days => %s))"
        " ORDER BY id LIMIT %s",
        (CampaignStatus.RUNNING, list(REPORTED_AFTER), within_days, limit),
    )
    return [(int(r[0]), str(r[1])) for r in rows]
