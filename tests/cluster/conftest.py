"""Fixtures of the cluster tests: the fault scenarios' own servers (tests/faults/fixtures.py),
a RabbitMQ vhost of their own on the machine's broker, and Celery workers.

- `broker_url` (session): a fresh vhost on the RabbitMQ of 127.0.0.1:5672, deleted afterwards,
  so parallel test runs never share a queue.
- `contacts_dir` (session): the contact files, in one folder the workers share.
- `fault_env`: the runs' environment with CAMPAIGNS_EXECUTOR=celery on that broker.
- `workers` (session): two workers (`campaign_pipelines.worker`), each a process group of its
  own with two pool processes and only a worker machine's environment, listening before the
  first test starts.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaign_pipelines import execution
from tests.cluster.support import Worker, stop_workers, wait_for_workers, worker_env
from tests.faults.support import OwnRedis

RABBITMQ = "127.0.0.1:5672"
# Two lines at once on each worker: four lines fill the cluster.
WORKER_CONCURRENCY = 2


@pytest.fixture(scope="session")
def database_url(own_database_url: str) -> str:
    return own_database_url


def _rabbitmqctl(*args: str) -> None:
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        pytest.fail("tests/cluster need RabbitMQ on this machine (rabbitmqctl; .ci/run starts rabbitmq-server)")
    done = subprocess.run([rabbitmqctl, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"rabbitmqctl {' '.join(args)} failed:\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    vhost = f"campaigns-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{RABBITMQ}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def fault_env(fault_env: dict[str, str], broker_url: str) -> dict[str, str]:
    return {**fault_env, execution.EXECUTOR_ENV: execution.CELERY, execution.BROKER_ENV: broker_url}


@pytest.fixture(scope="session")
def contacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The contact files' folder every worker reads, as a cluster's shared storage would be."""
    return tmp_path_factory.mktemp("shared_contacts")


@pytest.fixture(scope="session")
def workers(
    own_database_url: str,
    own_redis_server: OwnRedis,
    broker_url: str,
    contacts_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[Worker]]:
    """Started once for the session (a pool process killed by a test is replaced by its worker)."""
    root = tmp_path_factory.mktemp("workers")
    env = worker_env(own_database_url, own_redis_server.url, broker_url, contacts_dir)
    started = [Worker(name, env, root, WORKER_CONCURRENCY) for name in ("worker-a", "worker-b")]
    try:
        wait_for_workers(broker_url, started)
        yield started
    finally:
        stop_workers(started)
