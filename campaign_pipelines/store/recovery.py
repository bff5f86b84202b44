"""SQL of what becomes of a line's leased contacts when its run died, and of an operator's
resend of `unknown` ones (the pool and leases are store.sending's)."""

from __future__ import annotations

from typing import NamedTuple

import psycopg
from psycopg import sql

from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store.contacts import outcome_table
from campaign_pipelines.store.lines import owns

# The error a contact made `unknown` by a crash carries.
INTERRUPTED = "the run sending this contact's call stopped before its answer: it may have been sent"


class Recovered(NamedTuple):
    unknown: int
    released: int


def recover_line(conn: psycopg.Connection, campaign_id: int, line_id: int, run_id: str) -> Recovered | None:
    """After a crash, the contacts the line had leased and not settled: those of a call that may
    have left become `unknown`; the others were never requested and go back to the pool.

    Done by `run_id`, the line's new owner; None, and nothing done, once it has lost the line
    (it froze after taking it over: what the line holds now is a live run's).
    The quota they took that day is kept: at most the claims the run held, never an overrun.
    """
    with conn.transaction():
        if not owns(conn, line_id, run_id):
            return None
        row = conn.execute(
            sql.SQL(
                "WITH flying AS (SELECT DISTINCT i.id FROM inflight_calls f"
                " CROSS JOIN LATERAL unnest(f.contact_ids) AS i(id) WHERE f.line_id = %(line)s),"
                " leases AS (DELETE FROM send_leases WHERE line_id = %(line)s RETURNING contact_ids),"
                " open AS (SELECT i.id, i.id IN (SELECT id FROM flying) AS flew"
                " FROM leases CROSS JOIN LATERAL unnest(leases.contact_ids) AS i(id)"
                " WHERE NOT EXISTS (SELECT 1 FROM {outcomes} o WHERE o.contact_id = i.id)),"
                " unknown AS (INSERT INTO {outcomes} (contact_id, line_id, status, error)"
                " SELECT id, %(line)s, {unknown}, %(error)s FROM open WHERE flew RETURNING 1),"
                " back AS (INSERT INTO send_returns (campaign_id, contact_id)"
                " SELECT %(campaign)s, id FROM open WHERE NOT flew RETURNING 1)"
                " SELECT (SELECT count(*) FROM unknown), (SELECT count(*) FROM back)"
            ).format(outcomes=outcome_table(campaign_id), unknown=sql.Literal(ContactStatus.UNKNOWN)),
            {"line": line_id, "campaign": campaign_id, "error": INTERRUPTED},
        ).fetchone()
        assert row is not None
        unknown, released = int(row[0]), int(row[1])
        conn.execute("DELETE FROM inflight_calls WHERE line_id = %s", (line_id,))
        if unknown:
            conn.execute(
                "UPDATE campaign_channels SET unknown_count = unknown_count + %s WHERE id = %s", (unknown, line_id)
            )
        return Recovered(unknown, released)


def resend_unknown(conn: psycopg.Connection, campaign_id: int) -> int:
    """Operator action: put `unknown` contacts back in the pool (they may receive the campaign twice).

    One still in its line's lease (an ambiguous call answered before the lease's other calls) leaves
    it: the lease's release at the line's stop, or its recovery, never gives it back a second
    time. One above the cursor (migration 0010) is claimed from there, so it is not given back
    too; the cursor is locked meanwhile, so a claim cannot move past it before its outcome is gone.
    """
    with conn.transaction():
        cursor = conn.execute(
            "SELECT last_id FROM send_cursors WHERE campaign_id = %s FOR UPDATE", (campaign_id,)
        ).fetchone()
        row = conn.execute(
            sql.SQL(
                "WITH unknown AS (DELETE FROM {outcomes} WHERE status = {unknown} RETURNING contact_id),"
                " held AS (UPDATE send_leases l SET contact_ids = ARRAY(SELECT i.id FROM unnest(l.contact_ids)"
                " AS i(id) WHERE i.id NOT IN (SELECT contact_id FROM unknown)) WHERE l.campaign_id = %(campaign)s"
                " AND l.contact_ids && ARRAY(SELECT contact_id FROM unknown) RETURNING 1),"
                " back AS (INSERT INTO send_returns (campaign_id, contact_id)"
                " SELECT %(campaign)s, contact_id FROM unknown WHERE contact_id <= %(cursor)s RETURNING 1)"
                " SELECT count(*) FROM unknown"
            ).format(outcomes=outcome_table(campaign_id), unknown=sql.Literal(ContactStatus.UNKNOWN)),
            {"campaign": campaign_id, "cursor": cursor[0] if cursor else 0},
        ).fetchone()
        assert row is not None
        conn.execute("UPDATE campaign_channels SET unknown_count = 0 WHERE campaign_id = %s", (campaign_id,))
        return int(row[0])
