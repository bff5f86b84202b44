"""`campaigns` itself (cli/__init__.py): help at every level, the console script, a closed pipe, the database URL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from campaign_pipelines import cli
from campaign_pipelines.store import catalog


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["server"],
        ["server", "add"],
        ["server", "update"],
        ["server", "list"],
        ["server", "disable"],
        ["server", "enable"],
        ["template"],
        ["template", "add"],
        ["template", "list"],
        ["campaign"],
        ["campaign", "create"],
        ["campaign", "configure"],
        ["campaign", "list"],
        ["campaign", "status"],
        ["campaign", "report"],
        ["campaign", "launch"],
        ["campaign", "pause"],
        ["campaign", "resume"],
        ["campaign", "cancel"],
        ["campaign", "resend-unknown"],
        ["campaign", "watch"],
        ["blacklist"],
        ["blacklist", "list"],
        ["blacklist", "add"],
        ["blacklist", "remove"],
        ["blacklist", "export"],
    ],
)
def test_help_exits_0_at_every_level(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: campaigns {' '.join(command)}".rstrip())
    assert "show this help message" in out


def test_help_documents_the_database_url_and_the_channel_fields(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "DATABASE_URL environment variable" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["campaign", "configure", "--help"])
    out = capsys.readouterr().out
    for key in ("sender_name", "sender_email", "server", "send_frequency_minutes", "max_daily_sends", "scheduled_at"):
        assert f"  {key} " in out


def test_console_script_help_runs() -> None:
    script = Path(sys.executable).with_name("campaigns")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: campaigns")
    assert "campaign" in result.stdout and "template" in result.stdout and "server" in result.stdout


def test_output_cut_short_by_its_reader_ends_quietly(database_url: str) -> None:
    script = Path(sys.executable).with_name("campaigns")
    command = [str(script), "--database-url", database_url, "server", "list"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        assert child.stdout is not None and child.stderr is not None
        child.stdout.close()  # as `| head -0`: the reader is gone before anything is written
        err = child.stderr.read().decode()
    assert child.returncode == 1
    assert err == ""


def test_a_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["server"])
    assert exit_.value.code == 2
    assert "usage: campaigns server" in capsys.readouterr().err


def test_an_unreachable_database_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--database-url", "postgresql://postgres@127.0.0.1:1/none", "server", "list"])
    assert code == 1
    assert "cannot reach the campaign database" in capsys.readouterr().err


def test_the_database_url_comes_from_the_environment(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert cli.main(["template", "add", "hello", "--html", "<p>hi</p>"]) == 0
    assert catalog.template_by_name(db, "hello") is not None
