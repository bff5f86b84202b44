"""SQL of sending lines: their state, which run owns each, and which need a run.

A line is owned by the run whose id is in its `run_id`. Every write a send loop makes is fenced
by that ownership (`owns`, called by store.sending), and a run taking a line over
(`claim_line`, `lease_lines`) locks its row FOR UPDATE first, so a run thought dead that wakes
up (a frozen VM, a long GC) cannot change anything once the line is another's.

The table keeps its first name, `campaign_channels` (and a contact's line is its `channel_id`):
renaming them would take an exclusive lock on every campaign's contact table, and fail the
queries of any process still running the previous version, in the middle of its sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from campaign_pipelines.statuses import CampaignStatus, LineStatus

# What `heartbeat` answers a run that no longer owns its line.
LOST = "lost"

# A line whose heartbeat is older than this has lost its worker (a send loop heartbeats every
# second, provider waits included): what callers pass as `stale_after_s`.
STALE_AFTER_S = 120.0

# The live run rule, written once: a line is held by a live run while it is `sending` and its
# heartbeat is fresher than %(stale)s seconds. A sensor's lease (no run id yet) counts: its run
# is starting. SQL over the line's row as `l`.
_LIVE = sql.SQL(
    "(l.status = {sending} AND coalesce(l.heartbeat_at > now() - make_interval(secs => %(stale)s), false))"
).format(sending=sql.Literal(LineStatus.SENDING))
# ...by a run other than %(run)s: a lease without run id is taken by whichever run starts first.
_HELD_BY_ANOTHER = sql.SQL("({live} AND l.run_id IS NOT NULL AND l.run_id <> %(run)s)").format(live=_LIVE)


@dataclass(frozen=True)
class LineState:
    """A sending line as stored, with its server's settings and its sending state: what the send
    loop, the CLI and the reports read."""

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
    server_calls_in_flight: int | None
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


_LINE_SELECT = sql.SQL(
    "SELECT l.id, l.campaign_id, l.position, l.sender_name, l.sender_email, l.server_id, s.name AS server_name,"
    " s.provider, s.url, s.api_key_ref, s.active AS server_active, s.daily_cap AS server_daily_cap,"
    " s.timezone AS server_timezone, s.batch_size AS server_batch_size, s.calls_in_flight AS server_calls_in_flight,"
    " l.send_frequency_minutes,"
    " l.max_daily_sends, l.scheduled_at, l.status, l.reason, l.sent_count, l.failed_count, l.unknown_count,"
    " l.suppressed_count, l.last_sent_at, l.next_run_at, l.heartbeat_at, l.run_id, l.attempt"
    " FROM campaign_channels l JOIN servers s ON s.id = l.server_id"
)


def line_by_id(conn: psycopg.Connection, line_id: int) -> LineState | None:
    with conn.cursor(row_factory=class_row(LineState)) as cur:
        return cur.execute(_LINE_SELECT + sql.SQL(" WHERE l.id = %s"), (line_id,)).fetchone()


def lines_of(conn: psycopg.Connection, campaign_id: int) -> list[LineState]:
    with conn.cursor(row_factory=class_row(LineState)) as cur:
        return cur.execute(
            _LINE_SELECT + sql.SQL(" WHERE l.campaign_id = %s ORDER BY l.position"), (campaign_id,)
        ).fetchall()


def lines_not_held(conn: psycopg.Connection, campaign_id: int, run_id: str, *, stale_after_s: float) -> list[LineState]:
    """The campaign's lines no live run other than `run_id` is sending."""
    query = _LINE_SELECT + sql.SQL(" WHERE l.campaign_id = %(campaign)s AND NOT {} ORDER BY l.position").format(
        _HELD_BY_ANOTHER
    )
    with conn.cursor(row_factory=class_row(LineState)) as cur:
        return cur.execute(query, {"campaign": campaign_id, "run": run_id, "stale": stale_after_s}).fetchall()


def owns(conn: psycopg.Connection, line_id: int, run_id: str) -> bool:
    """Inside a transaction: whether `run_id` owns the line, kept true until it commits (the
    key-share lock makes a takeover wait; the run's own writes do not wait on each other)."""
    row = conn.execute(
        "SELECT 1 FROM campaign_channels WHERE id = %s AND run_id = %s FOR KEY SHARE", (line_id, run_id)
    ).fetchone()
    return row is not None


def _lock_for_takeover(conn: psycopg.Connection, line_ids: Sequence[int]) -> None:
    """Inside a transaction: wait for the fenced writes of the lines' current runs to commit."""
    conn.execute("SELECT 1 FROM campaign_channels WHERE id = ANY(%s) FOR UPDATE", (list(line_ids),))


def lock_lines_of(conn: psycopg.Connection, campaign_id: int) -> None:
    """Inside a transaction: lock the campaign's line rows (in id order) before its campaign row,
    as a line recording its results does (its line, then the campaign's counters): operator
    actions writing both never deadlock with a running line, nor with each other."""
    conn.execute("SELECT 1 FROM campaign_channels WHERE campaign_id = %s ORDER BY id FOR NO KEY UPDATE", (campaign_id,))


def _reset_lines(conn: psycopg.Connection, campaign_id: int, stopped: LineStatus) -> None:
    conn.execute(
        "UPDATE campaign_channels SET status = %s, reason = NULL WHERE campaign_id = %s AND status = %s",
        (LineStatus.PENDING, campaign_id, stopped),
    )


