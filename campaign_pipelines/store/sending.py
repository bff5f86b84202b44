"""SQL of sending: claiming contacts, recording results, line state and progress counters.

Claims take pending contacts in id order under `FOR UPDATE SKIP LOCKED`, so two lines or
workers never hold the same contact; a claimed contact is `reserved` (committed) before any
request is made, and `sent`/`failed`/`unknown` after it. Each provider call is noted in
`inflight_calls` (committed) before it leaves, so a crash makes `unknown` only the contacts
a request may have reached.

Every write a send loop makes is fenced by its run owning the line: it key-share-locks the
line's row where `run_id` is its own, and a run taking the line over (`claim_line`,
`lease_lines`) locks that row FOR UPDATE first. So a run thought dead that wakes up (a frozen
VM, a long GC) cannot claim, release or record anything once the line is another's: the
contacts it held were settled by the new owner's `recover_line`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import orjson
import psycopg
from psycopg import sql
from psycopg.rows import args_row, class_row
from psycopg.types.json import set_json_loads

from campaign_pipelines.store import quotas as quota_sql
from campaign_pipelines.store.contacts import FAILED, PENDING, RESERVED, SENT, SUPPRESSED, UNKNOWN, contact_table
from campaign_pipelines.store.quotas import Quota


class ClaimedContact(NamedTuple):
    # A tuple: a claim builds a thousand of these, a frozen dataclass costs 4x more each.
    id: int
    email: str
    attributes: dict
    send_status: int


@dataclass(frozen=True)
class LineState:
    """A sending line with everything its send loop needs."""

    id: int
    campaign_id: int
    position: int
    sender_name: str
    sender_email: str
    server_id: int
    server_name: str
    provider: str
    url: str
    api_key_ref: str
    server_active: bool
    server_daily_cap: int | None
    server_timezone: str
    server_batch_size: int | None
    send_frequency_minutes: Decimal | None
    max_daily_sends: int | None
    scheduled_at: datetime | None
    status: str
    reason: str | None
    sent_count: int
    failed_count: int
    unknown_count: int
    suppressed_count: int
    last_sent_at: datetime | None
    next_run_at: datetime | None
    heartbeat_at: datetime | None
    run_id: str | None
    attempt: int


_LINE_SELECT = (
    "SELECT l.id, l.campaign_id, l.position, l.sender_name, l.sender_email, l.server_id, s.name AS server_name,"
    " s.provider, s.url, s.api_key_ref, s.active AS server_active, s.daily_cap AS server_daily_cap,"
    " s.timezone AS server_timezone, s.batch_size AS server_batch_size, l.send_frequency_minutes,"
    " l.max_daily_sends, l.scheduled_at, l.status, l.reason, l.sent_count, l.failed_count, l.unknown_count,"
    " l.suppressed_count, l.last_sent_at, l.next_run_at, l.heartbeat_at, l.run_id, l.attempt"
    " FROM campaign_channels l JOIN servers s ON s.id = l.server_id"
)


def line_by_id(conn: psycopg.Connection, line_id: int) -> LineState | None:
    with conn.cursor(row_factory=class_row(LineState)) as cur:
        return cur.execute(_LINE_SELECT + " WHERE l.id = %s", (line_id,)).fetchone()


def lines_of(conn: psycopg.Connection, campaign_id: int) -> list[LineState]:
    with conn.cursor(row_factory=class_row(LineState)) as cur:
        return cur.execute(_LINE_SELECT + " WHERE l.campaign_id = %s ORDER BY l.position", (campaign_id,)).fetchall()


def _owns(conn: psycopg.Connection, line_id: int, run_id: str) -> bool:
    """Inside a transaction: whether `run_id` owns the line, kept true until it commits (the
    key-share lock makes a takeover wait; the run's own writes do not wait on each other)."""
    row = conn.execute(
        "SELECT 1 FROM campaign_channels WHERE id = %s AND run_id = %s FOR KEY SHARE", (line_id, run_id)
    ).fetchone()
    return row is not None


def _lock_for_takeover(conn: psycopg.Connection, line_ids: Sequence[int]) -> None:
    """Inside a transaction: wait for the fenced writes of the lines' current runs to commit."""
    conn.execute("SELECT 1 FROM campaign_channels WHERE id = ANY(%s) FOR UPDATE", (list(line_ids),))


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
        if not _owns(conn, line_id, run_id):
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
                ).format(table=table, pending=PENDING, reserved=RESERVED, suppressed=SUPPRESSED),
                {"limit": limit, "line": line_id},
            ).fetchall()
        quota_sql.charge(conn, quotas, sum(1 for c in contacts if c.send_status != SUPPRESSED))
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
        if not _owns(conn, line_id, run_id):
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
                    table=contact_table(campaign_id), reserved=RESERVED, sent=SENT, failed=FAILED, unknown=UNKNOWN
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
        if not _owns(conn, line_id, run_id):
            return 0
        cur = conn.execute(
            sql.SQL(
                "UPDATE {table} SET send_status = {pending}, channel_id = NULL"
                " WHERE id = ANY(%s) AND send_status = {reserved}"
            ).format(table=contact_table(campaign_id), pending=PENDING, reserved=RESERVED),
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
        if not _owns(conn, line_id, run_id):
            return 0
        cur = conn.execute(
            sql.SQL(
                "UPDATE {table} c SET send_status = {failed}, error = v.error, attempted_at = now()"
                " FROM unnest(%s::bigint[], %s::text[]) AS v(id, error)"
                " WHERE c.id = v.id AND c.send_status = {reserved}"
            ).format(table=contact_table(campaign_id), failed=FAILED, reserved=RESERVED),
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
            ).format(table=contact_table(campaign_id), pending=PENDING, unknown=UNKNOWN, reserved=RESERVED),
            {"line": line_id},
        ).fetchall()
        unknown = sum(1 for (status,) in rows if status == UNKNOWN)
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
            ).format(table=contact_table(campaign_id), pending=PENDING, unknown=UNKNOWN),
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
            contact_table(campaign_id), sql.Literal(PENDING)
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
        ).format(table=table, pending=PENDING, reserved=RESERVED)
    ).fetchone()
    return bool(row and row[0])


