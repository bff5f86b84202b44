"""Scale benchmark: one campaign end to end at several sizes (1M, 3M, 10M contacts by default).

For each size N, on a fresh database of the shared server, each phase in a fresh process:
- import: the `campaign_contacts` import (import_campaign) of an NDJSON file of N contacts;
- send: the launch (its send indexes) and one Brevo line (1000 messages a call, its batch limit)
  through the fake providers served by uvicorn in another process, all bookkeeping included, no
  quota (bench/send_bench.py's line);
- report: `publish_report` of the completed campaign (funnels, HTML, per-contact Parquet files).
Per phase: seconds, contacts per second, the process's peak RSS and the WAL it wrote; after each,
the contact and outcome tables' bytes (heap, indexes) per contact. The table printed last gives each figure
against N; the last line is one JSON object: {"sizes": [...], "phases": {phase: [{...} per size]},
"bytes_per_contact": [...]} for docs/scaling.md. Measure on a quiet machine.
Server: DATABASE_URL's, else 127.0.0.1:5432, else embedded.

    python bench/scale_bench.py --sizes 1000000 3000000 10000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _database import checkpoint, scratch_database
from psycopg import sql
from send_bench import configured_campaign, fakes_process, generate, launched_line, provider_urls, send_line

from campaign_pipelines.contacts.campaign_import import import_campaign
from campaign_pipelines.reports.publish import publish_report
from campaign_pipelines.store.connection import connect
from campaign_pipelines.store.contacts import contact_table, outcome_table

_PROVIDER = "brevo"


def _wal_bytes(url: str) -> int:
    with connect(url) as conn:
        row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetchone()
        assert row is not None
        return int(row[0])


def _table_bytes(url: str, campaign_id: int) -> dict[str, int]:
    """Bytes of the campaign's contact and outcome tables together (heap with TOAST, indexes), and its contacts."""
    tables = [sql.Literal(t.as_string()) for t in (contact_table(campaign_id), outcome_table(campaign_id))]
    with connect(url) as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT sum(pg_table_size(t::regclass)), sum(pg_indexes_size(t::regclass)), (SELECT count(*) FROM {n})"
                " FROM unnest(ARRAY[{tables}]) AS t"
            ).format(tables=sql.SQL(", ").join(tables), n=contact_table(campaign_id))
        ).fetchone()
    assert row is not None
    return {"heap": int(row[0]), "indexes": int(row[1]), "rows": int(row[2])}


def _phase(name: str, url: str, path: Path, campaign_id: int, base: str) -> dict:
    """Child: one phase, timed; its figures as a dict."""
    wal_before = _wal_bytes(url)
    started = time.perf_counter()
    if name == "import":
        import_campaign(lambda: connect(url), campaign_id, path.parent)
        contacts = _table_bytes(url, campaign_id)["rows"]
    elif name == "send":
        contacts = send_line(url, campaign_id, launched_line(url, campaign_id))["emails"]
    else:
        folder = path.parent / "reports"
        with connect(url) as conn:
            conn.execute("UPDATE campaigns SET status = 'completed' WHERE id = %s", (campaign_id,))
        contacts = publish_report(url, campaign_id, folder).report.totals.contacts
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "per_s": round(contacts / seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "wal_bytes_per_contact": round((_wal_bytes(url) - wal_before) / max(contacts, 1), 1),
    }


def _run_phase(name: str, url: str, path: Path, campaign_id: int, base: str) -> dict:
    checkpoint(url)
    out = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--url", url, "--file", str(path)]
        + ["--campaign", str(campaign_id), "--fakes", base],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _size(n: int, tmp: Path) -> tuple[dict[str, dict], dict[str, float]]:
    path = tmp / f"n{n}" / "contacts.ndjson"
    path.parent.mkdir()
    generate(path, n)
    phases: dict[str, dict] = {}
    sizes: dict[str, float] = {}
    with scratch_database() as url, fakes_process() as base:
        campaign_id = configured_campaign(url, path, _PROVIDER, provider_urls(base)[_PROVIDER], None)
        phases["import"] = _run_phase("import", url, path, campaign_id, base)
        imported = _table_bytes(url, campaign_id)
        phases["send"] = _run_phase("send", url, path, campaign_id, base)
        sent = _table_bytes(url, campaign_id)
        phases["report"] = _run_phase("report", url, path, campaign_id, base)
        parquet = sum(
            part.stat().st_size
            for part in (path.parent / "reports" / f"campaign-{campaign_id}").glob("outcomes/*.parquet")
        )
        sizes = {
            "heap_after_import": imported["heap"] / n,
            "indexes_after_import": imported["indexes"] / n,
            "heap_after_send": sent["heap"] / n,
            "indexes_after_send": sent["indexes"] / n,
            "parquet": parquet / n,
        }
    path.unlink()
    return phases, {k: round(v, 1) for k, v in sizes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--phase", choices=["import", "send", "report"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--campaign", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--fakes", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(_phase(args.phase, args.url, args.file, args.campaign, args.fakes)))
        return

    results = {"sizes": args.sizes, "phases": {"import": [], "send": [], "report": []}, "bytes_per_contact": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            phases, sizes = _size(n, Path(tmp))
            for name, figures in phases.items():
                results["phases"][name].append(figures)
                print(f"{n:>12,} {name:>7}: {json.dumps(figures)}", file=sys.stderr)
            results["bytes_per_contact"].append(sizes)
            print(f"{n:>12,} bytes per contact: {json.dumps(sizes)}", file=sys.stderr)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
