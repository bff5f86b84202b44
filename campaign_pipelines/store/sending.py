"""SQL of sending: leasing contacts, recording their outcomes and the progress counters they move.

A contact table is written by its import only. A claim leases contacts (`send_leases`, one row
holding their ids, committed before any request is made): those given back first
(`send_returns`), then the next ones in id order above the campaign's cursor (`send_cursors`),
a range scan of the primary key that costs the same at the billionth contact as at the first.
A contact is in one place at a time: above the cursor, in one lease, given back, or with its
outcome, appended (COPY) to the campaign's outcome table once its call is answered. Each
provider call is noted in `inflight_calls` (committed) before it leaves, so a crash makes
`unknown` only the contacts a request may have reached; the rest of a dead run's leases is
given back (store.recovery).

Every write a send loop makes is fenced by its run owning the line (store.lines.owns): a run
thought dead that wakes up cannot claim, release or record anything once the line is another's:
the contacts it held were settled by the new owner's `recover_line`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import orjson
import psycopg
from psycopg import sql
from psycopg.rows import args_row
from psycopg.types.json import set_json_loads

from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import quotas as quota_sql
from campaign_pipelines.store.contacts import contact_table, outcome_table
from campaign_pipelines.store.lines import owns
from campaign_pipelines.store.quotas import Quota


class ClaimedContact(NamedTuple):
    # A tuple: a claim builds a thousand of these, a frozen dataclass costs 4x more each.
    id: int
    email: str
    attributes: dict
    # RESERVED (leased) or SUPPRESSED (blacklisted: its outcome recorded by the claim).
    send_status: int


class Claim(NamedTuple):
    contacts: list[ClaimedContact]
    # The smallest room its quotas had before this claim (None: no quota), and which quota.
    room: int | None
    tightest: Quota | None
    # The run no longer owns the line: nothing was claimed.
    lost: bool = False
    # The lease holding the claimed contacts to send (None: none to send).
    lease: int | None = None


def open_cursor(conn: psycopg.Connection, campaign_id: int) -> None:
    """The campaign's claim cursor, at its first contact (at launch; idempotent)."""
    conn.execute("INSERT INTO send_cursors (campaign_id) VALUES (%s) ON CONFLICT DO NOTHING", (campaign_id,))


# A claimed contact: RESERVED, or SUPPRESSED when its address is blacklisted.
_CLAIMED = sql.SQL(
    "c.id, c.email, c.attributes,"
    " CASE WHEN EXISTS (SELECT 1 FROM blacklist b WHERE b.email = c.email) THEN {suppressed} ELSE {reserved} END"
).format(suppressed=sql.Literal(ContactStatus.SUPPRESSED), reserved=sql.Literal(ContactStatus.RESERVED))


def _take(conn: psycopg.Connection, campaign_id: int, limit: int) -> list[ClaimedContact]:
    """Up to `limit` contacts off the pool: given-back ones first, then the next ones above the cursor."""
    table = contact_table(campaign_id)
    with conn.cursor(row_factory=args_row(ClaimedContact)) as cur:
        set_json_loads(orjson.loads, cur)
        contacts = cur.execute(
            sql.SQL(
                "WITH picked AS (DELETE FROM send_returns WHERE campaign_id = %(campaign)s AND contact_id IN"
                " (SELECT contact_id FROM send_returns WHERE campaign_id = %(campaign)s ORDER BY contact_id"
                " LIMIT %(limit)s FOR UPDATE SKIP LOCKED) RETURNING contact_id)"
                " SELECT {claimed} FROM {table} c JOIN picked ON picked.contact_id = c.id ORDER BY c.id"
            ).format(claimed=_CLAIMED, table=table),
            {"campaign": campaign_id, "limit": limit},
        ).fetchall()
        if len(contacts) == limit:
            return contacts
        # Claims of a campaign take turns on its cursor; what they read above it is theirs alone.
        row = conn.execute(
            "SELECT last_id FROM send_cursors WHERE campaign_id = %s FOR UPDATE", (campaign_id,)
        ).fetchone()
        if row is None:
            raise LookupError(f"campaign {campaign_id} has no send cursor: it was never launched")
        more = cur.execute(
            sql.SQL(
                # Contacts with an outcome above the cursor exist only in campaigns sent before
                # outcome tables (migration 0010): skipped, never sent twice. Both sides of this
                # anti-join are read from the cursor on (`o.contact_id > …` said twice: the planner
                # does not carry it over), never from the campaign's first contact.
                "SELECT {claimed} FROM {table} c WHERE c.id > %(after)s AND NOT EXISTS"
                " (SELECT 1 FROM {outcomes} o WHERE o.contact_id = c.id AND o.contact_id > %(after)s)"
                " ORDER BY c.id LIMIT %(limit)s"
            ).format(claimed=_CLAIMED, table=table, outcomes=outcome_table(campaign_id)),
            {"after": row[0], "limit": limit - len(contacts)},
        ).fetchall()
        if more:
            conn.execute("UPDATE send_cursors SET last_id = %s WHERE campaign_id = %s", (more[-1].id, campaign_id))
    return contacts + more


