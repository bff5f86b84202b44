"""SQL of a campaign's per-contact outcomes, run by DuckDB over PostgreSQL (DuckDB's postgres scanner).

Called by campaign_pipelines.reports. DuckDB reads the campaign's tracking and delivery events once
each (plain SELECTs streamed by PostgreSQL's COPY, on sessions that are read-only and never
JIT-compile), folds them per contact, and joins the contact table to them as it streams (DuckDB's
table scan): every funnel of the report (whole campaign, per line, per domain, per hour) is
counted in that one pass, or, when the per-contact Parquet file is written, from the file the pass
wrote. Nothing per contact is held in Python or in DuckDB's memory but the folded events.
Measured on 1M contacts and 1M events: the same funnels computed set-based inside PostgreSQL (one
pass per table, a MATERIALIZED CTE of the events per contact, GROUPING SETS over the contacts)
took 12-15 s (EXPLAIN ANALYZE), where the whole report here takes 6-7 s (bench-report, on a loaded
machine); its hash aggregation of the events per contact alone took 2 s.
Table names are built only from the campaign's integer id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import psycopg
from psycopg import sql

from campaign_pipelines.blacklist import COMPLAINT, DELIVERED, HARD_BOUNCE, SOFT_BOUNCE, UNSUBSCRIBE
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store.contacts import contact_table
from campaign_pipelines.store.tracking import CLICK, HUMAN_FLAG, OPEN
from campaign_pipelines.store.tracking import UNSUBSCRIBE as UNSUBSCRIBE_KIND

# DuckDB's own memory; past it, joins and aggregates spill to `temp_directory`. One thread: on the
# 2-core bench machine a second one was no faster (PostgreSQL streams on the other core) and took
# 30-40 MB more (report of 1M contacts: peak RSS about 280 MB against 310-330 MB with 2 threads
# and 160 MB; 100 MB with 2 threads ran out of memory folding the events).
_MEMORY_LIMIT = "128MB"
_THREADS = 1
# Every PostgreSQL session DuckDB opens: read-only, and no JIT (it compiled for 13 s a query that runs in 3).
_SESSION_OPTIONS = "-c default_transaction_read_only=on -c jit=off -c lock_timeout=5s"
_EXTENSION = "postgres_scanner.duckdb_extension"
# Snappy: zstd made the file a third smaller and took 3x longer to write (1M contacts: 2.2 s against 0.7 s).
_PARQUET = "FORMAT parquet, COMPRESSION snappy"

# GROUPING(line_id, domain, hour) of each grouping set of `funnels`.
ALL, BY_LINE, BY_DOMAIN, BY_HOUR = 7, 3, 5, 6


def _extension_path() -> Path:
    """The postgres scanner shipped by the duckdb-ext-postgres wheel (no download at run time)."""
    import duckdb_ext  # the wheel's namespace package

    for folder in duckdb_ext.__path__:
        found = sorted(Path(folder).rglob(_EXTENSION))
        if found:
            return found[0]
    raise RuntimeError(f"DuckDB's postgres scanner ({_EXTENSION}) is missing: reinstall duckdb-ext-postgres")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def duckdb_over(database_url: str, temp_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB with the campaign database attached read-only as `pg`."""
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    info["options"] = f"{info.get('options', '')} {_SESSION_OPTIONS}".strip()
    duck = duckdb.connect(config={"memory_limit": _MEMORY_LIMIT, "threads": _THREADS})
    try:
        duck.execute(f"SET temp_directory = {_literal(str(temp_dir))}")
        duck.execute("SET preserve_insertion_order = false")
        duck.execute("SET enable_progress_bar = false")
        duck.execute(f"LOAD {_literal(str(_extension_path()))}")
        duck.execute(f"ATTACH {_literal(psycopg.conninfo.make_conninfo(**info))} AS pg (TYPE postgres, READ_ONLY)")
        yield duck
    finally:
        duck.close()


def _in_postgres(query: sql.Composable) -> str:
    """DuckDB's call running `query` in PostgreSQL, streaming its rows."""
    return f"postgres_query('pg', {_literal(query.as_string())})"


def _events(campaign_id: int) -> str:
    return _in_postgres(
        sql.SQL(
            "SELECT contact_id, kind, link_idx, flag, occurred_at AT TIME ZONE 'UTC' AS occurred_at"
            " FROM tracking_events WHERE campaign_id = {}"
        ).format(sql.Literal(int(campaign_id)))
    )


def _deliveries(campaign_id: int) -> str:
    return _in_postgres(
        sql.SQL(
            "SELECT contact_id, event FROM delivery_events WHERE campaign_id = {} AND contact_id IS NOT NULL"
        ).format(sql.Literal(int(campaign_id)))
    )


def load_events(duck: duckdb.DuckDBPyConnection, campaign_id: int) -> None:
    """Copy the campaign's tracking events into DuckDB (table `events`, times in UTC): read once, used thrice."""
    duck.execute(f"CREATE OR REPLACE TEMP TABLE events AS SELECT * FROM {_events(campaign_id)}")


