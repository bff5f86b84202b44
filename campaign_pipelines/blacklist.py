"""The global blacklist: addresses no campaign sends to again, and the provider events that add to it.

Called by the `campaigns blacklist` commands (list, add, remove, export) and by the tracking
app's webhook routes (tracking_app.webhooks), which hand over the delivery events they parsed.
Imports count blacklisted contacts out and the send loop skips them when it claims contacts
(store.sending), so a new entry takes effect from the next batch of every campaign.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC
from typing import TextIO

import psycopg

from campaign_pipelines.contacts.records import normalize_email
from campaign_pipelines.errors import NotFoundError, ValidationError
from campaign_pipelines.providers.webhook import (
    COMPLAINT,
    DELIVERED,
    EVENTS,
    HARD_BOUNCE,
    SOFT_BOUNCE,
    UNSUBSCRIBE,
    DeliveryEvent,
)
from campaign_pipelines.send_ids import parse_send_id
from campaign_pipelines.store import blacklist as blacklist_sql
from campaign_pipelines.store.blacklist import SOURCES, BlacklistEntry

__all__ = [
    "COMPLAINT",
    "DEFAULT_SOFT_BOUNCE_LIMIT",
    "DELIVERED",
    "EVENTS",
    "HARD_BOUNCE",
    "SOFT_BOUNCE",
    "SOURCES",
    "UNSUBSCRIBE",
    "BlacklistEntry",
    "DeliveryEvent",
    "Recorded",
    "add",
    "entries",
    "export_csv",
    "record_delivery_events",
    "remove",
    "soft_bounce_limit",
]

# Events that blacklist the address at once, and the blacklist source each one writes.
_AT_ONCE = {HARD_BOUNCE: "hard_bounce", COMPLAINT: "complaint", UNSUBSCRIBE: "unsubscribe"}
_WORDS = {HARD_BOUNCE: "hard bounce", COMPLAINT: "spam complaint", UNSUBSCRIBE: "unsubscribed"}

DEFAULT_SOFT_BOUNCE_LIMIT = 3
SOFT_BOUNCE_LIMIT_ENV = "SOFT_BOUNCE_LIMIT"
MANUAL_REASON = "added by hand"
# A provider's words are kept, not a whole bounce message.
_MAX_DETAIL_CHARS = 1_000
_EXPORT_HEADER = ("email", "reason", "source", "created_at")


@dataclass(frozen=True)
class Recorded:
    # Events stored by this call; `duplicates` were stored already (a provider's retry, a replay)
    # or repeated within the call, and have no effect.
    events: int
    duplicates: int
    # Events matched to one of our sends (campaign and contact); the others are kept by address alone.
    matched: int
    # (email, source) of the addresses this call added to the blacklist.
    blacklisted: list[tuple[str, str]]


def soft_bounce_limit(environ: Mapping[str, str] = os.environ) -> int:
    """SOFT_BOUNCE_LIMIT: an address is blacklisted at its Nth soft bounce (default 3)."""
    text = environ.get(SOFT_BOUNCE_LIMIT_ENV, "").strip()
    if not text:
        return DEFAULT_SOFT_BOUNCE_LIMIT
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise ValidationError(
            SOFT_BOUNCE_LIMIT_ENV, [f"{text!r} is not a whole number of soft bounces, at least 1 (default 3)"]
        )
    return int(text)


def record_delivery_events(
    conn: psycopg.Connection, events: Sequence[DeliveryEvent], *, soft_bounce_limit: int
) -> Recorded:
    """Store the events (one INSERT) and blacklist what they call for, in one transaction.

    An event already stored (same provider and event id) is not stored again and has no effect:
    a provider's retry of a hard bounce does not blacklist again an address taken off by hand,
    and copies of one soft bounce count once. Each event is matched to our send by its send id,
    when that send's contact has the event's address; otherwise it is kept by address alone.
    Hard bounces, complaints and unsubscribes blacklist the address at once; a soft bounce does
    when the address reaches `soft_bounce_limit` distinct ones. An address already blacklisted
    keeps its first entry. Inside a caller's transaction this is a savepoint of it.
    """
    # Copies within the call are dropped here: what the INSERT stored names an event once, whatever its copies.
    firsts: dict[tuple[str, str], DeliveryEvent] = {}
    for event in events:
        firsts.setdefault((event.provider, event.event_id), event)
    with conn.transaction():
        rows = _match_sends(conn, list(firsts.values()))
        stored = blacklist_sql.insert_delivery_events(conn, rows)
        rows = [row for row in rows if (row.provider, row.event_id) in stored]
        new = _new_entries(rows, soft_bounce_limit)
        blacklist_sql.lock_soft_bounce_counts(conn, (e.email for e in new if e.min_soft_bounces is not None))
        added = blacklist_sql.add_many(conn, new)
    matched = sum(1 for row in rows if row.contact_id is not None)
    return Recorded(events=len(rows), duplicates=len(events) - len(rows), matched=matched, blacklisted=added)


def _address(raw: str) -> str:
    # A provider may report an address our import would have refused; keep it, folded the same way.
    return normalize_email(raw) or raw.strip().lower()


def _detail(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text[:_MAX_DETAIL_CHARS] or None


def _match_sends(conn: psycopg.Connection, events: Sequence[DeliveryEvent]) -> list[blacklist_sql.DeliveryRow]:
    ids = [parse_send_id(event.send_id) for event in events]
    wanted: dict[int, set[int]] = {}
    for pair in ids:
        if pair is not None:
            wanted.setdefault(pair[0], set()).add(pair[1])
    # A send id names a campaign's contact; it is ours only if that contact has the event's address
    # (a reconfigured campaign renumbers its contacts, another sender may use the same field).
    known = {
        (campaign_id, contact_id): email
        for campaign_id, contact_ids in wanted.items()
        for contact_id, email in blacklist_sql.contact_emails(conn, campaign_id, contact_ids).items()
    }
    rows = []
    for event, pair in zip(events, ids, strict=True):
        email = _address(event.email)
        campaign_id, contact_id = pair if pair is not None and known.get(pair) == email else (None, None)
        rows.append(
            blacklist_sql.DeliveryRow(
                provider=event.provider,
                event_id=event.event_id,
                campaign_id=campaign_id,
                contact_id=contact_id,
                email=email,
                event=event.event,
                detail=_detail(event.detail),
                occurred_at=event.occurred_at,
            )
        )
    return rows


def _new_entries(rows: Iterable[blacklist_sql.DeliveryRow], soft_bounce_limit: int) -> list[blacklist_sql.NewEntry]:
    """One candidate entry per address: the first event that blacklists at once, else its last soft bounce."""
    by_email: dict[str, blacklist_sql.NewEntry] = {}
    for row in rows:
        current = by_email.get(row.email)
        if row.event in _AT_ONCE:
            if current is None or current.min_soft_bounces is not None:
                reason = f"{row.provider}: {row.detail or _WORDS[row.event]}"
                by_email[row.email] = blacklist_sql.NewEntry(row.email, reason, _AT_ONCE[row.event])
        elif row.event == SOFT_BOUNCE and (current is None or current.min_soft_bounces is not None):
            reason = f"{row.provider}: {soft_bounce_limit} soft bounces, the last: {row.detail or 'no reason given'}"
            by_email[row.email] = blacklist_sql.NewEntry(row.email, reason, "soft_bounce", soft_bounce_limit)
    return list(by_email.values())


# --- the operator's commands ----------------------------------------------------------------


def _valid_address(email: str) -> str:
    address = normalize_email(email)
    if address is None:
        raise ValidationError(f"address {email!r}", ["it is not an email address"])
    return address


def add(conn: psycopg.Connection, email: str, reason: str | None = None) -> tuple[BlacklistEntry, bool]:
    """Blacklist an address by hand (source 'manual'): (its entry, whether it is new).

    An address already blacklisted keeps its entry: its source says why it is there.
    """
    address = _valid_address(email)
    text = " ".join((reason or "").split()) or MANUAL_REASON
    created = blacklist_sql.add(conn, address, text, "manual")
    found = blacklist_sql.entry(conn, address)
    assert found is not None
    return found, created


def remove(conn: psycopg.Connection, email: str) -> BlacklistEntry:
    """Take an address off the blacklist; campaigns may send to it again. Returns the entry removed."""
    # Providers may have reported an address our syntax refuses: it can still be removed as written.
    address = _address(email)
    with conn.transaction():
        found = blacklist_sql.entry(conn, address)
        if found is None or not blacklist_sql.remove(conn, address):
            raise NotFoundError(f"{address} is not blacklisted")
    return found


def entries(conn: psycopg.Connection, *, source: str | None = None, limit: int = 100) -> list[BlacklistEntry]:
    """The newest entries first, of one source or all."""
    problems = []
    if source is not None and source not in SOURCES:
        problems.append(f"unknown source {source!r} (expected one of {', '.join(SOURCES)})")
    if limit < 1:
        problems.append(f"limit must be at least 1, got {limit}")
    if problems:
        raise ValidationError("blacklist listing", problems)
    return blacklist_sql.entries(conn, source=source, limit=limit)


def export_csv(conn: psycopg.Connection, out: TextIO) -> int:
    """Write the whole blacklist as CSV (email,reason,source,created_at), by email; returns the rows written.

    Rows stream from a server-side cursor straight to `out`: memory stays flat for millions of
    entries, and the export is one consistent snapshot.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_EXPORT_HEADER)
    count = 0
    # The cursor is closed before its transaction ends, even when writing fails half-way.
    with conn.transaction(), closing(blacklist_sql.stream_entries(conn)) as rows:
        for email, reason, source, created_at in rows:
            writer.writerow((email, reason, source, created_at.astimezone(UTC).isoformat()))
            count += 1
    return count