def claim(
    conn: psycopg.Connection,
    campaign_id: int,
    line_id: int,
    run_id: str,
    limit: int,
    quotas: Sequence[Quota] = (),
) -> Claim:
    """Lease up to `limit` contacts to send for a line its run `run_id` owns (blacklisted ones
    are recorded suppressed).

    The contacts to send are charged to `quotas` in the same transaction, and no more are
    taken than the room the quotas have left.
    """
    with conn.transaction():
        if not owns(conn, line_id, run_id):
            return Claim([], None, None, lost=True)
        room, tightest = quota_sql.lock_room(conn, quotas)
        if room is not None and room < limit:
            limit = room
        if limit <= 0:
            return Claim([], room, tightest)
        contacts = _take(conn, campaign_id, limit)
        sendable = [c.id for c in contacts if c.send_status != ContactStatus.SUPPRESSED]
        suppressed = [c.id for c in contacts if c.send_status == ContactStatus.SUPPRESSED]
        if suppressed:
            conn.execute(
                sql.SQL("INSERT INTO {} (contact_id, line_id, status) SELECT unnest(%s::bigint[]), %s, {}").format(
                    outcome_table(campaign_id), sql.Literal(ContactStatus.SUPPRESSED)
                ),
                (suppressed, line_id),
            )
        lease = None
        if sendable:
            row = conn.execute(
                # Ids sent binary (%b), stored uncompressed (migration 0010): 0.56 ms for a thousand, not 1.56.
                "INSERT INTO send_leases (campaign_id, line_id, contact_ids) VALUES (%s, %s, %b) RETURNING id",
                (campaign_id, line_id, sendable),
            ).fetchone()
            assert row is not None
            lease = int(row[0])
        quota_sql.charge(conn, quotas, len(sendable))
    return Claim(contacts, room, tightest, lease=lease)


def mark_in_flight(conn: psycopg.Connection, line_id: int, run_id: str, contact_ids: Sequence[int]) -> int | None:
    """Note, before a provider call leaves, whom it is for; returns the call's id, or None when
    `run_id` no longer owns the line (the call must not be made).

    Committed before the call: after a crash, only the contacts of noted calls may have been
    sent. The line's row is share-locked meanwhile, so a run taking the line over either sees
    this call or makes this run lose the line.
    """
    row = conn.execute(
        "WITH owner AS (SELECT id FROM campaign_channels WHERE id = %s AND run_id = %s FOR SHARE)"
        " INSERT INTO inflight_calls (line_id, contact_ids) SELECT id, %b FROM owner RETURNING id",
        (line_id, run_id, list(contact_ids)),
    ).fetchone()
    return None if row is None else int(row[0])