def resume_lines(conn: psycopg.Connection, campaign_id: int) -> None:
    """Paused lines become pending again: the launch sensor starts a run for them."""
    _reset_lines(conn, campaign_id, LineStatus.PAUSED)


def reopen_lines(conn: psycopg.Connection, campaign_id: int) -> None:
    """Finished lines take work again: contacts are back in the pool (unknown ones put back by an
    operator, or those a stopping line gave back). A line another transaction holds is left
    alone (never waited for: a stopping line holds its own row): whoever holds it is starting
    it, or an operator acting on every line. A cancelled campaign's lines stay as they are."""
    conn.execute(
        "UPDATE campaign_channels SET status = %(pending)s, reason = NULL WHERE id IN"
        " (SELECT l.id FROM campaign_channels l JOIN campaigns c ON c.id = l.campaign_id"
        " WHERE l.campaign_id = %(campaign)s AND l.status = %(done)s AND c.status <> %(cancelled)s"
        " ORDER BY l.id FOR NO KEY UPDATE OF l SKIP LOCKED)",
        {
            "pending": LineStatus.PENDING,
            "campaign": campaign_id,
            "done": LineStatus.DONE,
            "cancelled": CampaignStatus.CANCELLED,
        },
    )


def set_line_state(
    conn: psycopg.Connection,
    line_id: int,
    run_id: str,
    status: LineStatus,
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
    """Make `run_id` the line's sender, unless another live run is sending it."""
    with conn.transaction():
        _lock_for_takeover(conn, [line_id])
        row = conn.execute(
            sql.SQL(
                "UPDATE campaign_channels l SET status = %(sending)s, reason = NULL, next_run_at = NULL,"
                " run_id = %(run)s, heartbeat_at = now() WHERE l.id = %(line)s AND NOT {} RETURNING l.id"
            ).format(_HELD_BY_ANOTHER),
            {"sending": LineStatus.SENDING, "run": run_id, "line": line_id, "stale": stale_after_s},
        ).fetchone()
    return row is not None


def heartbeat(conn: psycopg.Connection, line_id: int, run_id: str) -> str:
    """Refresh the line's heartbeat if `run_id` still owns it.

    Returns the campaign's status when it is paused or cancelled, LOST when another run owns the
    line, else the line's status.
    """
    row = conn.execute(
        "UPDATE campaign_channels l SET heartbeat_at = CASE WHEN l.run_id = %s THEN now() ELSE l.heartbeat_at END"
        " FROM campaigns c WHERE l.id = %s AND c.id = l.campaign_id RETURNING l.status, l.run_id, c.status",
        (run_id, line_id),
    ).fetchone()
    assert row is not None
    line_status, owner, campaign_status = row
    if campaign_status in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED):
        return campaign_status
    return line_status if owner == run_id else LOST


def lease_lines(conn: psycopg.Connection, line_ids: Sequence[int], run_id: str | None) -> int:
    """Mark lines as being launched (a fresh heartbeat, so no sensor launches them twice).

    A lease without run id is taken over by whichever run starts first. Returns the highest
    attempt number, part of relaunch run keys.
    """
    with conn.transaction():
        _lock_for_takeover(conn, line_ids)
        row = conn.execute(
            "WITH leased AS (UPDATE campaign_channels SET status = %s, run_id = %s, heartbeat_at = now(),"
            " attempt = attempt + 1 WHERE id = ANY(%s) RETURNING attempt) SELECT max(attempt) FROM leased",
            (LineStatus.SENDING, run_id, list(line_ids)),
        ).fetchone()
    return int(row[0] or 0) if row else 0


# Why a line is due, when its run died: it was `sending` and no live run holds it.
STALLED = "stalled"


@dataclass(frozen=True)
class DueLine:
    campaign_id: int
    line_id: int
    why: str


def lines_due(conn: psycopg.Connection, *, stale_after_s: float, quota: bool) -> list[DueLine]:
    """Lines of running campaigns that need a run now.

    quota=False: new or resumed lines, waits that are over, lines whose worker died (sensor), and
    paused lines of a running campaign (resumed while the line was stopping for the pause: its
    last word came after the resume).
    quota=True: lines stopped at their daily quota whose new day has begun (daily schedule).
    """
    if quota:
        condition = sql.SQL("l.status = %(quota_reached)s AND l.next_run_at <= now()")
    else:
        condition = sql.SQL(
            "l.status IN (%(pending)s, %(paused)s) OR (l.status = %(waiting)s AND l.next_run_at <= now())"
            " OR (l.status = %(sending)s AND NOT {live})"
        ).format(live=_LIVE)
    rows = conn.execute(
        sql.SQL(
            "SELECT l.campaign_id, l.id, CASE WHEN l.status = %(sending)s THEN %(stalled)s ELSE l.status END"
            " FROM campaign_channels l JOIN campaigns c ON c.id = l.campaign_id"
            " WHERE c.status = %(running)s AND ({condition}) ORDER BY l.campaign_id, l.position"
        ).format(condition=condition),
        {
            "stale": stale_after_s,
            "pending": LineStatus.PENDING,
            "paused": LineStatus.PAUSED,
            "waiting": LineStatus.WAITING,
            "sending": LineStatus.SENDING,
            "quota_reached": LineStatus.QUOTA_REACHED,
            "running": CampaignStatus.RUNNING,
            "stalled": STALLED,
        },
    )
    return [DueLine(int(r[0]), int(r[1]), str(r[2])) for r in rows]
