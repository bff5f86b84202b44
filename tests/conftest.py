"""Shared fixtures: a real PostgreSQL database per test session, emptied before each test, and
the seed's Black Friday campaign as a draft.

The server is TEST_DATABASE_URL (default: the one on 127.0.0.1:5432); when none answers, an
embedded PostgreSQL is started for the session. Each session gets its own database, so
several test runs can share one server.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from campaign_pipelines import campaigns, servers, templates
from campaign_pipelines.settings import start_embedded_postgres, with_database
from campaign_pipelines.store.connection import connect, ensure_schema
from tests.support import (
    BREVO_KEY,
    BREVO_SERVER,
    SEED_CONTACTS,
    SEED_FILES,
    SENDGRID_KEY,
    SENDGRID_SERVER,
    dagster_home_in,
)

# Campaigns with imported contacts, fake providers and a send loop runner, for every test folder;
# servers of their own for the fault and cluster tests (started only when asked for).
pytest_plugins = ["tests.sending.fixtures", "tests.faults.fixtures"]

_DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
_TABLES = (
    "campaign_channels",
    "campaigns",
    "templates",
    "servers",
    "blacklist",
    "daily_counters",
    "tracking_events",
    "delivery_events",
    "webhook_tokens",
)


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL", _DEFAULT_SERVER)
    try:
        with psycopg.connect(url, connect_timeout=3):
            pass
    except psycopg.OperationalError:
        server = start_embedded_postgres(tmp_path_factory.mktemp("pgdata"))
        yield server.get_uri()
        server.cleanup()
        return
    yield url


@pytest.fixture(scope="session")
def database_url(pg_server_url: str) -> Iterator[str]:
    name = f"cp_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(pg_server_url, name)
    ensure_schema(url)
    yield url
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """A database of its own with no table yet, dropped after the test."""
    name = f"cp_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_database(pg_server_url, name)
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to an emptied campaign database."""
    with connect(database_url) as conn:
        contact_tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables"
                " WHERE schemaname = 'public'"
                " AND (tablename LIKE 'contacts\\_campaign\\_%' OR tablename LIKE 'outcomes\\_campaign\\_%')"
            )
        ]
        for table in contact_tables:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(sql.SQL(", ").join(map(sql.Identifier, _TABLES)))
        )
        yield conn


@pytest.fixture
def contacts_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "contacts"
    folder.mkdir()
    return folder


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A throwaway Dagster instance (its own temporary home)."""
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def dagster_home(tmp_path: Path, pg_server_url: str) -> Iterator[Path]:
    """A DAGSTER_HOME whose runs and events live in their own PostgreSQL database, as with `make dev`."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dagster_home_in(home, pg_server_url):
        yield home


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API keys of the seed's two servers, in the variables the servers name."""
    monkeypatch.setenv("BREVO_API_KEY", BREVO_KEY)
    monkeypatch.setenv("SENDGRID_API_KEY", SENDGRID_KEY)


@pytest.fixture
def seed_files(contacts_dir: Path) -> Path:
    """The contacts directory holding the seed's two contact files."""
    for name in SEED_FILES:
        shutil.copy(SEED_CONTACTS / name, contacts_dir / name)
    return contacts_dir


@pytest.fixture
def draft(db: psycopg.Connection, keys: None, seed_files: Path) -> int:
    """The seed's two servers, its two contact files, a template and the Black Friday campaign as a draft."""
    servers.save_server(db, servers.ServerSpec(name=BREVO_SERVER, provider="brevo", api_key_env="BREVO_API_KEY"))
    servers.save_server(
        db, servers.ServerSpec(name=SENDGRID_SERVER, provider="sendgrid", api_key_env="SENDGRID_API_KEY")
    )
    templates.save_template(db, "promo", "<p>Bonjour {{ first_name }}</p>")
    return campaigns.create_campaign(
        db, name="Black Friday 2025 - Ventes Flash", subject="⚡ Offres Exclusives : Jusqu'à -70% !", template="promo"
    )