def record_results(
    conn: psycopg.Connection,
    campaign_id: int,
    line_id: int,
    run_id: str,
    *,
    ids: Sequence[int],
    statuses: Sequence[int],
    message_ids: Sequence[str | None],
    errors: Sequence[str | None],
    suppressed: int = 0,
    calls: Sequence[int] = (),
    leases: Sequence[int] = (),
) -> None:
    """Outcomes of leased contacts, appended, plus the line's and campaign's counters, in one transaction.

    Nothing at all once `run_id` has lost the line (its new owner settled that run's leases).
    `calls`: the in-flight calls these results close; `leases`: the leases they settle the last
    contacts of. A contact recorded twice fails the transaction (the outcome's primary key):
    nothing is recorded, and the contacts stay leased, `unknown` to the line's next run.
    """
    sent = sum(1 for s in statuses if s == ContactStatus.SENT)
    failed = sum(1 for s in statuses if s == ContactStatus.FAILED)
    unknown = sum(1 for s in statuses if s == ContactStatus.UNKNOWN)
    with conn.transaction():
        if not owns(conn, line_id, run_id):
            return
        if ids:
            _append_outcomes(conn, campaign_id, line_id, ids, statuses, message_ids, errors)
        conn.execute(
            "UPDATE campaign_channels SET sent_count = sent_count + %s, failed_count = failed_count + %s,"
            " unknown_count = unknown_count + %s, suppressed_count = suppressed_count + %s,"
            " last_sent_at = CASE WHEN %s > 0 THEN now() ELSE last_sent_at END, heartbeat_at = now()"
            " WHERE id = %s",
            (sent, failed, unknown, suppressed, sent + failed + unknown, line_id),
        )
        if sent:
            conn.execute("UPDATE campaigns SET sent_count = sent_count + %s WHERE id = %s", (sent, campaign_id))
        if calls:
            conn.execute("DELETE FROM inflight_calls WHERE id = ANY(%s)", (list(calls),))
        if leases:
            conn.execute("DELETE FROM send_leases WHERE id = ANY(%s)", (list(leases),))


def _append_outcomes(
    conn: psycopg.Connection,
    campaign_id: int,
    line_id: int,
    ids: Sequence[int],
    statuses: Sequence[int],
    message_ids: Sequence[str | None],
    errors: Sequence[str | None],
) -> None:
    """COPY the rows into the campaign's outcome table: an append, no row of the contacts rewritten."""
    statement = sql.SQL("COPY {} (contact_id, line_id, status, message_id, error) FROM STDIN (FORMAT BINARY)")
    with conn.cursor() as cur, cur.copy(statement.format(outcome_table(campaign_id))) as copy:
        copy.set_types(["int8", "int8", "int2", "text", "text"])
        for contact_id, status, message_id, error in zip(ids, statuses, message_ids, errors, strict=True):
            copy.write_row((contact_id, line_id, status, message_id, error))


def release_lease(
    conn: psycopg.Connection,
    campaign_id: int,
    line_id: int,
    run_id: str,
    lease: int,
    quotas: Sequence[Quota] = (),
) -> int:
    """End a lease whose calls are all answered or never made: its contacts without an outcome go
    back to the pool, their sends back to `quotas` (no request was made for them, or the call
    that had them failed before the provider took anything).

    Returns how many went back: none once `run_id` has lost the line (its new owner settles
    the lease)."""
    with conn.transaction():
        if not owns(conn, line_id, run_id):
            return 0
        row = conn.execute(
            sql.SQL(
                "WITH lease AS (DELETE FROM send_leases WHERE id = %(lease)s AND line_id = %(line)s"
                " RETURNING contact_ids),"
                " back AS (INSERT INTO send_returns (campaign_id, contact_id)"
                " SELECT %(campaign)s, i.id FROM lease CROSS JOIN LATERAL unnest(lease.contact_ids) AS i(id)"
                " WHERE NOT EXISTS (SELECT 1 FROM {outcomes} o WHERE o.contact_id = i.id) RETURNING 1)"
                " SELECT count(*) FROM back"
            ).format(outcomes=outcome_table(campaign_id)),
            {"lease": lease, "line": line_id, "campaign": campaign_id},
        ).fetchone()
        assert row is not None
        released = int(row[0])
        quota_sql.charge(conn, quotas, -released)
        if released:  # finished lines have work again: the launch sensor starts them
            line_sql.reopen_lines(conn, campaign_id)
        return released


