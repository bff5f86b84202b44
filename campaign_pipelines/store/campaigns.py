"""SQL of campaigns and of saving their sending lines (store.lines reads the lines back).

Lines are saved in `campaign_channels`, the table's first name (store.lines says why it stays).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from campaign_pipelines.statuses import CONFIGURE, IMPORT_FAILED, IMPORTED, START_IMPORT, CampaignStatus

# Advisory lock keys of imports: one per campaign, away from the migration lock.
_IMPORT_LOCK_BASE = 1 << 40


@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    subject: str
    template_id: int
    status: str
    contact_files: list[str]
    nbre_contacts: int
    blacklisted_contacts: int
    sent_count: int
    error: str | None
    configured_at: datetime | None
    imported_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class NewLine:
    """A checked line, ready to insert: its server resolved to an id, its sender email
    normalised, its start date parsed."""

    sender_name: str
    sender_email: str
    server_id: int
    send_frequency_minutes: float | None
    max_daily_sends: int | None
    scheduled_at: datetime | None


_CAMPAIGN_COLUMNS = (
    "id, name, subject, template_id, status, contact_files, nbre_contacts, blacklisted_contacts,"
    " sent_count, error, configured_at, imported_at, created_at"
)


def insert_campaign(conn: psycopg.Connection, *, name: str, subject: str, template_id: int, html: str) -> int:
    row = conn.execute(
        "INSERT INTO campaigns (name, subject, template_id, template_html) VALUES (%s, %s, %s, %s) RETURNING id",
        (name, subject, template_id, html),
    ).fetchone()
    assert row is not None
    return int(row[0])


def campaign_by_id(conn: psycopg.Connection, campaign_id: int, *, for_update: bool = False) -> CampaignRow | None:
    lock = " FOR UPDATE" if for_update else ""
    with conn.cursor(row_factory=class_row(CampaignRow)) as cur:
        return cur.execute(f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE id = %s{lock}", (campaign_id,)).fetchone()


def list_campaigns(conn: psycopg.Connection, limit: int = 100) -> list[CampaignRow]:
    with conn.cursor(row_factory=class_row(CampaignRow)) as cur:
        return cur.execute(f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns ORDER BY id DESC LIMIT %s", (limit,)).fetchall()


def newest_draft_id(conn: psycopg.Connection) -> int | None:
    row = conn.execute("SELECT max(id) FROM campaigns WHERE status = %s", (CampaignStatus.DRAFT,)).fetchone()
    return row[0] if row else None


def save_configuration(
    conn: psycopg.Connection,
    campaign_id: int,
    *,
    contact_files: list[str],
    lines: list[NewLine],
    template_html: str,
) -> None:
    """Replace the campaign's lines and files and mark it scheduled (caller holds the row lock)."""
    conn.execute("DELETE FROM campaign_channels WHERE campaign_id = %s", (campaign_id,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO campaign_channels (campaign_id, position, sender_name, sender_email, server_id,"
            " send_frequency_minutes, max_daily_sends, scheduled_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    campaign_id,
                    position,
                    line.sender_name,
                    line.sender_email,
                    line.server_id,
                    line.send_frequency_minutes,
                    line.max_daily_sends,
                    line.scheduled_at,
                )
                for position, line in enumerate(lines, start=1)
            ],
        )
    conn.execute(
        "UPDATE campaigns SET contact_files = %s, template_html = %s, status = %s, error = NULL,"
        " configured_at = clock_timestamp(), updated_at = now() WHERE id = %s",
        (contact_files, template_html, CONFIGURE.target, campaign_id),
    )


def campaigns_awaiting_import(conn: psycopg.Connection, limit: int) -> list[tuple[int, datetime]]:
    """(id, configured_at) of scheduled campaigns whose configuration is newer than their import."""
    rows = conn.execute(
        "SELECT id, configured_at FROM campaigns WHERE status = %s AND configured_at IS NOT NULL"
        " AND (imported_at IS NULL OR imported_at < configured_at) ORDER BY id LIMIT %s",
        (CampaignStatus.SCHEDULED, limit),
    )
    return [(int(r[0]), r[1]) for r in rows]


