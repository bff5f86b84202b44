"""The `campaigns` command, run in-process against the real test database."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql

from campaign_pipelines import cli
from campaign_pipelines.cli import watch as cli_watch
from campaign_pipelines.contacts import campaign_import
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import catalog
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store.contacts import contact_table

SEED_CONTACTS = Path(__file__).resolve().parents[1] / "contacts"
BREVO = "Brevo - Compte Principal"
SENDGRID = "SendGrid - Secours"
BREVO_KEY = "xkeysib-brevo-secret-0123456789"
SENDGRID_KEY = "SG.sendgrid-secret-9876543210"
PROMO_LINE = f"sender_name=L'équipe Promo,sender_email=offres@mondomaine.com,server={BREVO},max_daily_sends=10000"
SUPPORT_LINE = (
    f"sender_name=Le Service Client,sender_email=support@mondomaine.com,server={SENDGRID},"
    "send_frequency_minutes=1,max_daily_sends=5000"
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


def _configure_seed(run, campaign_id: int, contacts_dir: Path, *extra: str) -> tuple[int, str, str]:
    return run(
        "campaign",
        "configure",
        str(campaign_id),
        "--contacts-dir",
        str(contacts_dir),
        "--file",
        "nouveaux_inscrits.json",
        "--file",
        "clients_vip.json",
        "--channel",
        PROMO_LINE,
        "--channel",
        SUPPORT_LINE,
        *extra,
    )


# --- help --------------------------------------------------------------------------------


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


# --- the seed scenario -------------------------------------------------------------------


def test_seed_scenario_schedules_the_campaign_with_its_two_lines(
    db: psycopg.Connection, run, draft: int, seed_files: Path
) -> None:
    code, out, err = _configure_seed(run, draft, seed_files)

    assert (code, err) == (0, "")
    assert f"campaign {draft} 'Black Friday 2025 - Ventes Flash' scheduled with 2 sending line(s)" in out
    assert "campaign_import_sensor" in out
    campaign = campaign_sql.campaign_by_id(db, draft)
    assert campaign is not None
    assert campaign.status == "scheduled"
    assert campaign.contact_files == ["nouveaux_inscrits.json", "clients_vip.json"]
    assert campaign.nbre_contacts == 0  # the import is left to Dagster
    promo, support = line_sql.lines_of(db, draft)
    assert (promo.sender_name, promo.sender_email, promo.server_name) == (
        "L'équipe Promo",
        "offres@mondomaine.com",
        BREVO,
    )
    assert (promo.send_frequency_minutes, promo.max_daily_sends, promo.scheduled_at) == (None, 10000, None)
    assert (support.sender_name, support.sender_email, support.server_name) == (
        "Le Service Client",
        "support@mondomaine.com",
        SENDGRID,
    )
    assert (support.send_frequency_minutes, support.max_daily_sends) == (1, 5000)


def test_configure_reads_the_contacts_dir_from_the_environment(
    db: psycopg.Connection, run, draft: int, seed_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTACTS_DIR", str(seed_files))
    code, _, err = run("campaign", "configure", str(draft), "--file", "clients_vip.json", "--channel", PROMO_LINE)
    assert (code, err) == (0, "")


def test_import_now_imports_and_reports(db: psycopg.Connection, run, draft: int, seed_files: Path) -> None:
    code, out, err = _configure_seed(run, draft, seed_files, "--import-now")

    assert (code, err) == (0, "")
    assert "records read:      11 from 2 file(s)" in out
    assert "contacts:          7 (0 blacklisted)" in out
    assert "duplicates merged: 2" in out
    assert "invalid:           2 (invalid_email: 1, missing_email: 1)" in out
    assert "records/s" in out
    campaign = campaign_sql.campaign_by_id(db, draft)
    assert campaign is not None
    assert (campaign.status, campaign.nbre_contacts) == ("scheduled", 7)
    assert campaign_sql.campaigns_awaiting_import(db, 10) == []
    # Numbers only: no contact's address or attributes reach the terminal.
    assert "@example" not in out and "Moreau" not in out


def test_a_failed_import_exits_1_and_status_shows_why(
    db: psycopg.Connection, run, draft: int, contacts_dir: Path
) -> None:
    (contacts_dir / "broken.json").write_text('[{"email": "a@example.com"}, {"email": ', encoding="utf-8")

    code, _, err = run(
        "campaign",
        "configure",
        str(draft),
        "--contacts-dir",
        str(contacts_dir),
        "--file",
        "broken.json",
        "--channel",
        PROMO_LINE,
        "--import-now",
    )

    assert code == 1
    assert "contact file 'broken.json' is not valid JSON" in err
    code, out, _ = run("campaign", "status", str(draft))
    assert code == 0
    assert "status:        failed" in out
    assert "error:         contact file 'broken.json' is not valid JSON" in out


def test_an_import_out_of_memory_exits_1_with_the_reason_not_a_traceback(
    db: psycopg.Connection, run, draft: int, seed_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(campaign_import, "import_contact_files", out_of_memory)
    code, _, err = _configure_seed(run, draft, seed_files, "--import-now")

    assert code == 1
    assert err == f"error: campaign {draft}: 1 problem(s)\n  - the contact import failed: MemoryError\n"
    assert campaign_sql.campaign_by_id(db, draft).error == "MemoryError"


def test_configure_from_a_config_file(
    db: psycopg.Connection, run, draft: int, seed_files: Path, tmp_path: Path
) -> None:
    config = tmp_path / "black-friday.json"
    config.write_text(
        json.dumps(
            {
                "contact_files": ["clients_vip.json"],
                "channels": [
                    {"sender_name": "L'équipe Promo", "sender_email": "offres@mondomaine.com", "server": BREVO},
                    {
                        "sender_name": "Le Service Client",
                        "sender_email": "support@mondomaine.com",
                        "server": SENDGRID,
                        "send_frequency_minutes": 1.5,
                        "max_daily_sends": 5000,
                        "scheduled_at": "2025-11-28T08:00:00+01:00",
                    },
                ],
            }
        ),
        encoding="utf-8",
    )

    code, _, err = run("campaign", "configure", str(draft), "--contacts-dir", str(seed_files), "--config", str(config))

    assert (code, err) == (0, "")
    campaign = campaign_sql.campaign_by_id(db, draft)
    assert campaign is not None and campaign.contact_files == ["clients_vip.json"]
    promo, support = line_sql.lines_of(db, draft)
    assert (promo.max_daily_sends, promo.send_frequency_minutes) == (None, None)
    assert (support.send_frequency_minutes, support.max_daily_sends) == (1.5, 5000)
    assert support.scheduled_at is not None and support.scheduled_at.isoformat().startswith("2025-11-28T07:00:00")


def test_a_bad_config_file_lists_every_problem(db: psycopg.Connection, run, draft: int, tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text(
        json.dumps(
            {
                "contact_files": "clients_vip.json",
                "channels": [{"sender_name": "A", "sender_email": "a@x.com", "max_daily_sends": "lots"}],
                "schedule": "now",
            }
        ),
        encoding="utf-8",
    )

    code, _, err = run("campaign", "configure", str(draft), "--config", str(config))

    assert code == 1
    assert "unknown key 'schedule'" in err
    assert "contact_files must be a list of file names" in err
    assert "channel 1: server is missing" in err
    assert "channel 1: max_daily_sends 'lots' is not a whole number" in err
    assert line_sql.lines_of(db, draft) == []


def test_config_file_and_options_together_is_a_usage_error(run, draft: int, tmp_path: Path) -> None:
    code, _, err = run("campaign", "configure", str(draft), "--config", str(tmp_path / "x.json"), "--file", "a.json")
    assert code == 2
    assert "give --config, or --file and --channel, not both" in err


def test_an_escaped_comma_stays_in_the_value(db: psycopg.Connection, run, draft: int, seed_files: Path) -> None:
    line = f"sender_name=Dupont\\, Frères,sender_email=contact@dupont.fr,server={BREVO},max_daily_sends="
    code, _, err = run(
        "campaign", "configure", str(draft), "--contacts-dir", str(seed_files), "--file", "clients_vip.json",
        "--channel", line,
    )  # fmt: skip
    assert (code, err) == (0, "")
    (only,) = line_sql.lines_of(db, draft)
    assert (only.sender_name, only.max_daily_sends) == ("Dupont, Frères", None)


# --- errors ------------------------------------------------------------------------------


def test_configure_lists_every_problem_and_changes_nothing(
    db: psycopg.Connection, run, draft: int, seed_files: Path
) -> None:
    code, out, err = run(
        "campaign",
        "configure",
        str(draft),
        "--contacts-dir",
        str(seed_files),
        "--file",
        "../etc/passwd",
        "--file",
        "absent.json",
        "--channel",
        "sender_name=L'équipe Promo,sender_email=offres@mondomaine.com,server=Mailjet - Inconnu",
        "--channel",
        f"sender_name=Support,sender_email=not-an-address,server={SENDGRID}",
    )

    assert (code, out) == (1, "")
    assert f"campaign {draft}: 4 problem(s)" in err
    assert "'../etc/passwd' is outside the contacts directory" in err
    assert "contact file 'absent.json' does not exist" in err
    assert "line 1: server 'Mailjet - Inconnu' does not exist" in err
    assert "line 2: sender email 'not-an-address' is not a valid address" in err
    campaign = campaign_sql.campaign_by_id(db, draft)
    assert campaign is not None and campaign.status == "draft"
    assert line_sql.lines_of(db, draft) == []


def test_configure_refuses_a_sender_that_would_forge_headers(
    db: psycopg.Connection, run, draft: int, seed_files: Path, tmp_path: Path
) -> None:
    config = tmp_path / "forged.json"
    forged = {"sender_name": "Promo\r\nBcc: evil@attacker.example", "sender_email": "offres@mondomaine.com"}
    config.write_text(json.dumps({"contact_files": ["clients_vip.json"], "channels": [{**forged, "server": BREVO}]}))

    code, out, err = run(
        "campaign", "configure", str(draft), "--contacts-dir", str(seed_files), "--config", str(config)
    )

    assert (code, out) == (1, "")
    assert "line 1: sender name contains control characters (CR, LF)" in err
    assert line_sql.lines_of(db, draft) == []


def test_a_bad_channel_value_is_a_usage_error_naming_line_and_key(run, draft: int, seed_files: Path) -> None:
    code, _, err = run(
        "campaign",
        "configure",
        str(draft),
        "--contacts-dir",
        str(seed_files),
        "--file",
        "clients_vip.json",
        "--channel",
        PROMO_LINE,
        "--channel",
        f"sender_name=S,sender_email=s@x.com,server={SENDGRID},frequency=1,max_daily_sends=5k",
        "--channel",
        f"sender_name=T,sender_email=t@x.com,server={SENDGRID},send_frequency_minutes=vite",
    )

    assert code == 2
    assert "usage: campaigns campaign configure" in err
    assert "channel 2: unknown key 'frequency'" in err
    assert "channel 2: max_daily_sends '5k' is not a whole number" in err
    assert "channel 3: send_frequency_minutes 'vite' is not a number" in err
    assert "channel 1" not in err


def test_a_bad_channel_value_is_reported_before_reaching_the_database(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(
            ["--database-url", "postgresql://postgres@127.0.0.1:1/none", "campaign", "configure", "1", "--channel", "x"]
        )
    assert exit_.value.code == 2
    assert "channel 1: 'x' is not key=value" in capsys.readouterr().err


def test_configure_an_unknown_campaign_exits_1(run, db: psycopg.Connection, seed_files: Path) -> None:
    code, _, err = run("campaign", "configure", "999", "--file", "clients_vip.json", "--channel", PROMO_LINE)
    assert code == 1
    assert "campaign 999 does not exist" in err


def test_server_add_with_an_unset_env_var_exits_1(db: psycopg.Connection, run, monkeypatch) -> None:
    monkeypatch.delenv("MAILGUN_API_KEY", raising=False)

    code, out, err = run("server", "add", "Mailgun", "--provider", "mailgun", "--api-key-env", "MAILGUN_API_KEY")

    assert (code, out) == (1, "")
    assert "environment variable MAILGUN_API_KEY (api_key_env) is not set or empty" in err
    assert catalog.list_servers(db) == []


def test_server_add_lists_every_problem(db: psycopg.Connection, run) -> None:
    code, _, err = run("server", "add", "Postmark", "--provider", "postmark", "--url", "ftp://postmark")
    assert code == 1
    assert "server 'Postmark': 2 problem(s)" in err
    assert "url 'ftp://postmark' is not an http(s) URL" in err
    assert "an API key is required" in err


def test_server_add_twice_exits_1(db: psycopg.Connection, run, keys: None) -> None:
    assert run("server", "add", BREVO, "--provider", "brevo", "--api-key-env", "BREVO_API_KEY")[0] == 0
    code, _, err = run("server", "add", BREVO, "--provider", "brevo", "--api-key-env", "BREVO_API_KEY")
    assert code == 1
    assert "a server with this name already exists" in err


def test_an_unknown_provider_is_a_usage_error(run) -> None:
    code, _, err = run("server", "add", "X", "--provider", "smtp", "--api-key-env", "K")
    assert code == 2
    assert "invalid choice: 'smtp'" in err


def test_create_with_an_unknown_template_exits_1(db: psycopg.Connection, run) -> None:
    code, _, err = run("campaign", "create", "--name", "N", "--subject", "S", "--template", "absent")
    assert code == 1
    assert "template 'absent' does not exist" in err
    assert campaign_sql.list_campaigns(db) == []


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


# --- servers -----------------------------------------------------------------------------


def test_server_list_shows_where_keys_live_never_the_keys(
    db: psycopg.Connection, run, keys: None, tmp_path: Path
) -> None:
    key_file = tmp_path / "postmark.key"
    key_file.write_text("postmark-secret-555", encoding="utf-8")
    outputs = [
        run("server", "add", BREVO, "--provider", "brevo", "--api-key-env", "BREVO_API_KEY"),
        run("server", "add", "Postmark", "--provider", "postmark", "--api-key-file", str(key_file), "--inactive"),
        run("server", "add", "Bac à sable", "--provider", "sandbox"),
        run("server", "list"),
    ]

    assert [code for code, _, _ in outputs] == [0, 0, 0, 0]
    listing = outputs[-1][1].splitlines()
    assert listing[0].split() == [
        "id",
        "name",
        "provider",
        "url",
        "api",
        "key",
        "active",
        "cap/day",
        "time",
        "zone",
        "batch",
    ]
    assert [line.split()[-4] for line in listing[2:]] == ["yes", "yes", "no"]  # ordered by name
    assert "Bac à sable" in listing[2] and "no key" in listing[2]
    assert BREVO in listing[3] and "env var BREVO_API_KEY" in listing[3]
    assert "Postmark" in listing[4] and f"file {key_file}" in listing[4]
    everything = "".join(out + err for _, out, err in outputs)
    assert BREVO_KEY not in everything and "postmark-secret-555" not in everything


def test_server_update_changes_only_what_is_given(db: psycopg.Connection, run, keys: None, monkeypatch) -> None:
    custom = "https://api.eu.brevo.com/v3/smtp/email"
    run("server", "add", BREVO, "--provider", "brevo", "--url", custom, "--api-key-env", "BREVO_API_KEY", "--inactive")
    monkeypatch.setenv("BREVO_API_KEY_2025", "xkeysib-new-secret")

    code, out, err = run("server", "update", BREVO, "--api-key-env", "BREVO_API_KEY_2025")

    assert (code, err) == (0, "")
    assert out == f"server 1 '{BREVO}' updated\n"
    server = catalog.server_by_name(db, BREVO)
    assert server is not None
    assert (server.provider, server.url, server.api_key_ref, server.active) == (
        "brevo",
        custom,
        "env:BREVO_API_KEY_2025",
        False,
    )

    code, _, err = run("server", "update", BREVO, "--provider", "sendgrid", "--active")
    assert (code, err) == (0, "")
    server = catalog.server_by_name(db, BREVO)
    assert server is not None
    # Another provider: the custom endpoint goes, the key stays.
    assert (server.provider, server.url, server.api_key_ref, server.active) == (
        "sendgrid",
        "https://api.sendgrid.com/v3/mail/send",
        "env:BREVO_API_KEY_2025",
        True,
    )


def test_server_update_of_an_unknown_server_exits_1(db: psycopg.Connection, run, keys: None) -> None:
    code, _, err = run("server", "update", "Absent", "--provider", "brevo", "--api-key-env", "BREVO_API_KEY")
    assert code == 1
    assert "server 'Absent' does not exist; no server exists yet" in err
    assert catalog.list_servers(db) == []


def test_server_update_revalidates_the_key(db: psycopg.Connection, run, keys: None, monkeypatch) -> None:
    run("server", "add", BREVO, "--provider", "brevo", "--api-key-env", "BREVO_API_KEY")
    monkeypatch.delenv("BREVO_API_KEY")

    code, _, err = run("server", "update", BREVO, "--url", "https://api.brevo.com/v3/other")

    assert code == 1
    assert "environment variable BREVO_API_KEY (api_key_env) is not set or empty" in err
    server = catalog.server_by_name(db, BREVO)
    assert server is not None and server.url == "https://api.brevo.com/v3/smtp/email"


def test_disable_warns_about_unfinished_campaigns_then_enable(
    db: psycopg.Connection, run, draft: int, seed_files: Path
) -> None:
    assert _configure_seed(run, draft, seed_files)[0] == 0

    code, out, err = run("server", "disable", SENDGRID)

    assert code == 0
    assert out == f"server '{SENDGRID}' disabled\n"
    assert f"unfinished campaign(s) {draft} still have sending lines on server '{SENDGRID}'" in err
    server = catalog.server_by_name(db, SENDGRID)
    assert server is not None and not server.active
    # An inactive server cannot be chosen for a line.
    code, _, err = _configure_seed(run, draft, seed_files)
    assert code == 1 and f"line 2: server '{SENDGRID}' is inactive" in err

    code, out, err = run("server", "enable", SENDGRID)
    assert (code, out, err) == (0, f"server '{SENDGRID}' enabled\n", "")
    assert _configure_seed(run, draft, seed_files)[0] == 0


def test_disable_an_unused_server_does_not_warn(db: psycopg.Connection, run, keys: None) -> None:
    run("server", "add", BREVO, "--provider", "brevo", "--api-key-env", "BREVO_API_KEY")
    assert run("server", "disable", BREVO) == (0, f"server '{BREVO}' disabled\n", "")


def test_disable_an_unknown_server_exits_1_naming_the_existing_ones(db: psycopg.Connection, run, keys: None) -> None:
    run("server", "add", BREVO, "--provider", "brevo", "--api-key-env", "BREVO_API_KEY")
    code, _, err = run("server", "disable", "Absent")
    assert code == 1
    assert f"server 'Absent' does not exist; existing servers: '{BREVO}'" in err


# --- templates ---------------------------------------------------------------------------


def test_template_add_creates_then_updates_and_lists(db: psycopg.Connection, run, tmp_path: Path) -> None:
    source = tmp_path / "promo.html"
    source.write_text("<h1>Jusqu'à -70% {{ first_name }}</h1>", encoding="utf-8")

    assert run("template", "add", "promo", "--html", "<p>v1</p>") == (0, "template 1 'promo' created\n", "")
    assert run("template", "add", "promo", "--file", str(source)) == (0, "template 1 'promo' updated\n", "")
    code, out, _ = run("template", "list")

    assert code == 0
    template = catalog.template_by_name(db, "promo")
    assert template is not None and template.html == source.read_text(encoding="utf-8")
    header, _, row = out.splitlines()
    assert header.split() == ["id", "name", "size", "updated"]
    assert row.split()[:4] == ["1", "promo", str(len(template.html)), "chars"]


def test_template_with_a_syntax_error_exits_1(db: psycopg.Connection, run) -> None:
    code, _, err = run("template", "add", "bad", "--html", "<p>\n{% if %}</p>")
    assert code == 1
    assert "template 'bad': 1 problem(s)" in err and "line 2:" in err
    assert catalog.list_templates(db) == []


def test_template_needs_exactly_one_source(run) -> None:
    assert run("template", "add", "x")[0] == 2
    assert run("template", "add", "x", "--html", "<p/>", "--file", "x.html")[0] == 2


def test_template_from_a_missing_file_exits_1(db: psycopg.Connection, run, tmp_path: Path) -> None:
    code, _, err = run("template", "add", "x", "--file", str(tmp_path / "absent.html"))
    assert code == 1
    assert "cannot read" in err


# --- campaign list and status ------------------------------------------------------------


def test_campaign_list_and_status(db: psycopg.Connection, run, draft: int, seed_files: Path) -> None:
    assert _configure_seed(run, draft, seed_files, "--import-now")[0] == 0
    second = run("campaign", "create", "--name", "Relance", "--subject", "Encore", "--template", "promo")
    assert second[0] == 0

    code, out, _ = run("campaign", "list")

    assert code == 0
    header, rule, newest, oldest, *legend = out.splitlines()
    assert header.split() == [
        "id", "name", "status", "progress", "sent",
        "human", "opens", "all", "opens", "human", "clicks", "all", "clicks",
    ]  # fmt: skip
    assert set(rule.replace(" ", "")) == {"-"}
    assert newest.split() == [str(draft + 1), "Relance", "draft", "-", "0/0", "-", "-", "-", "-"]
    assert oldest.split()[:1] == [str(draft)] and "Black Friday 2025 - Ventes Flash  scheduled" in oldest
    assert oldest.split()[8:] == ["0%", "0/7", "-", "-", "-", "-"]
    assert legend[0].startswith("progress: contacts whose send is final")
    assert run("campaign", "list", "--limit", "1")[1].count("\n") == 3 + len(legend)

    code, out, _ = run("campaign", "status", str(draft))

    assert code == 0
    assert "status:        scheduled" in out
    assert "subject:       ⚡ Offres Exclusives : Jusqu'à -70% !" in out
    assert "template:      promo" in out
    assert "contact files: nouveaux_inscrits.json, clients_vip.json" in out
    assert "nbre_contacts: 7" in out
    assert "sent_count:    0 (0%)" in out
    assert "error:" not in out
    lines = out.split("\n\n", 1)[1].splitlines()
    assert lines[0].split() == ["line", "sender", "server", "every", "(min)", "max/day", "start"]
    assert lines[2].split() == [
        "1", "L'équipe", "Promo", "<offres@mondomaine.com>", "Brevo", "-", "Compte", "Principal",
        "as", "fast", "as", "possible", "10000", "now",
    ]  # fmt: skip
    assert lines[3].split() == [
        "2", "Le", "Service", "Client", "<support@mondomaine.com>", "SendGrid", "-", "Secours", "1", "5000", "now",
    ]  # fmt: skip


def test_status_of_a_draft_has_no_lines(run, draft: int) -> None:
    code, out, _ = run("campaign", "status", str(draft))
    assert code == 0
    assert "status:        draft" in out
    assert "no sending lines yet" in out


def test_status_of_an_unknown_campaign_exits_1(db: psycopg.Connection, run) -> None:
    code, _, err = run("campaign", "status", "4242")
    assert code == 1
    assert "campaign 4242 does not exist" in err


def test_empty_lists_say_how_to_start(db: psycopg.Connection, run) -> None:
    assert "campaigns server add" in run("server", "list")[1]
    assert "campaigns template add" in run("template", "list")[1]
    assert "campaigns campaign create" in run("campaign", "list")[1]


# --- sending: launch, control, status, watch ---------------------------------------------


@pytest.fixture
def imported(db: psycopg.Connection, run, draft: int, seed_files: Path) -> int:
    """The Black Friday campaign, configured with its two lines and its 7 contacts imported."""
    assert _configure_seed(run, draft, seed_files, "--import-now")[0] == 0
    return draft


@pytest.fixture
def launched(db: psycopg.Connection, run, imported: int) -> int:
    assert run("campaign", "launch", str(imported))[0] == 0
    return imported


def _status(db: psycopg.Connection, campaign_id: int) -> str:
    campaign = campaign_sql.campaign_by_id(db, campaign_id)
    assert campaign is not None
    return campaign.status


def _set_progress(db: psycopg.Connection, campaign_id: int, position: int, **columns: object) -> None:
    """Line state as a sending run would leave it."""
    db.execute(
        sql.SQL("UPDATE campaign_channels SET {} WHERE campaign_id = %s AND position = %s").format(
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(column)) for column in columns)
        ),
        (*columns.values(), campaign_id, position),
    )


def test_launch_refuses_a_draft(db: psycopg.Connection, run, draft: int) -> None:
    code, out, err = run("campaign", "launch", str(draft))

    assert (code, out) == (1, "")
    assert f"campaign {draft}: 1 problem(s)" in err
    assert "status is 'draft': only a scheduled campaign can be launched" in err
    assert _status(db, draft) == "draft"


def test_launch_refuses_a_campaign_whose_contacts_are_not_imported(
    db: psycopg.Connection, run, draft: int, seed_files: Path
) -> None:
    assert _configure_seed(run, draft, seed_files)[0] == 0

    code, _, err = run("campaign", "launch", str(draft))

    assert code == 1
    assert "its contacts are not imported yet" in err
    assert _status(db, draft) == "scheduled"


def test_launch_an_imported_campaign_makes_it_running(db: psycopg.Connection, run, imported: int) -> None:
    code, out, err = run("campaign", "launch", str(imported))

    assert (code, err) == (0, "")
    assert f"campaign {imported} 'Black Friday 2025 - Ventes Flash' launched: status running" in out
    assert "stalled_lines_sensor" in out
    assert f"campaigns campaign watch {imported}" in out
    assert _status(db, imported) == "running"
    assert [line.status for line in line_sql.lines_of(db, imported)] == ["pending", "pending"]

    code, out, _ = run("campaign", "launch", str(imported))
    assert code == 0
    assert f"campaign {imported} 'Black Friday 2025 - Ventes Flash' is already running" in out


def test_launch_an_unknown_campaign_exits_1(db: psycopg.Connection, run) -> None:
    code, _, err = run("campaign", "launch", "4242")
    assert code == 1
    assert "campaign 4242 does not exist" in err


def test_pause_resume_cancel(db: psycopg.Connection, run, launched: int) -> None:
    code, out, err = run("campaign", "pause", str(launched))
    assert (code, err) == (0, "")
    assert out.startswith(f"campaign {launched} paused: ")
    assert f"campaigns campaign resume {launched}" in out
    assert _status(db, launched) == "paused"
    # What a running line does when it sees the pause.
    _set_progress(db, launched, 1, status="paused", reason="campaign paused")

    code, out, err = run("campaign", "resume", str(launched))
    assert (code, err) == (0, "")
    assert out.startswith(f"campaign {launched} running: ")
    assert "stalled_lines_sensor" in out
    assert _status(db, launched) == "running"
    assert [(line.status, line.reason) for line in line_sql.lines_of(db, launched)] == [
        ("pending", None),
        ("pending", None),
    ]

    code, out, err = run("campaign", "cancel", str(launched))
    assert (code, err) == (0, "")
    assert out.startswith(f"campaign {launched} cancelled: ")
    assert _status(db, launched) == "cancelled"


def test_controls_refuse_what_the_status_does_not_allow(db: psycopg.Connection, run, imported: int) -> None:
    code, _, err = run("campaign", "pause", str(imported))
    assert code == 1
    assert "cannot pause a campaign whose status is 'scheduled'" in err
    code, _, err = run("campaign", "resume", str(imported))
    assert code == 1
    assert "cannot resume a campaign whose status is 'scheduled'" in err

    assert run("campaign", "cancel", str(imported))[0] == 0
    for action in ("resume", "cancel"):
        code, out, err = run("campaign", action, str(imported))
        assert (code, out) == (1, "")
        assert f"cannot {action} a campaign whose status is 'cancelled'" in err
    assert run("campaign", "launch", str(imported))[0] == 1
    assert _status(db, imported) == "cancelled"
    code, _, err = run("campaign", "pause", "4242")
    assert code == 1 and "campaign 4242 does not exist" in err


def _unknown_contact(db: psycopg.Connection, campaign_id: int) -> int:
    """One contact left `unknown` by a worker that died mid-send."""
    row = db.execute(
        sql.SQL("UPDATE {} SET send_status = %s WHERE id = (SELECT min(id) FROM {}) RETURNING id").format(
            contact_table(campaign_id), contact_table(campaign_id)
        ),
        (ContactStatus.UNKNOWN,),
    ).fetchone()
    assert row is not None
    _set_progress(db, campaign_id, 1, unknown_count=1)
    return int(row[0])


def _send_status(db: psycopg.Connection, campaign_id: int, contact_id: int) -> int:
    row = db.execute(
        sql.SQL("SELECT send_status FROM {} WHERE id = %s").format(contact_table(campaign_id)), (contact_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_resend_unknown_needs_yes(db: psycopg.Connection, run, launched: int) -> None:
    contact = _unknown_contact(db, launched)

    code, out, err = run("campaign", "resend-unknown", str(launched))

    assert (code, out) == (2, "")
    assert "usage: campaigns campaign resend-unknown" in err
    assert f"campaign {launched} has 1 contact(s) whose send is unknown" in err
    assert "may deliver the campaign TWICE" in err
    assert "--yes" in err
    assert _send_status(db, launched, contact) == ContactStatus.UNKNOWN


def test_resend_unknown_with_yes_puts_them_back_in_the_pool(db: psycopg.Connection, run, launched: int) -> None:
    contact = _unknown_contact(db, launched)

    code, out, err = run("campaign", "resend-unknown", str(launched), "--yes")

    assert (code, err) == (0, "")
    assert f"campaign {launched}: 1 unknown contact(s) back in the pool" in out
    assert _send_status(db, launched, contact) == ContactStatus.PENDING
    assert [line.unknown_count for line in line_sql.lines_of(db, launched)] == [0, 0]


def test_resend_unknown_without_unknown_contacts_does_nothing(db: psycopg.Connection, run, launched: int) -> None:
    code, out, err = run("campaign", "resend-unknown", str(launched))
    assert (code, err) == (0, "")
    assert "nothing to resend" in out


def test_resend_unknown_of_a_campaign_never_sent_exits_1(db: psycopg.Connection, run, draft: int) -> None:
    code, _, err = run("campaign", "resend-unknown", str(draft), "--yes")
    assert code == 1
    assert "nothing was sent yet (status 'draft')" in err
    assert run("campaign", "resend-unknown", str(draft))[0] == 1


def test_status_shows_the_progress_of_each_line(db: psycopg.Connection, run, launched: int) -> None:
    now = datetime.now(UTC)
    _set_progress(
        db,
        launched,
        1,
        status="quota_reached",
        reason="reached 10000/day",
        sent_count=3,
        failed_count=1,
        suppressed_count=1,
        last_sent_at=now - timedelta(minutes=5),
        next_run_at=datetime(2031, 1, 2, 0, 0, tzinfo=UTC),
        heartbeat_at=now - timedelta(minutes=5, seconds=1),
    )
    _set_progress(db, launched, 2, status="sending", sent_count=1, unknown_count=1, heartbeat_at=now)
    db.execute("UPDATE campaigns SET sent_count = 4 WHERE id = %s", (launched,))

    code, out, err = run("campaign", "status", str(launched))

    assert (code, err) == (0, "")
    assert "status:        running" in out
    assert "sent_count:    4 (57%)" in out  # 4 of the 7 contacts to send
    assert "failed:        1" in out
    assert "unknown:       1" in out
    assert "suppressed:    1" in out
    assert "resend-unknown" in out
    _, configuration, progress, _ = out.split("\n\n")
    assert configuration.splitlines()[0].split() == ["line", "sender", "server", "every", "(min)", "max/day", "start"]
    header, _, first, second = progress.splitlines()
    assert header.split() == [
        "line", "status", "sent", "failed", "unknown", "suppressed", "last", "sent", "next", "run", "heartbeat",
        "reason",
    ]  # fmt: skip
    assert first.split()[:6] == ["1", "quota_reached", "3", "1", "0", "1"]
    assert "2031-01-0" in first  # the next run, in the local time zone
    assert "5m ago" in first
    assert first.endswith("reached 10000/day")
    assert second.split()[:6] == ["2", "sending", "1", "0", "1", "0"]
    assert re.search(r"  \d+s ago  ", second)


def test_status_before_launch_shows_pending_lines(db: psycopg.Connection, run, imported: int) -> None:
    code, out, _ = run("campaign", "status", str(imported))
    assert code == 0
    progress = out.split("\n\n")[2].splitlines()
    assert [row.split()[:3] for row in progress[2:]] == [["1", "pending", "0"], ["2", "pending", "0"]]


def _flat(out: str) -> str:
    """Rich wraps long titles at 80 columns: the words in order, one space apart."""
    return " ".join(out.split())


def _shown(moment: datetime) -> str:
    """A moment as watch shows it: local time of day, with the date when not today."""
    local = moment.astimezone()
    return f"{local:%H:%M:%S}" if local.date() == datetime.now().astimezone().date() else f"{local:%Y-%m-%d %H:%M:%S}"


def test_watch_once_shows_a_bar_per_line(db: psycopg.Connection, run, launched: int) -> None:
    _set_progress(db, launched, 1, status="sending", sent_count=3)
    _set_progress(db, launched, 2, status="waiting", reason="next send in 1 min", sent_count=1)
    db.execute("UPDATE campaigns SET sent_count = 4 WHERE id = %s", (launched,))

    code, out, err = run("campaign", "watch", str(launched), "--once")

    assert (code, err) == (0, "")
    rows = out.splitlines()
    # A title, then a bar with the sent count, for the campaign and for each line.
    assert rows[0] == f"campaign {launched}  'Black Friday 2025 - Ventes Flash'  running"
    assert rows[1].startswith("  ━") and rows[1].endswith("4/7 57%  -")
    assert rows[2] == f"line 1  L'équipe Promo · {BREVO}  sending"
    assert rows[3].endswith("3/7 43%  -")
    assert rows[4] == f"line 2  Le Service Client · {SENDGRID}  waiting  next send in 1 min"
    assert rows[5].endswith("1/7 14%  -")
    # Bars and counts line up: the longest bar is the campaign's.
    assert len({len(rows[i]) for i in (1, 3, 5)}) == 1
    assert rows[1].count("━") > rows[3].count("━") > rows[5].count("━") > 0
    assert "failed 0 · unknown 0 · suppressed 0" in out
    assert "Ctrl-C" not in out


def test_watch_once_of_a_scheduled_campaign_says_the_launch_sensor_starts_it(run, imported: int) -> None:
    code, out, _ = run("campaign", "watch", str(imported), "--once")
    assert code == 0
    assert "not sending yet: Dagster's campaign_launch_sensor starts it within seconds" in out
    assert "campaigns campaign launch" not in out
    assert "0/7 0%" in out


def test_watch_once_of_a_campaign_starting_later_says_when(db: psycopg.Connection, run, imported: int) -> None:
    start = datetime.now(UTC) + timedelta(hours=30)
    db.execute("UPDATE campaign_channels SET scheduled_at = %s WHERE campaign_id = %s", (start, imported))

    code, out, _ = run("campaign", "watch", str(imported), "--once")

    assert code == 0
    assert f"campaign_launch_sensor starts it at {start.astimezone():%Y-%m-%d %H:%M:%S}" in _flat(out)


def test_watch_once_of_an_unimported_campaign_names_the_import_sensor(run, draft: int, seed_files: Path) -> None:
    assert _configure_seed(run, draft, seed_files)[0] == 0

    code, out, _ = run("campaign", "watch", str(draft), "--once")

    assert code == 0
    assert "campaign_import_sensor imports its contacts, then campaign_launch_sensor starts it" in _flat(out)


def test_watch_shows_what_each_line_waits_for_and_until_when(db: psycopg.Connection, run, launched: int) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # Line 1 is in its step but waits out its one-minute pacing; line 2 stopped at its quota.
    _set_progress(db, launched, 1, status="sending", send_frequency_minutes=1, last_sent_at=now - timedelta(seconds=20))
    db.execute("UPDATE servers SET timezone = 'Europe/Paris' WHERE name = %s", (SENDGRID,))
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), ZoneInfo("Europe/Paris"))
    _set_progress(
        db,
        launched,
        2,
        status="quota_reached",
        reason=f"reached 5000/day, stopping until {midnight:%Y-%m-%d %H:%M} Europe/Paris",
        next_run_at=midnight,
    )

    code, out, _ = run("campaign", "watch", str(launched), "--once")

    assert code == 0
    flat = _flat(out)
    assert (
        f"line 1 L'équipe Promo · {BREVO} waiting (pacing) until {_shown(now + timedelta(seconds=40))} 0/7 0%" in flat
    )
    assert "sending" not in flat
    assert (
        f"line 2 Le Service Client · {SENDGRID} quota reached, resumes 00:00 Europe/Paris reached 5000/day 0/7" in flat
    )


def test_watch_shows_a_long_wait_the_step_ended_for(db: psycopg.Connection, run, launched: int) -> None:
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    _set_progress(db, launched, 1, status="waiting", reason=f"pacing until {moment.isoformat()}", next_run_at=moment)

    code, out, _ = run("campaign", "watch", str(launched), "--once")

    assert code == 0
    assert f"{BREVO} waiting (pacing) until {_shown(moment)} 0/7 0%" in _flat(out)


def test_watch_ends_at_once_when_the_campaign_is_over(
    db: psycopg.Connection, run, launched: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError("a finished campaign is not watched")

    monkeypatch.setattr(cli_watch.time, "sleep", no_sleep)
    _set_progress(db, launched, 1, status="done", sent_count=5)
    _set_progress(db, launched, 2, status="done", sent_count=2)
    db.execute("UPDATE campaigns SET status = 'completed', sent_count = 7 WHERE id = %s", (launched,))

    code, out, err = run("campaign", "watch", str(launched), "--interval", "3600")

    assert (code, err) == (0, "")
    assert "7/7 100%  -" in out and "5/7 71%  -" in out
    assert out.splitlines()[-1] == f"campaign {launched} completed: 7 of 7 sent"
    assert "Ctrl-C" not in out


def test_watch_reads_again_until_the_campaign_is_over(
    db: psycopg.Connection, run, launched: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []

    def sending_meanwhile(seconds: float) -> None:
        # Instead of waiting, the sends progress; the second wait sees the campaign cancelled.
        waits.append(seconds)
        _set_progress(db, launched, 1, status="sending", sent_count=2 * len(waits))
        db.execute("UPDATE campaigns SET sent_count = %s WHERE id = %s", (2 * len(waits), launched))
        if len(waits) == 2:
            db.execute("UPDATE campaigns SET status = 'cancelled' WHERE id = %s", (launched,))

    monkeypatch.setattr(cli_watch.time, "sleep", sending_meanwhile)

    code, out, err = run("campaign", "watch", str(launched), "--interval", "0.5")

    assert (code, err) == (0, "")
    assert waits == [0.5, 0.5]
    assert "4/7 57%" in out
    assert "/s" in out  # a rate between the reads
    assert out.splitlines()[-1] == f"campaign {launched} cancelled: 4 of 7 sent"


def test_ctrl_c_stops_watching_with_exit_0(
    db: psycopg.Connection, run, launched: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_watch.time, "sleep", interrupted)

    code, out, _ = run("campaign", "watch", str(launched))

    assert code == 0
    assert out.splitlines()[-1].startswith(f"stopped watching; campaign {launched} is running")
    assert _status(db, launched) == "running"


def test_watch_checks_its_arguments(db: psycopg.Connection, run) -> None:
    code, _, err = run("campaign", "watch", "1", "--interval", "0")
    assert code == 2
    assert "'0' must be a positive number of seconds" in err
    code, _, err = run("campaign", "watch", "4242", "--once")
    assert code == 1
    assert "campaign 4242 does not exist" in err


def test_server_cap_time_zone_and_batch_size_are_set_and_kept_on_update(db, database_url, capsys, monkeypatch) -> None:
    monkeypatch.setenv("BREVO_API_KEY", "secret-value")
    base = ["--database-url", database_url, "server"]
    assert (
        cli.main(
            [
                *base,
                "add",
                "Brevo",
                "--provider",
                "brevo",
                "--api-key-env",
                "BREVO_API_KEY",
                "--daily-cap",
                "300000",
                "--timezone",
                "Europe/Paris",
                "--batch-size",
                "500",
            ]
        )
        == 0
    )
    assert cli.main([*base, "update", "Brevo", "--url", "https://eu.example.com/v3/smtp/email"]) == 0
    row = catalog.server_by_name(db, "Brevo")
    assert (row.daily_cap, row.timezone, row.batch_size) == (300000, "Europe/Paris", 500)

    assert cli.main([*base, "update", "Brevo", "--daily-cap", "none", "--batch-size", "1"]) == 0
    row = catalog.server_by_name(db, "Brevo")
    assert (row.daily_cap, row.batch_size) == (None, 1)
    capsys.readouterr()
    cli.main([*base, "list"])
    assert "Europe/Paris" in capsys.readouterr().out


# --- blacklist ---------------------------------------------------------------------------


def _blacklist(db: psycopg.Connection) -> dict[str, tuple[str, str]]:
    return {
        email: (source, reason) for email, source, reason in db.execute("SELECT email, source, reason FROM blacklist")
    }


def _fill_blacklist(db: psycopg.Connection, count: int) -> None:
    db.execute(
        "INSERT INTO blacklist (email, reason, source, created_at)"
        " SELECT 'user' || lpad(g::text, 6, '0') || '@example.com', 'reason ' || g,"
        " (ARRAY['manual', 'complaint', 'hard_bounce'])[g %% 3 + 1],"
        " '2025-11-28 08:00+00'::timestamptz + g * interval '1 s'"
        " FROM generate_series(1, %s) g",
        (count,),
    )


def test_blacklist_add_list_remove(db: psycopg.Connection, run) -> None:
    code, out, _ = run("blacklist", "add", "  Jean.Dupont@Example.COM ", "--reason", "asked by phone")
    assert code == 0
    assert out == "jean.dupont@example.com blacklisted: no campaign sends to it from its next batch on\n"
    code, out, _ = run("blacklist", "add", "jean.dupont@example.com", "--reason", "again")
    assert code == 0
    assert out.startswith("jean.dupont@example.com was already blacklisted (manual, ")
    assert out.rstrip().endswith("asked by phone")
    assert run("blacklist", "add", "marie@example.com")[0] == 0
    assert _blacklist(db) == {
        "jean.dupont@example.com": ("manual", "asked by phone"),
        "marie@example.com": ("manual", "added by hand"),
    }

    code, out, _ = run("blacklist", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["email", "source", "reason", "added"]
    assert [line.split()[0] for line in lines[2:]] == ["marie@example.com", "jean.dupont@example.com"]

    code, out, err = run("blacklist", "remove", "JEAN.DUPONT@example.com")
    assert code == 0
    assert out == "jean.dupont@example.com removed from the blacklist (it was manual: asked by phone)\n"
    assert err == ""
    assert list(_blacklist(db)) == ["marie@example.com"]


def test_blacklist_refusals(db: psycopg.Connection, run) -> None:
    code, _, err = run("blacklist", "add", "jean.dupont@")
    assert code == 1
    assert "'jean.dupont@'" in err and "it is not an email address" in err
    code, _, err = run("blacklist", "remove", "nobody@example.com")
    assert code == 1
    assert err == "error: nobody@example.com is not blacklisted\n"
    assert _blacklist(db) == {}
    code, _, err = run("blacklist", "list", "--limit", "0")
    assert code == 2
    assert "expected at least 1, got 0" in err
    code, _, err = run("blacklist", "list", "--source", "spam")
    assert code == 2
    assert "invalid choice: 'spam'" in err


def test_blacklist_remove_warns_about_a_complaint(db: psycopg.Connection, run) -> None:
    db.execute(
        "INSERT INTO blacklist (email, reason, source) VALUES ('ana@example.com', 'sendgrid: spam', 'complaint')"
    )
    code, _, err = run("blacklist", "remove", "ana@example.com")
    assert code == 0
    assert err == (
        "warning: ana@example.com was blacklisted after a complaint; mailing it again hurts the sending domain's"
        " reputation\n"
    )


def test_blacklist_list_by_source_and_limit(db: psycopg.Connection, run) -> None:
    _fill_blacklist(db, 30)
    code, out, _ = run("blacklist", "list", "--source", "complaint", "--limit", "4")
    assert code == 0
    lines = out.splitlines()
    # Newest first: 30 is manual (30 % 3 = 0), 29 hard_bounce, 28 complaint.
    assert [line.split()[:2] for line in lines[2:6]] == [
        ["user000028@example.com", "complaint"],
        ["user000025@example.com", "complaint"],
        ["user000022@example.com", "complaint"],
        ["user000019@example.com", "complaint"],
    ]
    assert lines[6] == "(the newest 4: --limit shows more, 'campaigns blacklist export' writes them all)"
    code, out, _ = run("blacklist", "list", "--source", "unsubscribe")
    assert (code, out) == (0, "no address blacklisted by unsubscribe\n")
    db.execute("DELETE FROM blacklist")
    assert run("blacklist", "list") == (0, "the blacklist is empty\n", "")


def test_blacklist_export_to_stdout(db: psycopg.Connection, run) -> None:
    _fill_blacklist(db, 3)
    db.execute("INSERT INTO blacklist (email, reason, source) VALUES ('a@example.com', 'said \"no\", twice', 'manual')")
    code, out, err = run("blacklist", "export")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["email", "reason", "source", "created_at"]
    assert rows[1][:3] == ["a@example.com", 'said "no", twice', "manual"]
    assert rows[2] == ["user000001@example.com", "reason 1", "complaint", "2025-11-28T08:00:01+00:00"]
    assert len(rows) == 5
    assert err == "4 blacklisted address(es) exported\n"


def test_blacklist_export_of_thousands_to_a_file(db: psycopg.Connection, run, tmp_path: Path) -> None:
    _fill_blacklist(db, 7000)
    target = tmp_path / "blacklist.csv"
    code, out, _ = run("blacklist", "export", "--output", str(target))
    assert code == 0
    assert out == f"7,000 blacklisted address(es) exported to {target}\n"
    with target.open(encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    assert len(rows) == 7001
    assert rows[-1] == ["user007000@example.com", "reason 7000", "complaint", "2025-11-28T09:56:40+00:00"]
    assert [row[0] for row in rows[1:]] == sorted(row[0] for row in rows[1:])
    assert not (tmp_path / "blacklist.csv.partial").exists()


def test_blacklist_export_to_an_unwritable_place_exits_1(db: psycopg.Connection, run, tmp_path: Path) -> None:
    code, _, err = run("blacklist", "export", "--output", str(tmp_path / "missing" / "blacklist.csv"))
    assert code == 1
    assert "cannot write it" in err


def test_watch_rates_span_the_last_minute_of_reads(
    db: psycopg.Connection, run, launched: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A line paced at one send every 30 s: between two reads a second apart it mostly sends
    # nothing, yet its rate is 2 a minute. Reads are 30 s apart on a shifted monotonic clock.
    shift = [0.0]
    real_monotonic = time.monotonic
    monkeypatch.setattr(cli_watch.time, "monotonic", lambda: real_monotonic() + shift[0])
    reads: list[float] = []

    def thirty_seconds_later(seconds: float) -> None:
        reads.append(seconds)
        shift[0] += 30.0
        _set_progress(db, launched, 1, status="sending", sent_count=len(reads))
        db.execute("UPDATE campaigns SET sent_count = %s WHERE id = %s", (len(reads), launched))
        if len(reads) == 4:
            db.execute("UPDATE campaigns SET status = 'cancelled' WHERE id = %s", (launched,))

    monkeypatch.setattr(cli_watch.time, "sleep", thirty_seconds_later)

    code, out, _ = run("campaign", "watch", str(launched), "--interval", "30")

    assert code == 0
    final = out.rsplit("campaign 1  ", 1)[-1]
    assert "2.0/min" in final and "0.0/s" not in out


def test_status_counts_contacts_blacklisted_after_they_were_sent(db: psycopg.Connection, run, launched: int) -> None:
    table = contact_table(launched)
    db.execute(sql.SQL("UPDATE {} SET send_status = %s").format(table), (ContactStatus.SENT,))
    emails = [row[0] for row in db.execute(sql.SQL("SELECT email FROM {} ORDER BY id LIMIT 3").format(table))]
    # Two recipients unsubscribed after the send; a third was skipped as blacklisted, then taken off the list.
    for email in emails[:2]:
        db.execute("INSERT INTO blacklist (email, reason, source) VALUES (%s, 'unsubscribed', 'unsubscribe')", (email,))
    db.execute(
        sql.SQL("UPDATE {} SET send_status = %s WHERE email = %s").format(table), (ContactStatus.SUPPRESSED, emails[2])
    )

    code, out, _ = run("campaign", "status", str(launched))

    assert code == 0
    assert "blacklisted:   3" in out


def test_list_shows_progress_and_human_beside_raw_rates(db: psycopg.Connection, run, launched: int) -> None:
    _set_progress(db, launched, 1, sent_count=4, failed_count=1)
    db.execute("UPDATE campaigns SET sent_count = 4 WHERE id = %s", (launched,))
    now = datetime.now(UTC)
    # kind 1 open, 2 click; flag 0 a person, 1 Apple's privacy proxy, 2 a link scanner.
    for contact, kind, flag in [(1, 1, 0), (1, 1, 0), (2, 1, 1), (1, 2, 0), (3, 2, 2)]:
        db.execute(
            "INSERT INTO tracking_events (campaign_id, contact_id, kind, flag, occurred_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            (launched, contact, kind, flag, now),
        )

    code, out, _ = run("campaign", "list")

    assert code == 0
    row = out.splitlines()[2]
    assert row.split()[7:] == ["running", "71%", "4/7", "25.0%", "50.0%", "25.0%", "50.0%"]


def _sent_with_events(db: psycopg.Connection, campaign_id: int) -> None:
    """Every contact sent by line 1; contact 1 opened and clicked (a person), contact 2 opened by Apple's proxy."""
    line_id = line_sql.lines_of(db, campaign_id)[0].id
    db.execute(
        sql.SQL("UPDATE {} SET send_status = %s, channel_id = %s, attempted_at = now()").format(
            contact_table(campaign_id)
        ),
        (ContactStatus.SENT, line_id),
    )
    db.execute("UPDATE campaigns SET sent_count = 7 WHERE id = %s", (campaign_id,))
    _set_progress(db, campaign_id, 1, sent_count=7)
    now = datetime.now(UTC)
    for contact, kind, flag in [(1, 1, 0), (1, 2, 0), (2, 1, 1)]:
        db.execute(
            "INSERT INTO tracking_events (campaign_id, contact_id, kind, link_idx, flag, occurred_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (campaign_id, contact, kind, 0 if kind == 2 else None, flag, now),
        )


