"""SQL of tracking: a campaign's link table."""

from __future__ import annotations

import psycopg


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
