"""SQL of what becomes of a line's leased contacts when its run died, and of an operator's
resend of `unknown` ones (the pool and leases are store.sending's)."""

from __future__ import annotations

from typing import NamedTuple

import psycopg
from psycopg import sql

from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store.contacts import outcome_table

# The error a contact made `unknown` by a crash carries.
INTERRUPTED = "the run sending this contact's call stopped before its answer: it may have been sent"


class Recovered(NamedTuple):
    unknown: int
    released: int


def recover_line(conn: psycopg.Connection, campaign_id: int, line_id: int) -> Recovered:
    """After a crash, the contacts the line had leased and not settled: those of a call that may
    have left become `unknown`; the others were never requested and go back to the pool.

    The quota they took that day is kept: at most one claim's worth, and never an overrun.
    """
    with conn.transaction():
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
    """Operator action: put `unknown` contacts back in the pool (they may receive the campaign twice)."""
    with conn.transaction():
        row = conn.execute(
            sql.SQL(
                "WITH unknown AS (DELETE FROM {outcomes} WHERE status = {unknown} RETURNING contact_id),"
                " back AS (INSERT INTO send_returns (campaign_id, contact_id)"
                " SELECT %s, contact_id FROM unknown RETURNING 1)"
                " SELECT count(*) FROM back"
            ).format(outcomes=outcome_table(campaign_id), unknown=sql.Literal(ContactStatus.UNKNOWN)),
            (campaign_id,),
        ).fetchone()
        assert row is not None
        conn.execute("UPDATE campaign_channels SET unknown_count = 0 WHERE campaign_id = %s", (campaign_id,))
        return int(row[0])