def test_report_shows_the_funnel_with_human_beside_all_rates(db: psycopg.Connection, run, launched: int) -> None:
    _sent_with_events(db, launched)

    code, out, err = run("campaign", "report", str(launched))

    assert (code, err) == (0, "")
    flat = _flat(out)
    assert f"campaign {launched} 'Black Friday 2025 - Ventes Flash' running" in flat
    assert "sent │ 7" in flat
    assert "opened (human) │ 1 │ 14.3%" in flat
    assert "opened (all) │ 2 │ 28.6%" in flat
    assert "clicked (human) │ 1 │ 14.3%" in flat
    assert "per line" in flat and "line 1 │ 7 │ 0 │ 14.3% │ 28.6% │ 14.3% │ 14.3%" in flat


def test_report_json_is_the_report_model(db: psycopg.Connection, run, launched: int) -> None:
    _sent_with_events(db, launched)

    code, out, _ = run("campaign", "report", str(launched), "--json")

    assert code == 0
    report = json.loads(out)
    assert report["campaign_id"] == launched
    assert report["totals"]["sent"] == 7
    assert (report["totals"]["human_unique_opens"], report["totals"]["unique_opens"]) == (1, 2)
    assert [line["label"] for line in report["lines"]] == ["line 1", "line 2"]


def test_report_of_a_draft_shows_zeros_and_says_why(run, draft: int) -> None:
    code, out, _ = run("campaign", "report", str(draft))

    assert code == 0
    assert "contacts │ 0" in _flat(out)
    assert "note: " in out


def test_report_of_an_unknown_campaign_exits_1(db: psycopg.Connection, run) -> None:
    code, _, err = run("campaign", "report", "4242")
    assert (code, err) == (1, "error: campaign 4242 does not exist\n")
