"""Sending servers: registered with a key reference, never the key itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign_pipelines import servers
from campaign_pipelines.errors import NotFoundError, ValidationError
from campaign_pipelines.store import catalog

SECRET = "xkeysib-0123456789abcdef-SECRET"


def test_a_server_stores_where_its_key_lives_not_the_key(db, monkeypatch) -> None:
    monkeypatch.setenv("BREVO_API_KEY", SECRET)
    server_id = servers.add_server(
        db, servers.ServerSpec(name="Brevo - Compte Principal", provider="brevo", api_key_env="BREVO_API_KEY")
    )

    row = catalog.server_by_name(db, "Brevo - Compte Principal")
    assert row.id == server_id
    assert (row.url, row.api_key_ref, row.active) == ("https://api.brevo.com/v3/smtp/email", "env:BREVO_API_KEY", True)
    dump = "".join(str(r) for r in db.execute("SELECT * FROM servers").fetchall())
    assert SECRET not in dump


def test_default_urls_follow_the_provider(db, monkeypatch) -> None:
    monkeypatch.setenv("KEY", "k")
    for provider in ("sendgrid", "mailgun", "postmark"):
        servers.add_server(db, servers.ServerSpec(name=provider, provider=provider, api_key_env="KEY"))
        assert catalog.server_by_name(db, provider).url == servers.DEFAULT_URLS[provider]


def test_a_key_file_is_accepted(db, tmp_path: Path) -> None:
    key = tmp_path / "sendgrid.key"
    key.write_text(SECRET)
    servers.add_server(db, servers.ServerSpec(name="SendGrid - Secours", provider="sendgrid", api_key_file=str(key)))
    assert catalog.server_by_name(db, "SendGrid - Secours").api_key_ref == f"file:{key}"


def test_every_problem_is_reported_at_once(db, monkeypatch) -> None:
    monkeypatch.delenv("MISSING_KEY", raising=False)
    with pytest.raises(ValidationError) as caught:
        servers.add_server(db, servers.ServerSpec(name=" ", provider="smtp", url="ftp://x", api_key_env="MISSING_KEY"))
    problems = caught.value.problems
    assert any("name is empty" in p for p in problems)
    assert any("provider 'smtp'" in p for p in problems)
    assert any("MISSING_KEY" in p and "not set" in p for p in problems)
    assert catalog.list_servers(db) == []


def test_a_pasted_key_is_refused_without_being_echoed(db) -> None:
    with pytest.raises(ValidationError) as caught:
        servers.add_server(db, servers.ServerSpec(name="b", provider="brevo", api_key_env=SECRET))
    assert SECRET not in str(caught.value)
    assert "NAME of an environment variable" in str(caught.value)


def test_names_are_unique_and_save_updates(db, monkeypatch) -> None:
    monkeypatch.setenv("KEY", "k")
    spec = servers.ServerSpec(name="Brevo", provider="brevo", api_key_env="KEY")
    servers.add_server(db, spec)
    with pytest.raises(ValidationError, match="already exists"):
        servers.add_server(db, spec)

    server_id, created = servers.save_server(
        db,
        servers.ServerSpec(
            name="Brevo", provider="brevo", url="https://eu.example.com/v3/smtp/email", api_key_env="KEY"
        ),
    )
    assert not created
    assert catalog.server_by_name(db, "Brevo").url == "https://eu.example.com/v3/smtp/email"


def test_deactivate_and_reactivate(db, monkeypatch) -> None:
    monkeypatch.setenv("KEY", "k")
    servers.add_server(db, servers.ServerSpec(name="Brevo", provider="brevo", api_key_env="KEY"))
    servers.set_active(db, "Brevo", False)
    assert catalog.server_by_name(db, "Brevo").active is False
    servers.set_active(db, "Brevo", True)
    assert catalog.server_by_name(db, "Brevo").active is True
    with pytest.raises(NotFoundError):
        servers.set_active(db, "Nope", False)


def test_sandbox_needs_no_key(db) -> None:
    servers.add_server(db, servers.ServerSpec(name="Demo", provider="sandbox"))
    assert servers.describe_key_ref(catalog.server_by_name(db, "Demo").api_key_ref) == "no key"


def test_account_cap_time_zone_and_batch_size(db, monkeypatch) -> None:
    monkeypatch.setenv("KEY", "k")
    spec = servers.ServerSpec(
        name="Brevo",
        provider="brevo",
        api_key_env="KEY",
        daily_cap=300_000,
        timezone="Europe/Paris",
        batch_size=500,
        calls_in_flight=2,
    )
    servers.add_server(db, spec)
    row = catalog.server_by_name(db, "Brevo")
    assert (row.daily_cap, row.timezone, row.batch_size, row.calls_in_flight) == (300_000, "Europe/Paris", 500, 2)

    with pytest.raises(ValidationError) as caught:
        servers.save_server(
            db,
            servers.ServerSpec(
                name="Brevo",
                provider="brevo",
                api_key_env="KEY",
                daily_cap=0,
                timezone="Mars/Olympus",
                batch_size=-1,
                calls_in_flight=0,
            ),
        )
    assert len(caught.value.problems) == 4
    assert "calls_in_flight must be at least 1 (empty = the provider's documented rate), got 0" in caught.value.problems
    assert catalog.server_by_name(db, "Brevo").daily_cap == 300_000
