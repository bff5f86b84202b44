"""A scratch database for one benchmark measurement, on the server the benchmarks share.

The server is DATABASE_URL's, else the one on 127.0.0.1:5432, else an embedded PostgreSQL.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from campaign_pipelines.settings import start_embedded_postgres, with_database
from campaign_pipelines.store.connection import ensure_schema


def _server_url() -> str:
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        with psycopg.connect(url, connect_timeout=3):
            return url
    except psycopg.OperationalError:
        return start_embedded_postgres(Path(tempfile.mkdtemp()) / "pgdata").get_uri()


def checkpoint(url: str) -> None:
    """Called right before a measurement: a checkpoint falling inside it (every 1 GB of WAL by
    default) would cost it full-page images and disk writes, at random."""
    with psycopg.connect(url, autocommit=True) as admin:
        try:
            admin.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass  # a server we may not checkpoint: measurements are only noisier


@contextmanager
def scratch_database() -> Iterator[str]:
    """A new, migrated database's URL; dropped when the block ends."""
    server_url = _server_url()
    name = f"cp_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = with_database(server_url, name)
        ensure_schema(url)
        checkpoint(url)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
