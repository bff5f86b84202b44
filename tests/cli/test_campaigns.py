"""`campaigns campaign` create, configure, launch, pause/resume/cancel and resend-unknown."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from campaign_pipelines.contacts import campaign_import
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store.contacts import contact_table
from tests.cli.support import PROMO_LINE, configure_seed, set_progress, status_of
from tests.support import BREVO_SERVER, SENDGRID_SERVER, set_outcomes, statuses_by_email


def test_seed_scenario_schedules_the_campaign_with_its_two_lines(
    db: psycopg.Connection, run, draft: int, seed_files: Path
) -> None:
    code, out, err = configure_seed(run, draft, seed_files)

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
        BREVO_SERVER,
    )
    assert (promo.send_frequency_minutes, promo.max_daily_sends, promo.scheduled_at) == (None, 10000, None)
    assert (support.sender_name, support.sender_email, support.server_name) == (
        "Le Service Client",
        "support@mondomaine.com",
        SENDGRID_SERVER,
    )
    assert (support.send_frequency_minutes, support.max_daily_sends) == (1, 5000)


def test_configure_reads_the_contacts_dir_from_the_environment(
    db: psycopg.Connection, run, draft: int, seed_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTACTS_DIR", str(seed_files))
    code, _, err = run("campaign", "configure", str(draft), "--file", "clients_vip.json", "--channel", PROMO_LINE)
    assert (code, err) == (0, "")


def test_import_now_imports_and_reports(db: psycopg.Connection, run, draft: int, seed_files: Path) -> None:
    code, out, err = configure_seed(run, draft, seed_files, "--import-now")

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
    code, _, err = configure_seed(run, draft, seed_files, "--import-now")

    assert code == 1
    assert err == f"error: campaign {draft}: 1 problem(s)\n  - the contact import failed: MemoryError\n"
    assert campaign_sql.campaign_by_id(db, draft).error == "MemoryError"


def test_config_file_and_options_together_is_a_usage_error(run, draft: int, tmp_path: Path) -> None:
    code, _, err = run("campaign", "configure", str(draft), "--config", str(tmp_path / "x.json"), "--file", "a.json")
    assert code == 2
    assert "give --config, or --file and --channel, not both" in err


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
        f"sender_name=Support,sender_email=not-an-address,server={SENDGRID_SERVER}",
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
    config.write_text(
        json.dumps({"contact_files": ["clients_vip.json"], "channels": [{**forged, "server": BREVO_SERVER}]})
    )

    code, out, err = run(
        "campaign", "configure", str(draft), "--contacts-dir", str(seed_files), "--config", str(config)
    )

    assert (code, out) == (1, "")
    assert "line 1: sender name contains control characters (CR, LF)" in err
    assert line_sql.lines_of(db, draft) == []


def test_configure_an_unknown_campaign_exits_1(run, db: psycopg.Connection, seed_files: Path) -> None:
    code, _, err = run("campaign", "configure", "999", "--file", "clients_vip.json", "--channel", PROMO_LINE)
    assert code == 1
    assert "campaign 999 does not exist" in err


def test_the_seed_setup_through_the_cli_creates_a_draft(db: psycopg.Connection, run, keys: None) -> None:
    assert run("server", "add", BREVO_SERVER, "--provider", "brevo", "--api-key-env", "BREVO_API_KEY")[0] == 0
    assert run("server", "add", SENDGRID_SERVER, "--provider", "sendgrid", "--api-key-env", "SENDGRID_API_KEY")[0] == 0
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
    assert f"next: campaigns campaign configure {campaign.id} --file ... --channel ..." in out
    assert (campaign.name, campaign.status) == ("Black Friday 2025 - Ventes Flash", "draft")


def test_create_with_an_unknown_template_exits_1(db: psycopg.Connection, run) -> None:
    code, _, err = run("campaign", "create", "--name", "N", "--subject", "S", "--template", "absent")
    assert code == 1
    assert "template 'absent' does not exist" in err
    assert campaign_sql.list_campaigns(db) == []


def test_launch_refuses_a_draft(db: psycopg.Connection, run, draft: int) -> None:
    code, out, err = run("campaign", "launch", str(draft))

    assert (code, out) == (1, "")
    assert f"campaign {draft}: 1 problem(s)" in err
    assert "status is 'draft': only a scheduled campaign can be launched" in err
    assert status_of(db, draft) == "draft"


def test_launch_refuses_a_campaign_whose_contacts_are_not_imported(
    db: psycopg.Connection, run, draft: int, seed_files: Path
) -> None:
    assert configure_seed(run, draft, seed_files)[0] == 0

    code, _, err = run("campaign", "launch", str(draft))

    assert code == 1
    assert "its contacts are not imported yet" in err
    assert status_of(db, draft) == "scheduled"


def test_launch_an_imported_campaign_makes_it_running(db: psycopg.Connection, run, imported: int) -> None:
    code, out, err = run("campaign", "launch", str(imported))

    assert (code, err) == (0, "")
    assert f"campaign {imported} 'Black Friday 2025 - Ventes Flash' launched: status running" in out
    assert "stalled_lines_sensor" in out
    assert f"campaigns campaign watch {imported}" in out
    assert status_of(db, imported) == "running"
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
    assert status_of(db, launched) == "paused"
    # What a running line does when it sees the pause.
    set_progress(db, launched, 1, status="paused", reason="campaign paused")

    code, out, err = run("campaign", "resume", str(launched))
    assert (code, err) == (0, "")
    assert out.startswith(f"campaign {launched} running: ")
    assert "stalled_lines_sensor" in out
    assert status_of(db, launched) == "running"
    assert [(line.status, line.reason) for line in line_sql.lines_of(db, launched)] == [
        ("pending", None),
        ("pending", None),
    ]

    code, out, err = run("campaign", "cancel", str(launched))
    assert (code, err) == (0, "")
    assert out.startswith(f"campaign {launched} cancelled: ")
    assert status_of(db, launched) == "cancelled"


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
    assert status_of(db, imported) == "cancelled"
    code, _, err = run("campaign", "pause", "4242")
    assert code == 1 and "campaign 4242 does not exist" in err


def _unknown_contact(db: psycopg.Connection, campaign_id: int) -> int:
    """One contact left `unknown` by a worker that died mid-send."""
    row = db.execute(sql.SQL("SELECT email FROM {} ORDER BY id LIMIT 1").format(contact_table(campaign_id))).fetchone()
    assert row is not None
    set_outcomes(db, campaign_id, ContactStatus.UNKNOWN, emails=[row[0]])
    set_progress(db, campaign_id, 1, unknown_count=1)
    return row[0]


def _send_status(db: psycopg.Connection, campaign_id: int, email: str) -> int:
    return statuses_by_email(db, campaign_id)[email]


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
