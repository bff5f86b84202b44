"""The demo a first `make dev` seeds: created once, and never over what the user has of the same name."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from campaign_pipelines import demo, servers, templates
from campaign_pipelines.contacts.records import normalize_email
from campaign_pipelines.store import catalog


def test_a_first_start_creates_the_sandbox_server_the_template_and_the_contact_file(
    db: psycopg.Connection, contacts_dir: Path, tmp_path: Path
) -> None:
    seeded = demo.seed(db, contacts_dir, tmp_path / "outbox")

    assert (seeded.server, seeded.template, seeded.contact_file) == (True, True, True)
    (server,) = catalog.list_servers(db)
    assert (server.name, server.provider, server.url, server.active) == (
        "sandbox",
        "sandbox",
        f"file:{tmp_path / 'outbox'}",
        True,
    )
    assert seeded.server_url == server.url
    template = catalog.template_by_name(db, "Black Friday")
    assert template is not None
    assert template.html == (Path(__file__).resolve().parents[1] / "examples" / "black_friday.html").read_text()
    assert seeded.contact_path == contacts_dir / "demo_contacts.json"
    contacts = json.loads(seeded.contact_path.read_text(encoding="utf-8"))
    emails = {normalize_email(contact["email"]) for contact in contacts}
    assert len(contacts) == len(emails) == 3000
    assert None not in emails
    assert all(email.rsplit("@", 1)[1].endswith((".example", "example.com")) for email in emails)
    assert {"first_name", "last_name", "city", "segment"} <= set(contacts[0])
    assert [path.name for path in contacts_dir.iterdir()] == ["demo_contacts.json"]


def test_a_later_start_leaves_the_users_server_template_and_file_of_those_names_alone(
    db: psycopg.Connection, contacts_dir: Path, tmp_path: Path
) -> None:
    demo.seed(db, contacts_dir, tmp_path / "outbox")
    servers.save_server(db, servers.ServerSpec(name="sandbox", provider="sandbox", url="file:/srv/outbox"))
    templates.save_template(db, "Black Friday", "<p>Ma version</p>")
    (contacts_dir / "demo_contacts.json").write_text('[{"email": "moi@example.com"}]', encoding="utf-8")

    seeded = demo.seed(db, contacts_dir, tmp_path / "elsewhere")

    assert (seeded.server, seeded.template, seeded.contact_file) == (False, False, False)
    assert [(server.name, server.url) for server in catalog.list_servers(db)] == [("sandbox", "file:/srv/outbox")]
    assert seeded.server_url == "file:/srv/outbox"
    assert [(row.name, row.html) for row in catalog.list_templates(db)] == [("Black Friday", "<p>Ma version</p>")]
    assert (contacts_dir / "demo_contacts.json").read_text() == '[{"email": "moi@example.com"}]'


def test_the_demo_contacts_are_the_same_every_time(tmp_path: Path) -> None:
    demo.write_contacts(tmp_path / "a.json", 50)
    demo.write_contacts(tmp_path / "b.json", 50)

    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
