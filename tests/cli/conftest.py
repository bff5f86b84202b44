"""Fixtures of the CLI tests: `campaigns` run in-process on the test database, the seed's campaign at each step."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from campaign_pipelines import cli
from campaign_pipelines.store import campaigns as campaign_sql
from tests.cli.support import (
    BREVO,
    BREVO_KEY,
    SEED_CONTACTS,
    SENDGRID,
    SENDGRID_KEY,
    configure_seed,
)


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
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BREVO_API_KEY", BREVO_KEY)
    monkeypatch.setenv("SENDGRID_API_KEY", SENDGRID_KEY)


@pytest.fixture
def seed_files(contacts_dir: Path) -> Path:
    for name in ("nouveaux_inscrits.json", "clients_vip.json"):
        shutil.copy(SEED_CONTACTS / name, contacts_dir / name)
    return contacts_dir


@pytest.fixture
def draft(db: psycopg.Connection, run, keys: None) -> int:
    """The seed's two servers, a template and the Black Friday campaign as a draft."""
    assert run("server", "add", BREVO, "--provider", "brevo", "--api-key-env", "BREVO_API_KEY")[0] == 0
    assert run("server", "add", SENDGRID, "--provider", "sendgrid", "--api-key-env", "SENDGRID_API_KEY")[0] == 0
    assert run("template", "add", "promo", "--html", "<p>Bonjour {{ first_name }}</p>")[0] == 0
    code, out, _ = run(
        "campaign",
        "create",
        "--name",
        "Black Friday 2025 - Ventes Flash",
        "--subject",
        "⚡ Offres Exclusives : Jusqu'à -70% !",
        "--template",
        "promo",
    )
    assert code == 0
    (campaign,) = campaign_sql.list_campaigns(db)
    assert out.startswith(f"campaign {campaign.id} created (draft)\n")
    return campaign.id


@pytest.fixture
def imported(db: psycopg.Connection, run, draft: int, seed_files: Path) -> int:
    """The Black Friday campaign, configured with its two lines and its 7 contacts imported."""
    assert configure_seed(run, draft, seed_files, "--import-now")[0] == 0
    return draft


@pytest.fixture
def launched(db: psycopg.Connection, run, imported: int) -> int:
    assert run("campaign", "launch", str(imported))[0] == 0
    return imported