_STATUS_WORDS = " ".join(f"WHEN {status:d} THEN '{status.word}'" for status in ContactStatus)


def prepare_outcomes(duck: duckdb.DuckDBPyConnection, campaign_id: int) -> None:
    """View `outcomes`: one row per contact, its line, state, send time (UTC) and what followed.

    Needs `load_events` first. The campaign's events and provider events are folded per contact
    (tables `contact_events`, `contact_deliveries`, a few bytes a contact); the view joins the
    contacts to them as PostgreSQL streams them (DuckDB's scan of the table, binary COPY), so whatever
    reads it keeps nothing per contact in memory. Columns: contact_id, email, domain, line_id,
    status (pending, reserved, sent, failed, unknown, suppressed), attempted_at (UTC), delivered,
    hard_bounced, soft_bounced, complained, opens, human_opens, clicks, human_clicks, unsubscribed.
    """
    duck.execute(
        "CREATE OR REPLACE TEMP TABLE contact_events AS SELECT contact_id,"
        f" sum((kind = {OPEN})::int) AS opens,"
        f" sum((kind = {OPEN} AND flag = {HUMAN_FLAG})::int) AS human_opens,"
        f" sum((kind = {CLICK})::int) AS clicks,"
        f" sum((kind = {CLICK} AND flag = {HUMAN_FLAG})::int) AS human_clicks,"
        f" bool_or(kind = {UNSUBSCRIBE_KIND}) AS unsubscribed"
        " FROM events GROUP BY contact_id"
    )
    duck.execute(
        "CREATE OR REPLACE TEMP TABLE contact_deliveries AS SELECT contact_id,"
        f" bool_or(event = '{DELIVERED}') AS delivered,"
        f" bool_or(event = '{HARD_BOUNCE}') AS hard_bounced,"
        f" bool_or(event = '{SOFT_BOUNCE}') AS soft_bounced,"
        f" bool_or(event = '{COMPLAINT}') AS complained,"
        f" bool_or(event = '{UNSUBSCRIBE}') AS unsubscribed"
        f" FROM {_deliveries(campaign_id)} GROUP BY contact_id"
    )
    contacts = f"pg.public.{contact_table(campaign_id).as_string()}"
    duck.execute(
        "CREATE OR REPLACE TEMP VIEW outcomes AS"
        " SELECT c.id AS contact_id, c.email, split_part(c.email, '@', 2) AS domain, c.channel_id AS line_id,"
        f" CASE c.send_status {_STATUS_WORDS} END AS status,"
        # UTC by arithmetic: timezone('UTC', …) goes through ICU, 0.9 s per million rows, and a view's
        # expression is evaluated wherever the funnels name it.
        " make_timestamp(epoch_us(c.attempted_at)) AS attempted_at,"
        " coalesce(dv.delivered, false) AS delivered, coalesce(dv.hard_bounced, false) AS hard_bounced,"
        " coalesce(dv.soft_bounced, false) AS soft_bounced, coalesce(dv.complained, false) AS complained,"
        " coalesce(ev.opens, 0) AS opens, coalesce(ev.human_opens, 0) AS human_opens,"
        " coalesce(ev.clicks, 0) AS clicks, coalesce(ev.human_clicks, 0) AS human_clicks,"
        " coalesce(ev.unsubscribed, false) OR coalesce(dv.unsubscribed, false) AS unsubscribed"
        f" FROM {contacts} c"
        " LEFT JOIN contact_events ev ON ev.contact_id = c.id LEFT JOIN contact_deliveries dv ON dv.contact_id = c.id"
    )


def drop_events(duck: duckdb.DuckDBPyConnection) -> None:
    """Free the raw events once folded (`prepare_outcomes`) and counted (`events_by_hour`, `clicks_by_link`)."""
    duck.execute("DROP TABLE events")


def write_outcomes(duck: duckdb.DuckDBPyConnection, path: Path) -> None:
    """The `outcomes` view streamed to a Parquet file, one row per contact (needs `prepare_outcomes`)."""
    duck.execute(f"COPY outcomes TO {_literal(str(path))} ({_PARQUET})")


def outcomes_file(path: Path) -> str:
    """A Parquet file `write_outcomes` wrote, as a relation `funnels` counts from (same columns as the view)."""
    return f"read_parquet({_literal(str(path))})"


@dataclass(frozen=True)
class FunnelRow:
    """The funnel of one group of contacts: all, one line, one domain or one hour of sending."""

    grouping: int
    line_id: int | None
    domain: str | None
    hour: datetime | None
    contacts: int
    pending: int
    sent: int
    failed: int
    unknown: int
    suppressed: int
    delivered: int
    hard_bounced: int
    soft_bounced: int
    complained: int
    unique_opens: int
    opens: int
    human_unique_opens: int
    human_opens: int
    unique_clicks: int
    clicks: int
    human_unique_clicks: int
    human_clicks: int
    unsubscribed: int