def mark_processing(conn: psycopg.Connection, campaign_id: int) -> None:
    conn.execute(
        "UPDATE campaigns SET status = %s, error = NULL, updated_at = now() WHERE id = %s",
        (START_IMPORT.target, campaign_id),
    )


def mark_imported(conn: psycopg.Connection, campaign_id: int, *, nbre_contacts: int, blacklisted: int) -> None:
    conn.execute(
        "UPDATE campaigns SET status = %s, nbre_contacts = %s, blacklisted_contacts = %s, error = NULL,"
        " imported_at = clock_timestamp(), updated_at = now() WHERE id = %s",
        (IMPORTED.target, nbre_contacts, blacklisted, campaign_id),
    )


def mark_failed(conn: psycopg.Connection, campaign_id: int, error: str) -> None:
    conn.execute(
        "UPDATE campaigns SET status = %s, error = %s, updated_at = now() WHERE id = %s",
        (IMPORT_FAILED.target, error, campaign_id),
    )


def mark_interrupted(conn: psycopg.Connection, campaign_id: int, error: str) -> None:
    """The import stopped for a reason outside the files: still `processing`, the sensor retries."""
    conn.execute(
        "UPDATE campaigns SET error = %s, updated_at = now() WHERE id = %s AND status = %s",
        (error, campaign_id, CampaignStatus.PROCESSING),
    )


def interrupted_imports(conn: psycopg.Connection, limit: int) -> list[tuple[int, datetime]]:
    """(id, when its import started) of campaigns left `processing` by an import that died.

    A live import holds the campaign's session lock from before it marks it processing until it
    ends, so `processing` without the lock held means the process is gone.
    """
    rows = conn.execute(
        "SELECT id, updated_at FROM campaigns c WHERE status = %s AND NOT EXISTS ("
        " SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND ((l.classid::bigint << 32) | l.objid::bigint) = %s + c.id)"
        " ORDER BY id LIMIT %s",
        (CampaignStatus.PROCESSING, _IMPORT_LOCK_BASE, limit),
    )
    return [(int(r[0]), r[1]) for r in rows]


def try_lock_import(conn: psycopg.Connection, campaign_id: int) -> bool:
    """Session lock so two imports of one campaign never run at once."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_IMPORT_LOCK_BASE + campaign_id,)).fetchone()
    return bool(row and row[0])


def template_snapshot(conn: psycopg.Connection, campaign_id: int) -> str:
    row = conn.execute("SELECT template_html FROM campaigns WHERE id = %s", (campaign_id,)).fetchone()
    assert row is not None, f"campaign {campaign_id} is missing"
    return str(row[0])


def set_status(
    conn: psycopg.Connection, campaign_id: int, status: CampaignStatus, *, started: bool = False, finished: bool = False
) -> None:
    """A move of the campaign state machine (statuses.py); the caller checked it is allowed."""
    conn.execute(
        "UPDATE campaigns SET status = %s, updated_at = now(),"
        " started_at = CASE WHEN %s THEN coalesce(started_at, now()) ELSE started_at END,"
        " finished_at = CASE WHEN %s THEN now() ELSE finished_at END WHERE id = %s",
        (status, started, finished, campaign_id),
    )


def campaigns_ready_to_send(conn: psycopg.Connection, limit: int) -> list[tuple[int, datetime]]:
    """(id, configured_at) of scheduled, fully imported campaigns whose earliest start date has come."""
    rows = conn.execute(
        "SELECT c.id, c.configured_at FROM campaigns c"
        " WHERE c.status = %s AND c.imported_at >= c.configured_at"
        " AND (SELECT min(coalesce(l.scheduled_at, '-infinity')) FROM campaign_channels l"
        "      WHERE l.campaign_id = c.id) <= now()"
        " ORDER BY c.id LIMIT %s",
        (CampaignStatus.SCHEDULED, limit),
    )
    return [(int(r[0]), r[1]) for r in rows]
