"""Fixtures of the fault scenarios (issue 10) and the cluster tests: servers these tests own, so
they may kill them. Loaded by tests/conftest.py; nothing starts unless a test asks for it.

- `own_pg` (session): an embedded PostgreSQL on its own port; `own_database_url` is its
  `campaigns` database, which tests/faults and tests/cluster make their `database_url`, so
  `db`, `make_campaign` and every run use it. `pg` hands it to a test that kills it and has it
  running again afterwards.
- `own_redis`: a redis-server of the session on its own port, emptied before each test (line
  ids repeat from test to test) and running again after one that killed it.
- `own_broker` (session): a RabbitMQ node of its own (never the machine's on 5672); `broker`
  hands it to a test that stops it and has it running again afterwards.
- `faults_dagster_home` / `dagster_instance` (session): Dagster's storage on the shared PostgreSQL,
  never on `own_pg`, so killing that one leaves Dagster's bookkeeping whole.
- `fault_env`: the environment of every Dagster process (own servers, keys, tracking).
- `strict_fake`: the provider fakes on a socket, ignoring idempotency keys: every accepted
  request's recipients are logged, replays included, so a duplicate shows in its log.
- `runs`: starts real Dagster runs (support.Runs); whatever a test leaves running is killed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from campaign_pipelines.settings import ensure_database, with_database
from campaign_pipelines.store.connection import ensure_schema
from tests.fakes.providers import DEFAULT_KEYS, FakeProviders
from tests.fakes.server import FakeServer, running_fakes
from tests.faults.support import OwnPostgres, OwnRabbitMQ, OwnRedis, Runs
from tests.support import dagster_home_in

TRACKING_BASE_URL = "https://t.example.com"
TRACKING_SECRET = "faults-secret"


@pytest.fixture(scope="session")
def own_pg() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def own_database_url(own_pg: OwnPostgres) -> str:
    """The campaign database on `own_pg` (a folder's conftest makes it its `database_url`)."""
    ensure_database(own_pg.url, "campaigns")
    url = with_database(own_pg.url, "campaigns")
    ensure_schema(url)
    return url


@pytest.fixture
def pg(own_pg: OwnPostgres) -> Iterator[OwnPostgres]:
    """`own_pg` for a test that kills it: running again once the test is over, whatever happened."""
    yield own_pg
    own_pg.ensure_running()


@pytest.fixture(scope="session")
def own_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path_factory.mktemp("own_redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(own_redis_server: OwnRedis) -> Iterator[OwnRedis]:
    own_redis_server.ensure_running()
    own_redis_server.flush()
    yield own_redis_server
    own_redis_server.ensure_running()


@pytest.fixture(scope="session")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRabbitMQ]:
    broker = OwnRabbitMQ(tmp_path_factory.mktemp("own_rabbitmq"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def broker(own_broker: OwnRabbitMQ) -> Iterator[OwnRabbitMQ]:
    """`own_broker` for a test that stops it: running again once the test is over."""
    yield own_broker
    own_broker.ensure_running()


@pytest.fixture(scope="session")
def faults_dagster_home(tmp_path_factory: pytest.TempPathFactory, pg_server_url: str) -> Iterator[Path]:
    """A DAGSTER_HOME whose runs and events live in a database of the shared PostgreSQL, for the
    whole session (tests/conftest.py's `dagster_home` is one per test)."""
    with dagster_home_in(tmp_path_factory.mktemp("dagster_home"), pg_server_url) as home:
        yield home


@pytest.fixture(scope="session")
def dagster_instance(faults_dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(faults_dagster_home)) as instance:
        yield instance


@pytest.fixture
def fault_env(faults_dagster_home: Path, database_url: str, own_redis: OwnRedis, contacts_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(faults_dagster_home),
        "DATABASE_URL": database_url,
        "REDIS_URL": own_redis.url,
        "CONTACTS_DIR": str(contacts_dir),
        "TRACKING_BASE_URL": TRACKING_BASE_URL,
        "TRACKING_SECRET": TRACKING_SECRET,
        **{f"{provider.upper()}_API_KEY": key for provider, key in DEFAULT_KEYS.items()},
    }


@pytest.fixture
def strict_fake() -> Iterator[FakeServer]:
    with running_fakes(FakeProviders(honour_idempotency=False)) as server:
        yield server


@pytest.fixture
def runs(
    dagster_instance: dg.DagsterInstance, fault_env: dict[str, str], tmp_path: Path, database_url: str
) -> Iterator[Runs]:
    started = Runs(dagster_instance, fault_env, tmp_path, database_url)
    yield started
    started.reap()
