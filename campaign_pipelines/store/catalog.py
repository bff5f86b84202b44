"""SQL of sending servers and templates."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from campaign_pipelines.statuses import CampaignStatus


@dataclass(frozen=True)
class ServerFields:
    """What a user sets on a server (its name aside)."""

    provider: str
    url: str
    api_key_ref: str
    active: bool
    daily_cap: int | None
    timezone: str
    batch_size: int | None
    calls_in_flight: int | None


@dataclass(frozen=True)
class ServerRow(ServerFields):
    """A stored server: what the user set, and its id, name and last change."""

    id: int
    name: str
    updated_at: datetime


@dataclass(frozen=True)
class TemplateRow:
    id: int
    name: str
    html: str
    updated_at: datetime


_SERVER_COLUMNS = (
    "id, name, provider, url, api_key_ref, active, daily_cap, timezone, batch_size, calls_in_flight, updated_at"
)


def insert_server(conn: psycopg.Connection, name: str, server: ServerFields) -> int:
    row = conn.execute(
        "INSERT INTO servers (name, provider, url, api_key_ref, active, daily_cap, timezone, batch_size,"
        " calls_in_flight) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (name, *_values(server)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def update_server(conn: psycopg.Connection, server_id: int, server: ServerFields) -> None:
    conn.execute(
        "UPDATE servers SET provider = %s, url = %s, api_key_ref = %s, active = %s, daily_cap = %s, timezone = %s,"
        " batch_size = %s, calls_in_flight = %s, updated_at = now() WHERE id = %s",
        (*_values(server), server_id),
    )


def _values(server: ServerFields) -> tuple:
    """In the order of ServerFields, as the INSERT and UPDATE name them."""
    return tuple(getattr(server, field.name) for field in fields(ServerFields))


def set_server_active(conn: psycopg.Connection, server_id: int, active: bool) -> None:
    conn.execute("UPDATE servers SET active = %s, updated_at = now() WHERE id = %s", (active, server_id))


def server_by_name(conn: psycopg.Connection, name: str) -> ServerRow | None:
    with conn.cursor(row_factory=class_row(ServerRow)) as cur:
        return cur.execute(f"SELECT {_SERVER_COLUMNS} FROM servers WHERE name = %s", (name,)).fetchone()


def list_servers(conn: psycopg.Connection) -> list[ServerRow]:
    with conn.cursor(row_factory=class_row(ServerRow)) as cur:
        return cur.execute(f"SELECT {_SERVER_COLUMNS} FROM servers ORDER BY name").fetchall()


def campaigns_using_server(conn: psycopg.Connection, server_id: int) -> list[int]:
    """Campaigns not finished yet that have a line on this server."""
    rows = conn.execute(
        "SELECT DISTINCT c.id FROM campaign_channels l JOIN campaigns c ON c.id = l.campaign_id"
        " WHERE l.server_id = %s AND c.status <> ALL(%s) ORDER BY c.id",
        (server_id, [CampaignStatus.COMPLETED, CampaignStatus.CANCELLED]),
    )
    return [int(r[0]) for r in rows]


def upsert_template(conn: psycopg.Connection, name: str, html: str) -> tuple[int, bool]:
    """(template id, True when it was created rather than updated)."""
    row = conn.execute(
        "INSERT INTO templates (name, html) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET html = EXCLUDED.html, updated_at = now()"
        " RETURNING id, (xmax = 0)",
        (name, html),
    ).fetchone()
    assert row is not None
    return int(row[0]), bool(row[1])


def template_by_name(conn: psycopg.Connection, name: str) -> TemplateRow | None:
    with conn.cursor(row_factory=class_row(TemplateRow)) as cur:
        return cur.execute("SELECT id, name, html, updated_at FROM templates WHERE name = %s", (name,)).fetchone()


def list_templates(conn: psycopg.Connection) -> list[TemplateRow]:
    with conn.cursor(row_factory=class_row(TemplateRow)) as cur:
        return cur.execute("SELECT id, name, html, updated_at FROM templates ORDER BY name").fetchall()


def template_by_id(conn: psycopg.Connection, template_id: int) -> TemplateRow:
    with conn.cursor(row_factory=class_row(TemplateRow)) as cur:
        row = cur.execute("SELECT id, name, html, updated_at FROM templates WHERE id = %s", (template_id,)).fetchone()
    assert row is not None, f"template {template_id} referenced by a campaign is missing"
    return row
