"""SQL of tracking: a campaign's link table, the tracking events and one-click unsubscribes."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from campaign_pipelines.store.contacts import contact_table, outcome_table


def save_links(conn: psycopg.Connection, campaign_id: int, urls: list[str]) -> None:
    """Store the campaign's links once (idempotent: a relaunch keeps the numbering)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO campaign_links (campaign_id, idx, url) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            [(campaign_id, idx, url) for idx, url in enumerate(urls)],
        )


def links_of(conn: psycopg.Connection, campaign_id: int) -> list[str]:
    rows = conn.execute("SELECT url FROM campaign_links WHERE campaign_id = %s ORDER BY idx", (campaign_id,))
    return [row[0] for row in rows]


def link_url(conn: psycopg.Connection, campaign_id: int, idx: int) -> str | None:
    row = conn.execute(
        "SELECT url FROM campaign_links WHERE campaign_id = %s AND idx = %s", (campaign_id, idx)
    ).fetchone()
    return row[0] if row else None


# tracking_events.kind
OPEN, CLICK, UNSUBSCRIBE = 1, 2, 3
# tracking_events.flag of a person's open or click; every other flag is a machine's.
HUMAN_FLAG = 0

EVENT_COLUMNS = ("campaign_id", "contact_id", "kind", "link_idx", "flag", "occurred_at", "ip", "user_agent")
_EVENT_COLUMNS = ", ".join(EVENT_COLUMNS)
_COPY_EVENTS = f"COPY tracking_events ({_EVENT_COLUMNS}) FROM STDIN"


def copy_events(conn: psycopg.Connection, data: bytes) -> None:
    """Write events already in COPY text format, one per line in the order of `EVENT_COLUMNS`.

    One COPY in autocommit: the whole batch is written or nothing is.
    """
    with conn.cursor() as cur, cur.copy(_COPY_EVENTS) as copy:
        copy.write(data)


def campaigns_sending_since(conn: psycopg.Connection, campaign_ids: Collection[int], since: datetime) -> set[int]:
    """The campaigns among these with a line that sent something at or after `since` (last_sent_at)."""
    rows = conn.execute(
        "SELECT DISTINCT campaign_id FROM campaign_channels WHERE campaign_id = ANY(%s) AND last_sent_at >= %s",
        (list(campaign_ids), since),
    )
    return {row[0] for row in rows}


def send_times(conn: psycopg.Connection, campaign_id: int, contact_ids: Collection[int]) -> dict[int, datetime]:
    """When each of these contacts' send was recorded; contacts never sent are left out."""
    rows = conn.execute(
        sql.SQL("SELECT contact_id, at FROM {} WHERE contact_id = ANY(%s)").format(outcome_table(campaign_id)),
        (list(contact_ids),),
    )
    return dict(rows.fetchall())


async def link_table(conn: psycopg.AsyncConnection, campaign_id: int) -> dict[int, str]:
    """The campaign's links by number."""
    cur = await conn.execute("SELECT idx, url FROM campaign_links WHERE campaign_id = %s", (campaign_id,))
    return dict(await cur.fetchall())


async def unsubscribe(
    conn: psycopg.AsyncConnection,
    campaign_id: int,
    contact_id: int,
    *,
    flag: int,
    ip: str | None,
    user_agent: str | None,
) -> bool:
    """Blacklist the contact's email for every future campaign and record the unsubscribe, in one statement.

    Idempotent: the blacklist keeps its first entry, and a contact's unsubscribe from a campaign is
    recorded once. False when the campaign has no such contact.
    """
    cur = await conn.execute(
        sql.SQL(
            "WITH contact AS (SELECT email FROM {contacts} WHERE id = %(contact)s),"
            " listed AS ("
            " INSERT INTO blacklist (email, reason, source)"
            " SELECT email, %(reason)s, 'unsubscribe' FROM contact ON CONFLICT DO NOTHING),"
            " recorded AS ("
            f" INSERT INTO tracking_events ({_EVENT_COLUMNS})"
            " SELECT %(campaign)s, %(contact)s, {kind}, NULL, %(flag)s, now(), %(ip)s::inet, %(user_agent)s::text"
            " FROM contact"
            " WHERE NOT EXISTS (SELECT 1 FROM tracking_events"
            " WHERE campaign_id = %(campaign)s AND contact_id = %(contact)s AND kind = {kind}))"
            " SELECT count(*) FROM contact"
        ).format(contacts=contact_table(campaign_id), kind=sql.Literal(UNSUBSCRIBE)),
        {
            "campaign": campaign_id,
            "contact": contact_id,
            "reason": f"unsubscribed from campaign {campaign_id}",
            "flag": flag,
            "ip": ip,
            "user_agent": user_agent,
        },
    )
    row = await cur.fetchone()
    return bool(row and row[0])


@dataclass(frozen=True)
class Engagement:
    """Unique contacts who opened or clicked a campaign: by a person (human) and by anyone (raw,
    machines included: Apple MPP, security scanners, prefetches)."""

    human_opens: int = 0
    all_opens: int = 0
    human_clicks: int = 0
    all_clicks: int = 0


def engagement_of(conn: psycopg.Connection, campaign_ids: Collection[int]) -> dict[int, Engagement]:
    """Engagement of each of these campaigns (one pass over their events; campaigns without any are left out)."""
    rows = conn.execute(
        "SELECT campaign_id,"
        " count(DISTINCT contact_id) FILTER (WHERE kind = %(open)s AND flag = %(human)s),"
        " count(DISTINCT contact_id) FILTER (WHERE kind = %(open)s),"
        " count(DISTINCT contact_id) FILTER (WHERE kind = %(click)s AND flag = %(human)s),"
        " count(DISTINCT contact_id) FILTER (WHERE kind = %(click)s)"
        " FROM tracking_events WHERE campaign_id = ANY(%(ids)s) AND kind IN (%(open)s, %(click)s)"
        " GROUP BY campaign_id",
        {"ids": list(campaign_ids), "open": OPEN, "click": CLICK, "human": HUMAN_FLAG},
    )
    return {int(row[0]): Engagement(*(int(count) for count in row[1:])) for row in rows}
