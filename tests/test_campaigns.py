"""The two campaign steps: validation reports every problem and changes nothing when any."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from campaign_pipelines import campaigns, servers, templates
from campaign_pipelines.errors import NotFoundError, ValidationError
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql


@pytest.fixture
def seed_servers(db, monkeypatch) -> None:
    monkeypatch.setenv("BREVO_API_KEY", "k1")
    monkeypatch.setenv("SENDGRID_API_KEY", "k2")
    servers.add_server(
        db, servers.ServerSpec(name="Brevo - Compte Principal", provider="brevo", api_key_env="BREVO_API_KEY")
    )
    servers.add_server(
        db, servers.ServerSpec(name="SendGrid - Secours", provider="sendgrid", api_key_env="SENDGRID_API_KEY")
    )
    templates.save_template(db, "black-friday", "<p>Bonjour {{ first_name }}</p>")


@pytest.fixture
def files(contacts_dir: Path) -> Path:
    (contacts_dir / "nouveaux_inscrits.json").write_text("[]")
    (contacts_dir / "clients_vip.json").write_text("[]")
    return contacts_dir


SEED_LINES = [
    campaigns.LineSpec("L'équipe Promo", "offres@mondomaine.com", "Brevo - Compte Principal", None, 10000, None),
    campaigns.LineSpec("Le Service Client", "support@mondomaine.com", "SendGrid - Secours", 1, 5000, ""),
]


def test_create_gives_a_draft(db, seed_servers) -> None:
    campaign_id = campaigns.create_campaign(
        db,
        name="Black Friday 2025 - Ventes Flash",
        subject="⚡ Offres Exclusives : Jusqu'à -70% !",
        template="black-friday",
    )
    row = campaign_sql.campaign_by_id(db, campaign_id)
    assert (row.status, row.subject) == ("draft", "⚡ Offres Exclusives : Jusqu'à -70% !")


def test_create_reports_every_problem(db) -> None:
    with pytest.raises(ValidationError) as caught:
        campaigns.create_campaign(db, name="", subject=" ", template="nope")
    assert len(caught.value.problems) == 3


def test_configure_the_seed_scenario(db, seed_servers, files: Path) -> None:
    campaign_id = campaigns.create_campaign(db, name="BF", subject="s", template="black-friday")
    templates.save_template(db, "black-friday", "<p>Version 2 {{ first_name }}</p>")

    row = campaigns.configure_campaign(
        db,
        campaign_id,
        contact_files=["nouveaux_inscrits.json", "clients_vip.json"],
        lines=SEED_LINES,
        contacts_dir=files,
    )

    assert row.status == "scheduled" and row.configured_at is not None
    assert row.contact_files == ["nouveaux_inscrits.json", "clients_vip.json"]
    lines = line_sql.lines_of(db, campaign_id)
    assert [
        (line.server_name, line.send_frequency_minutes, line.max_daily_sends, line.scheduled_at) for line in lines
    ] == [
        ("Brevo - Compte Principal", None, 10000, None),
        ("SendGrid - Secours", 1, 5000, None),
    ]
    snapshot = db.execute("SELECT template_html FROM campaigns WHERE id = %s", (campaign_id,)).fetchone()[0]
    assert snapshot == "<p>Version 2 {{ first_name }}</p>"

    # Later template edits never reach a configured campaign.
    templates.save_template(db, "black-friday", "<p>Version 3</p>")
    assert db.execute("SELECT template_html FROM campaigns WHERE id = %s", (campaign_id,)).fetchone()[0] == snapshot


def test_start_dates_without_zone_are_utc(db, seed_servers, files: Path) -> None:
    campaign_id = campaigns.create_campaign(db, name="BF", subject="s", template="black-friday")
    line = campaigns.LineSpec(
        "Promo", "offres@mondomaine.com", "Brevo - Compte Principal", scheduled_at="2026-12-01T09:00"
    )
    campaigns.configure_campaign(db, campaign_id, contact_files=["clients_vip.json"], lines=[line], contacts_dir=files)
    assert line_sql.lines_of(db, campaign_id)[0].scheduled_at == datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_configure_reports_every_problem_and_changes_nothing(db, seed_servers, files: Path) -> None:
    campaign_id = campaigns.create_campaign(db, name="BF", subject="s", template="black-friday")
    servers.set_active(db, "SendGrid - Secours", False)
    bad_lines = [
        campaigns.LineSpec("", "not-an-email", "Mailjet", -1, 0, "demain"),
        campaigns.LineSpec("Secours", "support@mondomaine.com", "SendGrid - Secours"),
    ]

    with pytest.raises(ValidationError) as caught:
        campaigns.configure_campaign(
            db,
            campaign_id,
            contact_files=["missing.json", "../../etc/passwd", "/etc/passwd", "clients_vip.json", "clients_vip.json"],
            lines=bad_lines,
            contacts_dir=files,
        )

    text = str(caught.value)
    for expected in (
        "contact file 'missing.json' does not exist; existing contact files: 'clients_vip.json',"
        " 'nouveaux_inscrits.json' (in ",
        "'../../etc/passwd' is outside the contacts directory",
        "'/etc/passwd' must be a name relative",
        "listed twice",
        "line 1: sender name is empty",
        "line 1: sender email 'not-an-email'",
        "line 1: server 'Mailjet' does not exist; existing servers: 'Brevo - Compte Principal', 'SendGrid - Secours'",
        "line 1: send_frequency_minutes is negative",
        "line 1: max_daily_sends must be at least 1",
        "line 1: scheduled_at 'demain'",
        "line 2: server 'SendGrid - Secours' is inactive; active servers: 'Brevo - Compte Principal'",
    ):
        assert expected in text
    row = campaign_sql.campaign_by_id(db, campaign_id)
    assert (row.status, row.contact_files, row.configured_at) == ("draft", [], None)
    assert line_sql.lines_of(db, campaign_id) == []


def test_a_file_list_left_empty_names_the_files_there_hidden_ones_aside(db, seed_servers, files: Path) -> None:
    (files / ".gitkeep").touch()
    (files / "2025").mkdir()
    (files / "2025" / "novembre.ndjson").touch()
    campaign_id = campaigns.create_campaign(db, name="BF", subject="s", template="black-friday")

    with pytest.raises(ValidationError) as caught:
        campaigns.configure_campaign(db, campaign_id, contact_files=[], lines=SEED_LINES, contacts_dir=files)

    assert caught.value.problems == [
        "at least one contact file is required;"
        " existing contact files: '2025/novembre.ndjson', 'clients_vip.json', 'nouveaux_inscrits.json'"
    ]


def test_an_unknown_template_lists_the_saved_ones_or_says_there_are_none(db) -> None:
    with pytest.raises(ValidationError) as none:
        campaigns.create_campaign(db, name="BF", subject="s", template="Black Friday")
    templates.save_template(db, "promo", "<p>1</p>")
    with pytest.raises(ValidationError) as one:
        campaigns.create_campaign(db, name="BF", subject="s", template="Black Friday")

    assert none.value.problems == ["template 'Black Friday' does not exist; no template exists yet"]
    assert one.value.problems == ["template 'Black Friday' does not exist; existing templates: 'promo'"]


def test_the_newest_draft_is_the_last_created_one_still_a_draft(db, seed_servers, files: Path) -> None:
    with pytest.raises(NotFoundError, match="no campaign is a draft; no campaign can be configured"):
        campaigns.newest_draft(db)
    first = campaigns.create_campaign(db, name="A", subject="s", template="black-friday")
    second = campaigns.create_campaign(db, name="B", subject="s", template="black-friday")
    assert campaigns.newest_draft(db) == second

    campaigns.configure_campaign(db, second, contact_files=["clients_vip.json"], lines=SEED_LINES, contacts_dir=files)

    assert campaigns.newest_draft(db) == first


def test_control_characters_in_a_sender_or_subject_are_refused_naming_field_and_line(
    db, seed_servers, files: Path
) -> None:
    with pytest.raises(ValidationError, match="subject contains control characters \\(LF, U\\+0007\\)"):
        campaigns.create_campaign(db, name="BF", subject="Offres\nBcc: x@evil.example\a", template="black-friday")
    campaign_id = campaigns.create_campaign(db, name="BF", subject="s", template="black-friday")
    lines = [
        campaigns.LineSpec("Promo\r\nBcc: evil@attacker.example", "offres@mondomaine.com", "Brevo - Compte Principal"),
        campaigns.LineSpec("Support", "support@mondomaine.com\r\nBcc: evil@attacker.example", "SendGrid - Secours"),
        campaigns.LineSpec("Tab\there\u2028and there", "ok@mondomaine.com", "SendGrid - Secours"),
    ]

    with pytest.raises(ValidationError) as caught:
        campaigns.configure_campaign(
            db, campaign_id, contact_files=["clients_vip.json"], lines=lines, contacts_dir=files
        )

    assert caught.value.problems == [
        "line 1: sender name contains control characters (CR, LF); it goes into an email header, which is one line"
        " of text",
        "line 2: sender email contains control characters (CR, LF); it goes into an email header, which is one line"
        " of text",
        "line 3: sender name contains control characters (TAB, U+2028); it goes into an email header, which is one"
        " line of text",
    ]
    assert line_sql.lines_of(db, campaign_id) == []


def test_a_symlink_escaping_the_contacts_dir_is_refused(db, seed_servers, files: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text("[]")
    (files / "link.json").symlink_to(outside)
    campaign_id = campaigns.create_campaign(db, name="BF", subject="s", template="black-friday")
    with pytest.raises(ValidationError, match="outside the contacts directory"):
        campaigns.configure_campaign(db, campaign_id, contact_files=["link.json"], lines=SEED_LINES, contacts_dir=files)


def test_only_draft_scheduled_or_failed_campaigns_are_configured(db, seed_servers, files: Path) -> None:
    campaign_id = campaigns.create_campaign(db, name="BF", subject="s", template="black-friday")
    db.execute("UPDATE campaigns SET status = 'running' WHERE id = %s", (campaign_id,))
    with pytest.raises(ValidationError, match="status is 'running'"):
        campaigns.configure_campaign(
            db, campaign_id, contact_files=["clients_vip.json"], lines=SEED_LINES, contacts_dir=files
        )
    with pytest.raises(NotFoundError):
        campaigns.configure_campaign(db, 999, contact_files=["clients_vip.json"], lines=SEED_LINES, contacts_dir=files)


def test_reconfiguring_replaces_the_lines(db, seed_servers, files: Path) -> None:
    campaign_id = campaigns.create_campaign(db, name="BF", subject="s", template="black-friday")
    campaigns.configure_campaign(
        db, campaign_id, contact_files=["clients_vip.json"], lines=SEED_LINES, contacts_dir=files
    )
    campaigns.configure_campaign(
        db, campaign_id, contact_files=["clients_vip.json"], lines=SEED_LINES[:1], contacts_dir=files
    )
    assert [line.sender_name for line in line_sql.lines_of(db, campaign_id)] == ["L'équipe Promo"]
