"""Celery workers for the cluster tests: separate processes with an environment of their own.

A worker gets the environment it is given and nothing else (the conftest gives what a worker
machine is given in docs/deploy.md: the campaign database, Redis, the broker, the providers'
keys and tracking settings; no DAGSTER_HOME), its own HOME and working directory. The steps
it ran say so in their events: dagster-celery's "Executing steps … in celery worker" names
the worker, STEP_START its pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import amqp
import dagster as dg
import kombu
import psutil

from campaign_pipelines import execution
from tests.fakes.providers import DEFAULT_KEYS
from tests.faults.fixtures import TRACKING_BASE_URL, TRACKING_SECRET
from tests.faults.support import wait_for

_STOP_TIMEOUT_S = 30.0


class Worker:
    """`python -m campaign_pipelines.worker` as a machine of the cluster would run it, with `env` alone."""

    def __init__(self, name: str, env: Mapping[str, str], root: Path, concurrency: int) -> None:
        self.name = name
        self.root = root / name
        self.root.mkdir()
        self.log = self.root / "worker.log"
        own_env = {**env, "HOME": str(self.root), "TMPDIR": str(self.root)}
        command = [sys.executable, "-m", "campaign_pipelines.worker", "--name", name]
        command += ["--concurrency", str(concurrency), "--loglevel", "INFO"]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=self.root, env=own_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def children(self) -> set[int]:
        """The pids of its pool processes, which run the steps."""
        return {child.pid for child in psutil.Process(self.process.pid).children(recursive=True)}


def worker_env(database_url: str, redis_url: str, broker_url: str, contacts_dir: Path) -> dict[str, str]:
    """What a worker machine is given (docs/deploy.md): the campaign database, Redis, the broker,
    the shared contact files, tracking settings and the providers' keys."""
    return {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CONTACTS_DIR": str(contacts_dir),
        "TRACKING_BASE_URL": TRACKING_BASE_URL,
        "TRACKING_SECRET": TRACKING_SECRET,
        execution.BROKER_ENV: broker_url,
        **{f"{provider.upper()}_API_KEY": key for provider, key in DEFAULT_KEYS.items()},
    }


def stop_workers(workers: list[Worker]) -> None:
    """Warm shutdown of all at once (a few seconds each), SIGKILL of any that does not go."""
    running = [worker for worker in workers if worker.process.poll() is None]
    for worker in running:
        os.killpg(worker.process.pid, signal.SIGTERM)
    for worker in running:
        try:
            worker.process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(worker.process.pid, signal.SIGKILL)
            worker.process.wait(timeout=_STOP_TIMEOUT_S)


def consumers(broker_url: str) -> int:
    """Workers listening on the step queue of the broker (0 before the first one declared it)."""
    with kombu.Connection(broker_url, connect_timeout=3) as connection:
        try:
            _, _, count = connection.default_channel.queue_declare(execution.STEP_QUEUE, passive=True)
        except amqp.exceptions.NotFound:  # no worker declared it yet
            return 0
    return count


def wait_for_workers(broker_url: str, workers: list[Worker], timeout_s: float = 60.0) -> None:
    def ready() -> bool:
        for worker in workers:
            if worker.process.poll() is not None:
                raise AssertionError(f"worker {worker.name} exited:\n{worker.log.read_text()[-3000:]}")
        return consumers(broker_url) == len(workers)

    wait_for(ready, f"{len(workers)} Celery workers on the broker", timeout_s, every_s=0.2)


def step_workers(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Step key -> the Celery worker (name@host) that ran it, from dagster-celery's engine events."""
    found: dict[str, str] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        metadata = event.engine_event_data.metadata if event.engine_event_data else {}
        worker = metadata.get("Celery worker")
        if worker is not None:
            found[event.step_key] = str(worker.value)
    return found
