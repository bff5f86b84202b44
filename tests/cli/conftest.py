"""Fixtures of the CLI tests: `campaigns` run in-process on the test database, the seed's campaign at each step."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from campaign_pipelines import cli
from tests.cli.support import configure_seed


@pytest.fixture
def run(database_url: str, capsys: pytest.CaptureFixture[str]):
    """Runs `campaigns --database-url <test db> ARGS...`: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = cli.main(["--database-url", database_url, *args])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(autouse=True)
def plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """`watch` draws with Rich: an 80-column file without colours, whatever the terminal running the tests."""
    monkeypatch.setenv("COLUMNS", "80")
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def imported(db: psycopg.Connection, run, draft: int, seed_files: Path) -> int:
    """The Black Friday campaign, configured with its two lines and its 7 contacts imported."""
    assert configure_seed(run, draft, seed_files, "--import-now")[0] == 0
    return draft


@pytest.fixture
def launched(db: psycopg.Connection, run, imported: int) -> int:
    assert run("campaign", "launch", str(imported))[0] == 0
    return imported