def resume_lines(conn: psycopg.Connection, campaign_id: int) -> None:
    """Paused lines become pending again: the launch sensor starts a run for them."""
    conn.execute(
        "UPDATE campaign_channels SET status = 'pending', reason = NULL WHERE campaign_id = %s AND status = 'paused'",
        (campaign_id,),
    )


def set_line_state(
    conn: psycopg.Connection,
    line_id: int,
    run_id: str,
    status: str,
    *,
    reason: str | None = None,
    next_run_at: datetime | None = None,
) -> None:
    """A send loop's last word on its line; nothing once `run_id` has lost it."""
    conn.execute(
        "UPDATE campaign_channels SET status = %s, reason = %s, next_run_at = %s, heartbeat_at = now()"
        " WHERE id = %s AND run_id = %s",
        (status, reason, next_run_at, line_id, run_id),
    )


def claim_line(conn: psycopg.Connection, line_id: int, run_id: str, *, stale_after_s: float) -> bool:
    """Make `run_id` the line's sender, unless another run is sending it and alive."""
    with conn.transaction():
        _lock_for_takeover(conn, [line_id])
        row = conn.execute(
            "UPDATE campaign_channels SET status = 'sending', reason = NULL, next_run_at = NULL, run_id = %s,"
            " heartbeat_at = now()"
            " WHERE id = %s AND NOT (status = 'sending' AND run_id IS NOT NULL AND run_id <> %s"
            " AND heartbeat_at > now() - make_interval(secs => %s))"
            " RETURNING id",
            (run_id, line_id, run_id, stale_after_s),
        ).fetchone()
    return row is not None


def heartbeat(conn: psycopg.Connection, line_id: int, run_id: str) -> str:
    """Refresh the line's heartbeat if `run_id` still owns it.

    Returns "paused" or "cancelled" when the campaign is, "lost" when another run owns the
    line, else the line's status.
    """
    row = conn.execute(
        "UPDATE campaign_channels l SET heartbeat_at = CASE WHEN l.run_id = %s THEN now() ELSE l.heartbeat_at END"
        " FROM campaigns c WHERE l.id = %s AND c.id = l.campaign_id RETURNING l.status, l.run_id, c.status",
        (run_id, line_id),
    ).fetchone()
    assert row is not None
    line_status, owner, campaign_status = row
    if campaign_status in ("paused", "cancelled"):
        return campaign_status
    return line_status if owner == run_id else "lost"


def held_by_live_run(line: LineState, run_id: str, *, stale_after_s: float, now: datetime) -> bool:
    """Whether another run is sending this line and alive (the same rule as `claim_line`)."""
    return (
        line.status == "sending"
        and line.run_id is not None
        and line.run_id != run_id
        and line.heartbeat_at is not None
        and (now - line.heartbeat_at).total_seconds() < stale_after_s
    )


def lease_lines(conn: psycopg.Connection, line_ids: Sequence[int], run_id: str | None) -> int:
    """Mark lines as being launched (a fresh heartbeat, so no sensor launches them twice).

    A lease without run id is taken over by whichever run starts first. Returns the highest
    attempt number, part of relaunch run keys.
    """
    with conn.transaction():
        _lock_for_takeover(conn, line_ids)
        row = conn.execute(
            "WITH leased AS (UPDATE campaign_channels SET status = 'sending', run_id = %s, heartbeat_at = now(),"
            " attempt = attempt + 1 WHERE id = ANY(%s) RETURNING attempt) SELECT max(attempt) FROM leased",
            (run_id, list(line_ids)),
        ).fetchone()
    return int(row[0] or 0) if row else 0


@dataclass(frozen=True)
class DueLine:
    campaign_id: int
    line_id: int
    why: str


def lines_due(conn: psycopg.Connection, *, stale_after_s: float, quota: bool) -> list[DueLine]:
    """Lines of running campaigns that need a run now.

    quota=False: new or resumed lines, waits that are over, lines whose worker died (sensor).
    quota=True: lines stopped at their daily quota whose new day has begun (daily schedule).
    """
    if quota:
        condition = "l.status = 'quota_reached' AND l.next_run_at <= now()"
    else:
        condition = (
            "l.status = 'pending' OR (l.status = 'waiting' AND l.next_run_at <= now())"
            " OR (l.status = 'sending' AND l.heartbeat_at < now() - make_interval(secs => %(stale)s))"
        )
    rows = conn.execute(
        "SELECT l.campaign_id, l.id, CASE WHEN l.status = 'sending' THEN 'stalled' ELSE l.status END"
        " FROM campaign_channels l JOIN campaigns c ON c.id = l.campaign_id"
        f" WHERE c.status = 'running' AND ({condition}) ORDER BY l.campaign_id, l.position",
        {"stale": stale_after_s},
    )
    return [DueLine(int(r[0]), int(r[1]), str(r[2])) for r in rows]


def reopen_lines(conn: psycopg.Connection, campaign_id: int) -> None:
    """Finished lines take work again (unknown contacts put back in the pool)."""
    conn.execute(
        "UPDATE campaign_channels SET status = 'pending', reason = NULL WHERE campaign_id = %s AND status = 'done'",
        (campaign_id,),
    )
