"""Sending lines typed on the command line: `--channel` key=value options and `--config` files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from campaign_pipelines import cli
from campaign_pipelines.ops.admin import LineConfig
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from tests.cli.support import PROMO_LINE
from tests.support import BREVO_SERVER, SENDGRID_SERVER


def test_configure_from_a_config_file(
    db: psycopg.Connection, run, draft: int, seed_files: Path, tmp_path: Path
) -> None:
    config = tmp_path / "black-friday.json"
    config.write_text(
        json.dumps(
            {
                "contact_files": ["clients_vip.json"],
                "channels": [
                    {"sender_name": "L'équipe Promo", "sender_email": "offres@mondomaine.com", "server": BREVO_SERVER},
                    {
                        "sender_name": "Le Service Client",
                        "sender_email": "support@mondomaine.com",
                        "server": SENDGRID_SERVER,
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


def test_an_escaped_comma_stays_in_the_value(db: psycopg.Connection, run, draft: int, seed_files: Path) -> None:
    line = f"sender_name=Dupont\\, Frères,sender_email=contact@dupont.fr,server={BREVO_SERVER},max_daily_sends="
    code, _, err = run(
        "campaign", "configure", str(draft), "--contacts-dir", str(seed_files), "--file", "clients_vip.json",
        "--channel", line,
    )  # fmt: skip
    assert (code, err) == (0, "")
    (only,) = line_sql.lines_of(db, draft)
    assert (only.sender_name, only.max_daily_sends) == ("Dupont, Frères", None)


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
        f"sender_name=S,sender_email=s@x.com,server={SENDGRID_SERVER},frequency=1,max_daily_sends=5k",
        "--channel",
        f"sender_name=T,sender_email=t@x.com,server={SENDGRID_SERVER},send_frequency_minutes=vite",
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


def test_a_line_has_the_keys_of_the_launchpad_form(run, draft: int) -> None:
    code, _, err = run("campaign", "configure", str(draft), "--file", "a.json", "--channel", "sender=S,server=X")

    assert code == 2
    expected = ", ".join(LineConfig.model_fields)
    assert f"channel 1: unknown key 'sender' (expected {expected})" in err
    assert expected == "sender_name, sender_email, server, send_frequency_minutes, max_daily_sends, scheduled_at"
    assert "channel 1: sender_name is missing" in err
    assert "channel 1: sender_email is missing" in err
    assert "server is missing" not in err


def test_every_wrongly_typed_value_of_a_config_file_is_named_with_its_line(
    db: psycopg.Connection, run, draft: int, seed_files: Path, tmp_path: Path
) -> None:
    line = {"sender_name": "Promo", "sender_email": "offres@mondomaine.com", "server": BREVO_SERVER}
    config = tmp_path / "typed.json"
    config.write_text(
        json.dumps(
            {
                "contact_files": ["clients_vip.json"],
                "channels": [
                    {**line, "sender_name": 5, "max_daily_sends": True},
                    {**line, "send_frequency_minutes": "inf", "max_daily_sends": 2.5},
                    {**line, "send_frequency_minutes": False, "scheduled_at": 20251128},
                    {**line, "server": None},
                ],
            }
        ),
        encoding="utf-8",
    )

    code, _, err = run("campaign", "configure", str(draft), "--contacts-dir", str(seed_files), "--config", str(config))

    assert code == 1
    assert f"config file {config}: 7 problem(s)" in err
    assert "channel 1: sender_name must be text, got 5" in err
    assert "channel 1: max_daily_sends True is not a number" in err
    assert "channel 2: send_frequency_minutes 'inf' is not a number" in err
    assert "channel 2: max_daily_sends 2.5 is not a whole number" in err
    assert "channel 3: send_frequency_minutes False is not a number" in err
    assert "channel 3: scheduled_at must be text, got 20251128" in err
    assert "channel 4: server must be text, got None" in err
    assert line_sql.lines_of(db, draft) == []


def test_empty_optional_values_are_the_defaults_and_numbers_are_read_as_the_launchpad_reads_them(
    db: psycopg.Connection, run, draft: int, seed_files: Path
) -> None:
    line = (
        f"sender_name=Promo,sender_email=offres@mondomaine.com,server={BREVO_SERVER},"
        "send_frequency_minutes= ,max_daily_sends=2500.0,scheduled_at="
    )

    code, _, err = run(
        "campaign", "configure", str(draft), "--contacts-dir", str(seed_files), "--file", "clients_vip.json",
        "--channel", line,
    )  # fmt: skip

    assert (code, err) == (0, "")
    (only,) = line_sql.lines_of(db, draft)
    assert (only.send_frequency_minutes, only.max_daily_sends, only.scheduled_at) == (None, 2500, None)


def test_an_empty_sender_is_left_for_configure_to_refuse(
    db: psycopg.Connection, run, draft: int, seed_files: Path
) -> None:
    code, _, err = run(
        "campaign", "configure", str(draft), "--contacts-dir", str(seed_files), "--file", "clients_vip.json",
        "--channel", f"sender_name=,sender_email=offres@mondomaine.com,server={BREVO_SERVER}",
    )  # fmt: skip

    assert code == 1
    assert "line 1: sender name is empty" in err


def test_only_the_commands_reading_lines_import_dagster() -> None:
    """Dagster takes a second to import: `campaigns --help`, `watch`... do not wait for it."""
    check = "import sys; from campaign_pipelines import cli; cli.build_parser(); print('dagster' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout == "False\n"