_FUNNEL_COLUMNS = [name for name in FunnelRow.__dataclass_fields__]


def funnels(duck: duckdb.DuckDBPyConnection, *, top_domains: int, source: str = "outcomes") -> list[FunnelRow]:
    """The funnel of the whole campaign, of each line, of its `top_domains` largest recipient domains
    and of each hour of sending (UTC, by attempted_at), from `source`: the `outcomes` view, or the
    `outcomes_file` it was written to."""
    state = {
        "pending": f"status IN ('{ContactStatus.PENDING.word}', '{ContactStatus.RESERVED.word}')",
        "sent": f"status = '{ContactStatus.SENT.word}'",
        "failed": f"status = '{ContactStatus.FAILED.word}'",
        "unknown": f"status = '{ContactStatus.UNKNOWN.word}'",
        "suppressed": f"status = '{ContactStatus.SUPPRESSED.word}'",
    }
    flags = {
        **state,
        "delivered": "delivered",
        "hard_bounced": "hard_bounced",
        "soft_bounced": "soft_bounced",
        "complained": "complained",
    }
    rows = duck.execute(
        "WITH grouped AS ("
        " SELECT GROUPING(line_id, domain, date_trunc('hour', attempted_at))::int AS grouping,"
        " line_id, domain, date_trunc('hour', attempted_at) AS hour,"
        " count(*) AS contacts,"
        # sum of 0/1 rather than count(*) FILTER: DuckDB runs it about 1.5x faster.
        + "".join(f" sum(({condition})::int) AS {name}," for name, condition in flags.items())
        + " sum((opens > 0)::int) AS unique_opens, sum(opens) AS opens,"
        " sum((human_opens > 0)::int) AS human_unique_opens, sum(human_opens) AS human_opens,"
        " sum((clicks > 0)::int) AS unique_clicks, sum(clicks) AS clicks,"
        " sum((human_clicks > 0)::int) AS human_unique_clicks, sum(human_clicks) AS human_clicks,"
        " sum(unsubscribed::int) AS unsubscribed"
        f" FROM {source}"
        " GROUP BY GROUPING SETS ((), (line_id), (domain), (date_trunc('hour', attempted_at))))"
        f" SELECT {', '.join(_FUNNEL_COLUMNS[:4])}, "
        + ", ".join(f"coalesce({name}, 0)" for name in _FUNNEL_COLUMNS[4:])
        + " FROM ("
        " SELECT *, row_number() OVER (PARTITION BY grouping ORDER BY contacts DESC, domain) AS rank FROM grouped)"
        f" WHERE grouping <> {BY_DOMAIN} OR rank <= ?"
        " ORDER BY grouping, line_id, rank, hour",
        [top_domains],
    ).fetchall()
    return [FunnelRow(*row) for row in rows]


@dataclass(frozen=True)
class EventHourRow:
    hour: datetime
    opens: int
    human_opens: int
    clicks: int
    human_clicks: int
    unsubscribes: int


def events_by_hour(duck: duckdb.DuckDBPyConnection) -> list[EventHourRow]:
    """Opens, clicks and unsubscribes per hour they happened (UTC), raw and human-only (needs `load_events`)."""
    rows = duck.execute(
        "SELECT date_trunc('hour', occurred_at) AS hour,"
        f" count(*) FILTER (WHERE kind = {OPEN}),"
        f" count(*) FILTER (WHERE kind = {OPEN} AND flag = {HUMAN_FLAG}),"
        f" count(*) FILTER (WHERE kind = {CLICK}),"
        f" count(*) FILTER (WHERE kind = {CLICK} AND flag = {HUMAN_FLAG}),"
        f" count(*) FILTER (WHERE kind = {UNSUBSCRIBE_KIND})"
        " FROM events GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return [EventHourRow(*row) for row in rows]


@dataclass(frozen=True)
class LinkRow:
    idx: int
    clicks: int
    unique_clicks: int
    human_clicks: int
    human_unique_clicks: int


def clicks_by_link(duck: duckdb.DuckDBPyConnection) -> list[LinkRow]:
    """Clicks per tracked link number, raw and human-only, total and unique (needs `load_events`)."""
    rows = duck.execute(
        "SELECT link_idx, sum(clicks), count(*), sum(human_clicks), count(*) FILTER (WHERE human_clicks > 0)"
        " FROM (SELECT link_idx, contact_id, count(*) AS clicks,"
        f" count(*) FILTER (WHERE flag = {HUMAN_FLAG}) AS human_clicks"
        f" FROM events WHERE kind = {CLICK} AND link_idx IS NOT NULL GROUP BY link_idx, contact_id)"
        " GROUP BY link_idx ORDER BY link_idx"
    ).fetchall()
    return [LinkRow(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4])) for row in rows]
