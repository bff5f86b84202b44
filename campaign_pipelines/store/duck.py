"""A DuckDB session over the campaign database (its postgres scanner, attached read-only as `pg`),
for the SQL of reports (store.outcomes)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    import duckdb

# DuckDB's own memory; past it, joins and aggregates spill to `temp_directory`. One thread: on the
# 2-core bench machine a second one was no faster (PostgreSQL streams on the other core) and took
# 30-40 MB more (report of 1M contacts: peak RSS about 280 MB against 310-330 MB with 2 threads
# and 160 MB; 100 MB with 2 threads ran out of memory folding the events).
_MEMORY_LIMIT = "128MB"
_THREADS = 1
# Every PostgreSQL session DuckDB opens: read-only, no JIT (it compiled for 13 s a query that runs
# in 3), and no hash join: a slice's contacts join their outcomes on both primary keys, which a
# merge join streams in 0.28 s per million where a hash of the outcomes took 1.0 s, spilling.
_SESSION_OPTIONS = "-c default_transaction_read_only=on -c jit=off -c lock_timeout=5s -c enable_hashjoin=off"
_EXTENSION = "postgres_scanner.duckdb_extension"


def _extension_path() -> Path:
    """The postgres scanner shipped by the duckdb-ext-postgres wheel (no download at run time)."""
    import duckdb_ext  # the wheel's namespace package

    for folder in duckdb_ext.__path__:
        found = sorted(Path(folder).rglob(_EXTENSION))
        if found:
            return found[0]
    raise RuntimeError(f"DuckDB's postgres scanner ({_EXTENSION}) is missing: reinstall duckdb-ext-postgres")


def literal(text: str) -> str:
    """`text` as a DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def duckdb_over(database_url: str, temp_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB with the campaign database attached read-only as `pg`."""
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    info["options"] = f"{info.get('options', '')} {_SESSION_OPTIONS}".strip()
    # Here, not at the top: every run worker imports this module with the Definitions, and only
    # the report's runs need DuckDB (about 80 ms of each admin form's run start).
    import duckdb

    duck = duckdb.connect(config={"memory_limit": _MEMORY_LIMIT, "threads": _THREADS})
    try:
        duck.execute(f"SET temp_directory = {literal(str(temp_dir))}")
        duck.execute("SET preserve_insertion_order = false")
        duck.execute("SET enable_progress_bar = false")
        duck.execute(f"LOAD {literal(str(_extension_path()))}")
        # A slice of contacts is one range scan of the primary key, not a scan of every page filtered.
        duck.execute("SET pg_use_ctid_scan = false")
        # Joins build their hash table on the side written on the right (the folded events), never
        # on the contacts: DuckDB's guess of a PostgreSQL scan's size can be 0 and, trusting it, it
        # held a slice's contacts and their addresses in memory (out of its 128 MB at 1M contacts).
        duck.execute("SET disabled_optimizers = 'build_side_probe_side'")
        duck.execute(f"ATTACH {literal(psycopg.conninfo.make_conninfo(**info))} AS pg (TYPE postgres, READ_ONLY)")
        yield duck
    finally:
        duck.close()


def in_postgres(query: sql.Composable) -> str:
    """DuckDB's call running `query` in PostgreSQL, streaming its rows."""
    return f"postgres_query('pg', {literal(query.as_string())})"