def fail_unsent(
    conn: psycopg.Connection,
    campaign_id: int,
    line_id: int,
    run_id: str,
    ids: Sequence[int],
    errors: Sequence[str],
    quotas: Sequence[Quota] = (),
) -> int:
    """Leased contacts that cannot be sent (their message failed to render): `failed` with the
    reason, their sends given back to `quotas`, since no request was made for them.
    Returns how many (none once `run_id` has lost the line)."""
    if not ids:
        return 0
    with conn.transaction():
        if not owns(conn, line_id, run_id):
            return 0
        n = len(ids)
        _append_outcomes(conn, campaign_id, line_id, ids, [ContactStatus.FAILED] * n, [None] * n, errors)
        conn.execute(
            "UPDATE campaign_channels SET failed_count = failed_count + %s, heartbeat_at = now() WHERE id = %s",
            (n, line_id),
        )
        quota_sql.charge(conn, quotas, -n)
        return n


def status_counts(conn: psycopg.Connection, campaign_id: int) -> dict[int, int]:
    """Contacts per send state (a full scan: for finalising and reports, not for the hot loop), as
    of one snapshot: a record moves contacts from a lease to their outcomes in one transaction."""
    outcomes = outcome_table(campaign_id)
    row = conn.execute(
        sql.SQL(
            "SELECT (SELECT count(*) FROM {contacts}),"
            " (SELECT count(*) FROM send_leases l CROSS JOIN LATERAL unnest(l.contact_ids) AS i(id)"
            " WHERE l.campaign_id = %s AND NOT EXISTS (SELECT 1 FROM {outcomes} o WHERE o.contact_id = i.id)),"
            " ARRAY(SELECT ARRAY[status, count(*)] FROM {outcomes} GROUP BY status)"
        ).format(contacts=contact_table(campaign_id), outcomes=outcomes),
        (campaign_id,),
    ).fetchone()
    assert row is not None
    total, reserved = int(row[0]), int(row[1])
    counts = {int(status): int(count) for status, count in row[2]}
    if reserved:
        counts[ContactStatus.RESERVED] = reserved
    pending = total - sum(counts.values())
    if pending:
        counts[ContactStatus.PENDING] = pending
    return counts


# Any contact left to claim: given back, or above the cursor without an outcome. The cursor is read
# in the same statement (one snapshot): a claim moving it commits its lease at the same time.
# `o.contact_id > …` as in `_take`: both sides of the anti-join read from the cursor on.
_PENDING = (
    "EXISTS (SELECT 1 FROM send_returns WHERE campaign_id = %(campaign)s)"
    " OR EXISTS (SELECT 1 FROM {contacts} c WHERE c.id > ({after}) AND NOT EXISTS"
    " (SELECT 1 FROM {outcomes} o WHERE o.contact_id = c.id AND o.contact_id > ({after})))"
)
_LEASED = "EXISTS (SELECT 1 FROM send_leases WHERE campaign_id = %(campaign)s)"
_AFTER = sql.SQL("SELECT coalesce(max(last_id), 0) FROM send_cursors WHERE campaign_id = %(campaign)s")


def _exists(conn: psycopg.Connection, campaign_id: int, condition: str) -> bool:
    query = sql.SQL("SELECT " + condition).format(
        contacts=contact_table(campaign_id), outcomes=outcome_table(campaign_id), after=_AFTER
    )
    row = conn.execute(query, {"campaign": campaign_id}).fetchone()
    return bool(row and row[0])


def has_pending(conn: psycopg.Connection, campaign_id: int) -> bool:
    """Any contact left to claim: given back, or above the cursor without an outcome."""
    return _exists(conn, campaign_id, _PENDING)


def has_unfinished(conn: psycopg.Connection, campaign_id: int) -> bool:
    """Any contact still to claim or leased, in one snapshot: a claim or a release moves contacts
    between the pool and a lease in one transaction, never seen half done."""
    return _exists(conn, campaign_id, f"{_LEASED} OR {_PENDING}")
