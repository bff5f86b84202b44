"""Report benchmark: `campaign_report` of a large campaign against bare scans of the same tables.

Builds, on a fresh database of the shared server, a campaign of N contacts on two lines (90 % sent,
3 % failed, 1 % unknown, 1 % suppressed, the rest pending; recipients spread over big mailbox
providers and a long tail of company domains; sends spread over 12 hours), E tracking events
(70 % opens, 28 % clicks over 5 links, 2 % unsubscribes; 55 % human, 25 % Apple MPP, 12 % scanner,
8 % prefetch, on a Zipf-like choice of contacts) and N/10 provider events (delivered, bounces,
complaints). Then, in the same run and process:
- bare: `SELECT count(*)` over the contact table, its outcome table and tracking_events (the
  floor: one sequential scan of each table the report reads);
- report: what the `campaign_report` asset does (campaign_pipelines.reports.publish.publish_report),
  twice: while the campaign runs (its minute-by-minute report: the funnels and the HTML file with
  its charts, no per-contact file), then once it is completed (the same and the per-contact Parquet
  files: the worst case, the one `report_s` gives).
The reports are measured after the bare scans, all on a warm cache. The last line is one JSON
object: {"contacts", "events", "report_s" (completed campaign), "vs_bare_scans" (report_s / bare
seconds), "peak_rss_mb" (after both reports)}.
`--compare-reads` also times reading the contacts and events into DuckDB through its postgres
scanner (what the product does) against psycopg's COPY to CSV files that DuckDB loads. Server: DATABASE_URL's, else
127.0.0.1:5432, else embedded.

    python bench/report_bench.py --contacts 1000000 --events 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from _database import checkpoint, scratch_database
from psycopg import sql

from campaign_pipelines import campaigns, servers, templates
from campaign_pipelines.reports.publish import publish_report
from campaign_pipelines.store.connection import connect
from campaign_pipelines.store.contacts import contact_table, create_contact_table, create_send_indexes, outcome_table
from campaign_pipelines.store.tracking import save_links

_LINKS = [f"https://shop.example.com/bf/{name}" for name in ("femme", "homme", "maison", "enfant", "offres")]
_BIG_DOMAINS = ["gmail.com", "orange.fr", "hotmail.fr", "yahoo.fr", "free.fr", "outlook.com", "icloud.com", "sfr.fr"]
_TAIL_DOMAINS = 20_000


def _populate(url: str, contacts: int, events: int) -> int:
    """The synthetic campaign, written by PostgreSQL itself (generate_series): its id."""
    with connect(url) as conn:
        servers.add_server(conn, servers.ServerSpec(name="bench", provider="sandbox"))
        templates.save_template(conn, "bench", "<p>Bonjour</p>")
        campaign_id = campaigns.create_campaign(conn, name="bench", subject="bench", template="bench")
        conn.execute(
            "INSERT INTO campaign_channels (campaign_id, position, sender_name, sender_email, server_id)"
            " SELECT %s, p, 'Bench ' || p, 'bench' || p || '@example.com', id"
            " FROM servers, generate_series(1, 2) AS p WHERE name = 'bench'",
            (campaign_id,),
        )
        line_ids = [row[0] for row in conn.execute("SELECT id FROM campaign_channels ORDER BY position")]
        conn.execute(
            "UPDATE campaigns SET status = 'running', started_at = now() - interval '12 hours',"
            " nbre_contacts = %s WHERE id = %s",
            (contacts, campaign_id),
        )
        create_contact_table(conn, campaign_id)
        table = contact_table(campaign_id)
        # Statuses by hash bucket of the id: 90 % sent, 3 failed, 1 unknown, 1 suppressed, 5 pending.
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (email, attributes)"
                " SELECT 'user' || i || '@' || CASE WHEN i %% 10 < 7 THEN (%s::text[])[1 + i %% 8]"
                "  ELSE 'company' || (i * 7919) %% %s || '.fr' END,"
                ' \'{{"first_name": "Alice", "city": "Paris"}}\''
                " FROM generate_series(1::bigint, %s) AS i"
            ).format(table),
            (_BIG_DOMAINS, _TAIL_DOMAINS, contacts),
        )
        # The outcomes sending appended, by id order; the 5 % left have none (pending).
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (contact_id, line_id, status, at)"
                " SELECT i, (%s::bigint[])[1 + i %% 2],"
                " CASE WHEN b < 90 THEN 2 WHEN b < 93 THEN 3 WHEN b < 94 THEN 4 ELSE 5 END,"
                " now() - make_interval(secs => 43200.0 * i / %s)"
                " FROM (SELECT i, (i * 2654435761) %% 100 AS b FROM generate_series(1::bigint, %s) AS i) g WHERE b < 95"
            ).format(outcome_table(campaign_id)),
            (line_ids, contacts, contacts),
        )
        save_links(conn, campaign_id, _LINKS)
        create_send_indexes(conn, campaign_id)
        # Events on sent contacts only, a few contacts opening many times (power of a uniform draw).
        conn.execute(
            "INSERT INTO tracking_events (campaign_id, contact_id, kind, link_idx, flag, occurred_at, ip, user_agent)"
            " SELECT %(campaign)s, 1 + floor(%(contacts)s * power(random(), 1.6))::bigint, kind,"
            " CASE WHEN kind = 2 THEN floor(random() * 5)::int END,"
            " CASE WHEN f < 55 THEN 0 WHEN f < 80 THEN 1 WHEN f < 92 THEN 2 ELSE 3 END,"
            " now() - make_interval(secs => random() * 43200), '203.0.113.7',"
            " 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)'"
            " FROM (SELECT CASE WHEN r < 0.70 THEN 1 WHEN r < 0.98 THEN 2 ELSE 3 END AS kind, f"
            " FROM (SELECT random() AS r, floor(random() * 100) AS f FROM generate_series(1, %(events)s)) d) k",
            {"campaign": campaign_id, "contacts": contacts, "events": events},
        )
        conn.execute(
            "INSERT INTO delivery_events (provider, event_id, campaign_id, contact_id, email, event, occurred_at)"
            " SELECT 'brevo', 'e' || i, %(campaign)s, i * 10, 'user' || i * 10 || '@example.com',"
            " CASE WHEN i %% 100 < 94 THEN 'delivered' WHEN i %% 100 < 96 THEN 'hard_bounce'"
            " WHEN i %% 100 < 99 THEN 'soft_bounce' ELSE 'complaint' END, now()"
            " FROM generate_series(1::bigint, %(n)s) AS i",
            {"campaign": campaign_id, "n": contacts // 10},
        )
        conn.execute("VACUUM ANALYZE tracking_events")
        conn.execute("VACUUM ANALYZE delivery_events")
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(table))
    return campaign_id


def _bare_scans(url: str, campaign_id: int) -> float:
    with connect(url) as conn:
        # Sequential scans, as asked: on its own the planner counts the contacts off the primary key's
        # index (an index-only scan), which reads a fifth of the pages the report must read.
        conn.execute("SET enable_indexonlyscan = off")
        conn.execute("SET enable_indexscan = off")
        conn.execute("SET enable_bitmapscan = off")
        started = time.perf_counter()
        conn.execute(sql.SQL("SELECT count(*) FROM {}").format(contact_table(campaign_id))).fetchone()
        conn.execute(sql.SQL("SELECT count(*) FROM {}").format(outcome_table(campaign_id))).fetchone()
        conn.execute("SELECT count(*) FROM tracking_events").fetchone()
        return time.perf_counter() - started


def _report(url: str, campaign_id: int, folder: Path, status: str) -> float:
    with connect(url) as conn:
        conn.execute("UPDATE campaigns SET status = %s WHERE id = %s", (status, campaign_id))
    started = time.perf_counter()
    published = publish_report(url, campaign_id, folder)
    elapsed = time.perf_counter() - started
    assert (published.outcomes is not None) == (status != "running"), published
    return elapsed


def _reads(url: str, campaign_id: int, folder: Path) -> tuple[float, float]:
    """What the report reads: the contacts' and events' columns into DuckDB tables, through
    DuckDB's postgres scanner (what the product does, slice by slice) and through psycopg's COPY
    to CSV files DuckDB then loads. Returns (scanner s, COPY s)."""
    from campaign_pipelines.store.duck import duckdb_over, in_postgres

    queries = {
        "contacts": sql.SQL(
            "SELECT c.id, c.email, o.line_id, o.status, o.at FROM {} c LEFT JOIN {} o ON o.contact_id = c.id"
        ).format(contact_table(campaign_id), outcome_table(campaign_id)),
        "events": sql.SQL(
            "SELECT contact_id, kind, link_idx, flag, occurred_at AT TIME ZONE 'UTC' FROM tracking_events"
            " WHERE campaign_id = {}"
        ).format(sql.Literal(campaign_id)),
    }
    started = time.perf_counter()
    with duckdb_over(url, folder) as duck:
        for name, query in queries.items():
            duck.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM {in_postgres(query)}")
    scanner_s = time.perf_counter() - started

    started = time.perf_counter()
    with connect(url) as conn, duckdb.connect() as duck:
        for name, query in queries.items():
            path = folder / f"{name}.csv"
            with conn.cursor() as cur, path.open("wb") as out:
                with cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)) as copy:
                    for chunk in copy:
                        out.write(chunk)
            duck.execute(f"CREATE TABLE {name} AS SELECT * FROM read_csv('{path}', header = false)")
    return scanner_s, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts (default 1,000,000)")
    parser.add_argument("--events", type=int, default=1_000_000, help="tracking events (default 1,000,000)")
    parser.add_argument(
        "--compare-reads", action="store_true", help="also time DuckDB's postgres scanner against psycopg's COPY"
    )
    args = parser.parse_args()

    with scratch_database() as url, tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        campaign_id = _populate(url, args.contacts, args.events)
        print(f"generated in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        checkpoint(url)
        _bare_scans(url, campaign_id)  # warms the cache for both measurements
        bare_s = _bare_scans(url, campaign_id)
        running_s = _report(url, campaign_id, Path(tmp), "running")
        report_s = _report(url, campaign_id, Path(tmp), "completed")
        # Before the comparison below, which holds both tables in memory on purpose.
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"bare scans {bare_s:.2f} s; report of the running campaign (no Parquet) {running_s:.2f} s"
            f" ({running_s / bare_s:.1f}x); of the completed campaign (with Parquet) {report_s:.2f} s",
            file=sys.stderr,
        )
        if args.compare_reads:
            scanner_s, copy_s = _reads(url, campaign_id, Path(tmp))
            print(
                f"contacts and events into DuckDB: postgres scanner {scanner_s:.2f} s, psycopg COPY {copy_s:.2f} s",
                file=sys.stderr,
            )
    print(
        json.dumps(
            {
                "contacts": args.contacts,
                "events": args.events,
                "report_s": round(report_s, 2),
                "vs_bare_scans": round(report_s / bare_s, 2),
                "peak_rss_mb": round(peak_rss_mb, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
