"""SQL of sending: claiming contacts, recording results and the progress counters they move.

Claims take pending contacts in id order under `FOR UPDATE SKIP LOCKED`, so two lines or
workers never hold the same contact; a claimed contact is `reserved` (committed) before any
request is made, and `sent`/`failed`/`unknown` after it. Each provider call is noted in
`inflight_calls` (committed) before it leaves, so a crash makes `unknown` only the contacts
a request may have reached.

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
from campaign_pipelines.store import quotas as quota_sql
from campaign_pipelines.store.contacts import contact_table
from campaign_pipelines.store.lines import owns
from campaign_pipelines.store.quotas import Quota


class ClaimedContact(NamedTuple):
    # A tuple: a claim builds a thousand of these, a frozen dataclass costs 4x more each.
    id: int
    email: str
    attributes: dict
    send_status: int


class Claim(NamedTuple):
    contacts: list[ClaimedContact]
    # The smallest room its quotas had before this claim (None: no quota), and which quota.
    room: int | None
    tightest: Quota | None
    # The run no longer owns the line: nothing was claimed.
    lost: bool = False


def claim(
    conn: psycopg.Connection,
    campaign_id: int,
    line_id: int,
    run_id: str,
    limit: int,
    quotas: Sequence[Quota] = (),
) -> Claim:
    """Reserve up to `limit` pending contacts for a line its run `run_id` owns (blacklisted
    ones become suppressed).

    The contacts to send are charged to `quotas` in the same transaction, and no more are
    taken than the room the quotas have left.
    """
    table = contact_table(campaign_id)
    with conn.transaction():
        if not owns(conn, line_id, run_id):
            return Claim([], None, None, lost=True)
        room, tightest = quota_sql.lock_room(conn, quotas)
        if room is not None and room < limit:
            limit = room
        if limit <= 0:
            return Claim([], room, tightest)
        with conn.cursor(row_factory=args_row(ClaimedContact)) as cur:
            set_json_loads(orjson.loads, cur)
            contacts = cur.execute(
                sql.SQL(
                    "WITH picked AS ("
                    " SELECT c.id, EXISTS (SELECT 1 FROM blacklist b WHERE b.email = c.email) AS blocked"
                    " FROM {table} c WHERE c.send_status = {pending} ORDER BY c.id LIMIT %(limit)s"
                    " FOR UPDATE SKIP LOCKED)"
                    " UPDATE {table} c SET send_status = CASE WHEN picked.blocked THEN {suppressed} ELSE {reserved}"
                    " END, channel_id = %(line)s, attempted_at = now()"
                    " FROM picked WHERE c.id = picked.id"
                    " RETURNING c.id, c.email, c.attributes, c.send_status"
                ).format(
                    table=table,
                    pending=ContactStatus.PENDING,
                    reserved=ContactStatus.RESERVED,
                    suppressed=ContactStatus.SUPPRESSED,
                ),
                {"limit": limit, "line": line_id},
            ).fetchall()
        quota_sql.charge(conn, quotas, sum(1 for c in contacts if c.send_status != ContactStatus.SUPPRESSED))
    return Claim(contacts, room, tightest)


def mark_in_flight(conn: psycopg.Connection, line_id: int, run_id: str, contact_ids: Sequence[int]) -> int | None:
    """Note, before a provider call leaves, whom it is for; returns the call's id, or None when
    `run_id` no longer owns the line (the call must not be made).

    Committed before the call: after a crash, only the contacts of noted calls may have been
    sent. The line's row is share-locked meanwhile, so a run taking the line over either sees
    this call or makes this run lose the line.
    """
    row = conn.execute(
        "WITH owner AS (SELECT id FROM campaign_channels WHERE id = %s AND run_id = %s FOR SHARE)"
        " INSERT INTO inflight_calls (line_id, contact_ids) SELECT id, %s FROM owner RETURNING id",
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
) -> None:
    """Final states of reserved contacts, plus the line's and campaign's counters, in one transaction.

    Only contacts still reserved are changed and counted, and nothing at all once `run_id` has
    lost the line (its new owner made that run's calls `unknown`). `calls`: the in-flight calls
    these results close.
    """
    sent = failed = unknown = 0
    with conn.transaction():
        if not owns(conn, line_id, run_id):
            return
        if ids:
            row = conn.execute(
                sql.SQL(
                    "WITH changed AS (UPDATE {table} c SET send_status = v.status, message_id = v.message_id,"
                    " error = v.error, attempted_at = now()"
                    " FROM unnest(%s::bigint[], %s::smallint[], %s::text[], %s::text[])"
                    " AS v(id, status, message_id, error)"
                    " WHERE c.id = v.id AND c.send_status = {reserved} RETURNING v.status)"
                    " SELECT count(*) FILTER (WHERE status = {sent}), count(*) FILTER (WHERE status = {failed}),"
                    " count(*) FILTER (WHERE status = {unknown}) FROM changed"
                ).format(
                    table=contact_table(campaign_id),
                    reserved=ContactStatus.RESERVED,
                    sent=ContactStatus.SENT,
                    failed=ContactStatus.FAILED,
                    unknown=ContactStatus.UNKNOWN,
                ),
                (list(ids), list(statuses), list(message_ids), list(errors)),
            ).fetchone()
            assert row is not None
            sent, failed, unknown = (int(count) for count in row)
        conn.execute(
            "UPDATE campaign_channels SET sent_count = sent_count + %s, failed_count = failed_count + %s,"
            " unknown_count = unknown_count + %s, suppressed_count = suppressed_count + %s,"
            " last_sent_at = CASE WHEN %s > 0 THEN now() ELSE last_sent_at END, heartbeat_at = now()"
            " WHERE id = %s",
            (sent, failed, unknown, suppressed, sent + failed + unknown, line_id),
        )
        if sent:
            conn.execute("UPDATE campaigns SET sent_count = sent_count + %s WHERE id = %s", (sent, campaign_id))
        _close_calls(conn, calls)


def _close_calls(conn: psycopg.Connection, calls: Sequence[int]) -> None:
    if calls:
        conn.execute("DELETE FROM inflight_calls WHERE id = ANY(%s)", (list(calls),))


def release(
    conn: psycopg.Connection,
    campaign_id: int,
    line_id: int,
    run_id: str,
    ids: Sequence[int],
    quotas: Sequence[Quota] = (),
    calls: Sequence[int] = (),
) -> int:
    """Give reserved contacts back to the pool, and their sends back to `quotas`: no request
    was made for them (or the call that had them failed before the provider took anything).

    Returns how many went back: none once `run_id` has lost the line (they may be the new
    owner's by now)."""
    if not ids and not calls:
        return 0
    with conn.transaction():
        if not owns(conn, line_id, run_id):
            return 0
        cur = conn.execute(
            sql.SQL(
                "UPDATE {table} SET send_status = {pending}, channel_id = NULL"
                " WHERE id = ANY(%s) AND send_status = {reserved}"
            ).format(table=contact_table(campaign_id), pending=ContactStatus.PENDING, reserved=ContactStatus.RESERVED),
            (list(ids),),
        )
        quota_sql.charge(conn, quotas, -cur.rowcount)
        _close_calls(conn, calls)
        return cur.rowcount


def fail_unsent(
    conn: psycopg.Connection,
    campaign_id: int,
    line_id: int,
    run_id: str,
    ids: Sequence[int],
    errors: Sequence[str],
    quotas: Sequence[Quota] = (),
) -> int:
    """Reserved contacts that cannot be sent (their message failed to render): `failed` with
    the reason, their sends given back to `quotas`, since no request was made for them.
    Returns how many (none once `run_id` has lost the line)."""
    if not ids:
        return 0
    with conn.transaction():
        if not owns(conn, line_id, run_id):
            return 0
        cur = conn.execute(
            sql.SQL(
                "UPDATE {table} c SET send_status = {failed}, error = v.error, attempted_at = now()"
                " FROM unnest(%s::bigint[], %s::text[]) AS v(id, error)"
                " WHERE c.id = v.id AND c.send_status = {reserved}"
            ).format(table=contact_table(campaign_id), failed=ContactStatus.FAILED, reserved=ContactStatus.RESERVED),
            (list(ids), list(errors)),
        )
        conn.execute(
            "UPDATE campaign_channels SET failed_count = failed_count + %s, heartbeat_at = now() WHERE id = %s",
            (cur.rowcount, line_id),
        )
        quota_sql.charge(conn, quotas, -cur.rowcount)
        return cur.rowcount


class Recovered(NamedTuple):
    unknown: int
    released: int


def recover_line(conn: psycopg.Connection, campaign_id: int, line_id: int) -> Recovered:
    """After a crash, the contacts the line had reserved: those of a call that may have left
    become `unknown`; the others were never requested and go back to the pool.

    The quota they took that day is kept: at most one claim's worth, and never an overrun.
    """
    with conn.transaction():
        rows = conn.execute(
            sql.SQL(
                "WITH flying AS (SELECT unnest(contact_ids) AS id FROM inflight_calls WHERE line_id = %(line)s)"
                " UPDATE {table} c SET"
                " send_status = CASE WHEN c.id IN (SELECT id FROM flying) THEN {unknown} ELSE {pending} END,"
                " channel_id = CASE WHEN c.id IN (SELECT id FROM flying) THEN c.channel_id END"
                " WHERE c.channel_id = %(line)s AND c.send_status = {reserved}"
                " RETURNING c.send_status"
            ).format(
                table=contact_table(campaign_id),
                pending=ContactStatus.PENDING,
                unknown=ContactStatus.UNKNOWN,
                reserved=ContactStatus.RESERVED,
            ),
            {"line": line_id},
        ).fetchall()
        unknown = sum(1 for (status,) in rows if status == ContactStatus.UNKNOWN)
        conn.execute("DELETE FROM inflight_calls WHERE line_id = %s", (line_id,))
        if unknown:
            conn.execute(
                "UPDATE campaign_channels SET unknown_count = unknown_count + %s WHERE id = %s", (unknown, line_id)
            )
        return Recovered(unknown, len(rows) - unknown)


def resend_unknown(conn: psycopg.Connection, campaign_id: int) -> int:
    """Operator action: put `unknown` contacts back in the pool (they may receive the campaign twice)."""
    with conn.transaction():
        cur = conn.execute(
            sql.SQL(
                "UPDATE {table} SET send_status = {pending}, channel_id = NULL WHERE send_status = {unknown}"
                " RETURNING channel_id"
            ).format(table=contact_table(campaign_id), pending=ContactStatus.PENDING, unknown=ContactStatus.UNKNOWN),
        )
        count = cur.rowcount
        conn.execute("UPDATE campaign_channels SET unknown_count = 0 WHERE campaign_id = %s", (campaign_id,))
        return count


def status_counts(conn: psycopg.Connection, campaign_id: int) -> dict[int, int]:
    """Contacts per send state (a full scan: for finalising and reports, not for the hot loop)."""
    rows = conn.execute(
        sql.SQL("SELECT send_status, count(*) FROM {} GROUP BY send_status").format(contact_table(campaign_id))
    )
    return {int(status): int(count) for status, count in rows}


def has_pending(conn: psycopg.Connection, campaign_id: int) -> bool:
    row = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE send_status = {})").format(
            contact_table(campaign_id), sql.Literal(ContactStatus.PENDING)
        )
    ).fetchone()
    return bool(row and row[0])


def has_unfinished(conn: psycopg.Connection, campaign_id: int) -> bool:
    """Any contact still pending or reserved (both served by partial indexes)."""
    table = contact_table(campaign_id)
    row = conn.execute(
        sql.SQL(
            "SELECT EXISTS (SELECT 1 FROM {table} WHERE send_status = {pending})"
            " OR EXISTS (SELECT 1 FROM {table} WHERE send_status = {reserved})"
        ).format(table=table, pending=ContactStatus.PENDING, reserved=ContactStatus.RESERVED)
    ).fetchone()
    return bool(row and row[0])
