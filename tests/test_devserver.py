"""`make dev` end to end: embedded PostgreSQL, Dagster UI and tracking app start, Ctrl-C stops all, data stays."""

from __future__ import annotations

import importlib.util
import re
import signal
import subprocess
from pathlib import Path

import psutil
import psycopg
import pytest

from campaign_pipelines import devserver
from tests.devserver_process import STOP_TIMEOUT_SECONDS, ensure_stopped, free_port, start, wait_until_up


def _interrupt(process: subprocess.Popen, log: Path) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"devserver still running {STOP_TIMEOUT_SECONDS} s after SIGINT:\n{log.read_text()}")


def _leftovers(home: Path) -> list[str]:
    """Live processes started for this CAMPAIGNS_HOME: postgres names its data dir, the others inherit the env."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(process.cmdline())
            environ = process.environ()
        except psutil.Error:
            continue
        if str(home) in command or environ.get("CAMPAIGNS_HOME") == str(home):
            found.append(f"{process.pid}: {command[:120]}")
    return found


@pytest.mark.slow
def test_make_dev_starts_stops_on_ctrl_c_and_keeps_data(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dagster_port, tracking_port = free_port(), free_port()
    urls = [f"http://127.0.0.1:{dagster_port}/server_info", f"http://127.0.0.1:{tracking_port}/healthz"]

    first_log = tmp_path / "first.log"
    process = start(home, first_log, dagster_port, tracking_port)
    try:
        wait_until_up(process, first_log, urls)
        database_url = re.search(r"DATABASE_URL=(\S+)", first_log.read_text()).group(1)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE devserver_marker (note text)")
            conn.execute("INSERT INTO devserver_marker VALUES ('kept')")
            # The demo the README's tour needs is there from the first start.
            assert conn.execute("SELECT name, provider, url FROM servers").fetchall() == [
                ("sandbox", "sandbox", f"file:{home / 'outbox'}")
            ]
            assert conn.execute("SELECT name FROM templates").fetchall() == [("Black Friday",)]
        assert (home / "contacts" / "demo_contacts.json").is_file()
        assert first_log.read_text().count("(created)") == 3
        assert _interrupt(process, first_log) == 0, first_log.read_text()
    finally:
        ensure_stopped(process)
    assert _leftovers(home) == []

    second_log = tmp_path / "second.log"
    process = start(home, second_log, dagster_port, tracking_port)
    try:
        wait_until_up(process, second_log, urls)
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT note FROM devserver_marker").fetchall() == [("kept",)]
        assert "schema up to date" in second_log.read_text()
        assert second_log.read_text().count("(already there, left as it is)") == 3
        assert _interrupt(process, second_log) == 0, second_log.read_text()
    finally:
        ensure_stopped(process)
    assert _leftovers(home) == []


def test_our_bytecode_is_written_even_where_python_writes_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PYTHONDONTWRITEBYTECODE would have every run worker compile the code location again."""
    sources = []
    for package in ("campaign_pipelines", "tracking_app"):
        (tmp_path / package / "sub").mkdir(parents=True)
        sources += [tmp_path / package / "__init__.py", tmp_path / package / "sub" / "module.py"]
    for source in sources:
        source.write_text("VALUE = 1\n")
    monkeypatch.setattr(devserver, "REPO", tmp_path)
    monkeypatch.setattr("sys.dont_write_bytecode", True)

    devserver._compile_bytecode()

    assert [source for source in sources if not Path(importlib.util.cache_from_source(str(source))).is_file()] == []
