"""SQL of the global blacklist and of what feeds it: provider delivery events and the one-time webhook tokens.

campaign_pipelines.blacklist calls these (the `campaigns blacklist` commands, the webhook effects);
tracking_app.webhooks calls `claim_webhook_token`. A contact table's name is built only from
its campaign's integer id (store.contacts.contact_table).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from campaign_pipelines.store.contacts import contact_table, contact_table_exists

# Where an entry came from; the schema's default is 'manual'.
SOURCES = ("manual", "unsubscribe", "complaint", "hard_bounce", "soft_bounce")
# pg_advisory_xact_lock(class, hashtext(email)) serialises the soft-bounce count of one address;
# the two-integer lock space never meets the single-bigint keys of imports and migrations.
_SOFT_BOUNCE_LOCK_CLASS = 4_004
# Rows fetched per round trip by the export's server-side cursor.
_EXPORT_ROWS_PER_FETCH = 5_000


@dataclass(frozen=True)
class BlacklistEntry:
    email: str
    reason: str
    source: str
    created_at: datetime


@dataclass(frozen=True)
class DeliveryRow:
    """One row of delivery_events; campaign_id and contact_id are None when no send matched.

    (provider, event_id) is unique: a second row of the same event is never stored.
    """

    provider: str
    event_id: str
    campaign_id: int | None
    contact_id: int | None
    email: str
    event: str
    detail: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class NewEntry:
    """A blacklist row to add; with `min_soft_bounces`, only once the address has that many soft bounces."""

    email: str
    reason: str
    source: str
    min_soft_bounces: int | None = None


def entry(conn: psycopg.Connection, email: str) -> BlacklistEntry | None:
    with conn.cursor(row_factory=class_row(BlacklistEntry)) as cur:
        return cur.execute(
            "SELECT email, reason, source, created_at FROM blacklist WHERE email = %s", (email,)
        ).fetchone()


def add(conn: psycopg.Connection, email: str, reason: str, source: str) -> bool:
    """True when added, False when the address was already there (its entry is kept as it was)."""
    row = conn.execute(
        "INSERT INTO blacklist (email, reason, source) VALUES (%s, %s, %s) ON CONFLICT (email) DO NOTHING"
        " RETURNING email",
        (email, reason, source),
    ).fetchone()
    return row is not None


def remove(conn: psycopg.Connection, email: str) -> bool:
    return conn.execute("DELETE FROM blacklist WHERE email = %s", (email,)).rowcount == 1


def entries(conn: psycopg.Connection, *, source: str | None, limit: int) -> list[BlacklistEntry]:
    """The newest entries first, of one source or all."""
    with conn.cursor(row_factory=class_row(BlacklistEntry)) as cur:
        return cur.execute(
            "SELECT email, reason, source, created_at FROM blacklist"
            " WHERE %(source)s::text IS NULL OR source = %(source)s"
            " ORDER BY created_at DESC, email LIMIT %(limit)s",
            {"source": source, "limit": limit},
        ).fetchall()


def stream_entries(conn: psycopg.Connection) -> Iterator[tuple[str, str, str, datetime]]:
    """Every entry as (email, reason, source, created_at), by email, through a server-side cursor.

    Memory stays flat whatever the size of the blacklist. The caller holds a transaction
    open until the iteration ends (a server-side cursor lives in one).
    """
    with conn.cursor(name="blacklist_export") as cur:
        cur.itersize = _EXPORT_ROWS_PER_FETCH
        cur.execute("SELECT email, reason, source, created_at FROM blacklist ORDER BY email")
        yield from cur


def contact_emails(conn: psycopg.Connection, campaign_id: int, contact_ids: Iterable[int]) -> dict[int, str]:
    """The emails of these contacts of the campaign; empty when its contact table does not exist (any more)."""
    if not contact_table_exists(conn, campaign_id):
        return {}
    rows = conn.execute(
        sql.SQL("SELECT id, email FROM {} WHERE id = ANY(%s)").format(contact_table(campaign_id)),
        (list(contact_ids),),
    )
    return {int(contact_id): email for contact_id, email in rows}


def _arrays(row_type: type, rows: Sequence[object]) -> tuple[list, ...]:
    """One array per field of `row_type`, in its order: the parameters of an INSERT from unnest(...)."""
    return tuple([getattr(row, field.name) for row in rows] for field in fields(row_type))


def insert_delivery_events(conn: psycopg.Connection, rows: Sequence[DeliveryRow]) -> set[tuple[str, str]]:
    """All the rows in one INSERT, whatever their number; returns the (provider, event_id) of those stored.

    A row whose event is already stored is skipped (ON CONFLICT DO NOTHING on the unique index),
    also when that row is not committed yet: this INSERT then waits for its transaction. Rows go
    in (provider, event_id) order, so two requests bringing some of the same events in another
    order never wait for each other in a circle.
    """
    if not rows:
        return set()
    stored = conn.execute(
        "INSERT INTO delivery_events (provider, event_id, campaign_id, contact_id, email, event, detail, occurred_at)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::text[],"
        " %s::text[], %s::timestamptz[]) AS u(provider, event_id, campaign_id, contact_id, email, event, detail,"
        " occurred_at)"
        " ORDER BY u.provider, u.event_id"
        " ON CONFLICT (provider, event_id) DO NOTHING"
        " RETURNING provider, event_id",
        _arrays(DeliveryRow, rows),
    ).fetchall()
    return {(provider, event_id) for provider, event_id in stored}


def lock_soft_bounce_counts(conn: psycopg.Connection, emails: Iterable[str]) -> None:
    """Until the transaction ends, no other one counts these addresses' soft bounces.

    Two requests each bringing one more soft bounce then cannot both count one short of the
    limit. Locks are taken in address order, so two requests never wait for each other.
    """
    ordered = sorted(set(emails))
    if ordered:
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(e)) FROM (SELECT unnest(%s::text[]) AS e ORDER BY 1) AS a",
            (_SOFT_BOUNCE_LOCK_CLASS, ordered),
        )


def add_many(conn: psycopg.Connection, new: Sequence[NewEntry]) -> list[tuple[str, str]]:
    """Add the entries that are due in one INSERT; returns the (email, source) pairs actually added.

    An entry with `min_soft_bounces` is due once delivery_events holds that many soft bounces
    (one row per event) for its address (the partial index on soft bounces answers this). Rows go in address
    order, so concurrent requests adding the same addresses never deadlock.
    """
    if not new:
        return []
    rows = conn.execute(
        "INSERT INTO blacklist (email, reason, source)"
        " SELECT u.email, u.reason, u.source"
        " FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[]) AS u(email, reason, source, min_soft_bounces)"
        " WHERE u.min_soft_bounces IS NULL"
        "  OR (SELECT count(*) FROM delivery_events d WHERE d.event = 'soft_bounce' AND d.email = u.email)"
        "   >= u.min_soft_bounces"
        " ORDER BY u.email"
        " ON CONFLICT (email) DO NOTHING"
        " RETURNING email, source",
        _arrays(NewEntry, new),
    ).fetchall()
    return sorted((email, source) for email, source in rows)


def claim_webhook_token(conn: psycopg.Connection, token: str) -> bool:
    """True the first time a token is seen; False for a replay (also while its first use is uncommitted)."""
    row = conn.execute(
        "INSERT INTO webhook_tokens (token) VALUES (%s) ON CONFLICT DO NOTHING RETURNING token", (token,)
    ).fetchone()
    return row is not None


def forget_webhook_tokens(conn: psycopg.Connection, older_than_s: float) -> int:
    """Drop the tokens seen more than `older_than_s` ago; returns how many."""
    return conn.execute(
        "DELETE FROM webhook_tokens WHERE seen_at < now() - make_interval(secs => %s)", (older_than_s,)
    ).rowcount
