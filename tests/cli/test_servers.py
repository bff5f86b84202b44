"""`campaigns server` add, update, list, disable and enable."""

from __future__ import annotations

from pathlib import Path

import psycopg

from campaign_pipelines import cli
from campaign_pipelines.store import catalog
from tests.cli.support import configure_seed
from tests.support import BREVO_KEY, BREVO_SERVER, SENDGRID_SERVER


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
    assert run("server", "add", BREVO_SERVER, "--provider", "brevo", "--api-key-env", "BREVO_API_KEY")[0] == 0
    code, _, err = run("server", "add", BREVO_SERVER, "--provider", "brevo", "--api-key-env", "BREVO_API_KEY")
    assert code == 1
    assert "a server with this name already exists" in err


def test_an_unknown_provider_is_a_usage_error(run) -> None:
    code, _, err = run("server", "add", "X", "--provider", "smtp", "--api-key-env", "K")
    assert code == 2
    assert "invalid choice: 'smtp'" in err


def test_server_list_shows_where_keys_live_never_the_keys(
    db: psycopg.Connection, run, keys: None, tmp_path: Path
) -> None:
    key_file = tmp_path / "postmark.key"
    key_file.write_text("postmark-secret-555", encoding="utf-8")
    outputs = [
        run("server", "add", BREVO_SERVER, "--provider", "brevo", "--api-key-env", "BREVO_API_KEY"),
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
        "in",
        "flight",
    ]
    assert [line.split()[-5] for line in listing[2:]] == ["yes", "yes", "no"]  # ordered by name
    assert "Bac à sable" in listing[2] and "no key" in listing[2]
    assert BREVO_SERVER in listing[3] and "env var BREVO_API_KEY" in listing[3]
    assert "Postmark" in listing[4] and f"file {key_file}" in listing[4]
    everything = "".join(out + err for _, out, err in outputs)
    assert BREVO_KEY not in everything and "postmark-secret-555" not in everything


def test_server_update_changes_only_what_is_given(db: psycopg.Connection, run, keys: None, monkeypatch) -> None:
    custom = "https://api.eu.brevo.com/v3/smtp/email"
    run(
        "server",
        "add",
        BREVO_SERVER,
        "--provider",
        "brevo",
        "--url",
        custom,
        "--api-key-env",
        "BREVO_API_KEY",
        "--inactive",
    )
    monkeypatch.setenv("BREVO_API_KEY_2025", "xkeysib-new-secret")

    code, out, err = run("server", "update", BREVO_SERVER, "--api-key-env", "BREVO_API_KEY_2025")

    assert (code, err) == (0, "")
    assert out == f"server 1 '{BREVO_SERVER}' updated\n"
    server = catalog.server_by_name(db, BREVO_SERVER)
    assert server is not None
    assert (server.provider, server.url, server.api_key_ref, server.active) == (
        "brevo",
        custom,
        "env:BREVO_API_KEY_2025",
        False,
    )

    code, _, err = run("server", "update", BREVO_SERVER, "--provider", "sendgrid", "--active")
    assert (code, err) == (0, "")
    server = catalog.server_by_name(db, BREVO_SERVER)
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
    run("server", "add", BREVO_SERVER, "--provider", "brevo", "--api-key-env", "BREVO_API_KEY")
    monkeypatch.delenv("BREVO_API_KEY")

    code, _, err = run("server", "update", BREVO_SERVER, "--url", "https://api.brevo.com/v3/other")

    assert code == 1
    assert "environment variable BREVO_API_KEY (api_key_env) is not set or empty" in err
    server = catalog.server_by_name(db, BREVO_SERVER)
    assert server is not None and server.url == "https://api.brevo.com/v3/smtp/email"


def test_disable_warns_about_unfinished_campaigns_then_enable(
    db: psycopg.Connection, run, draft: int, seed_files: Path
) -> None:
    assert configure_seed(run, draft, seed_files)[0] == 0

    code, out, err = run("server", "disable", SENDGRID_SERVER)

    assert code == 0
    assert out == f"server '{SENDGRID_SERVER}' disabled\n"
    assert f"unfinished campaign(s) {draft} still have sending lines on server '{SENDGRID_SERVER}'" in err
    server = catalog.server_by_name(db, SENDGRID_SERVER)
    assert server is not None and not server.active
    # An inactive server cannot be chosen for a line.
    code, _, err = configure_seed(run, draft, seed_files)
    assert code == 1 and f"line 2: server '{SENDGRID_SERVER}' is inactive" in err

    code, out, err = run("server", "enable", SENDGRID_SERVER)
    assert (code, out, err) == (0, f"server '{SENDGRID_SERVER}' enabled\n", "")
    assert configure_seed(run, draft, seed_files)[0] == 0


def test_disable_an_unused_server_does_not_warn(db: psycopg.Connection, run, keys: None) -> None:
    run("server", "add", BREVO_SERVER, "--provider", "brevo", "--api-key-env", "BREVO_API_KEY")
    assert run("server", "disable", BREVO_SERVER) == (0, f"server '{BREVO_SERVER}' disabled\n", "")


def test_disable_an_unknown_server_exits_1_naming_the_existing_ones(db: psycopg.Connection, run, keys: None) -> None:
    run("server", "add", BREVO_SERVER, "--provider", "brevo", "--api-key-env", "BREVO_API_KEY")
    code, _, err = run("server", "disable", "Absent")
    assert code == 1
    assert f"server 'Absent' does not exist; existing servers: '{BREVO_SERVER}'" in err


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
                "--calls-in-flight",
                "2",
            ]
        )
        == 0
    )
    assert cli.main([*base, "update", "Brevo", "--url", "https://eu.example.com/v3/smtp/email"]) == 0
    row = catalog.server_by_name(db, "Brevo")
    assert (row.daily_cap, row.timezone, row.batch_size, row.calls_in_flight) == (300000, "Europe/Paris", 500, 2)

    update = ["update", "Brevo", "--daily-cap", "none", "--batch-size", "1", "--calls-in-flight", "none"]
    assert cli.main([*base, *update]) == 0
    row = catalog.server_by_name(db, "Brevo")
    assert (row.daily_cap, row.batch_size, row.calls_in_flight) == (None, 1, None)
    capsys.readouterr()
    cli.main([*base, "list"])
    assert "Europe/Paris" in capsys.readouterr().out
