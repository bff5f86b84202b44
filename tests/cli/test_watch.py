"""`campaigns campaign watch`: the bars, what each line waits for, and when watching ends."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from campaign_pipelines.cli import watch as cli_watch
from tests.cli.support import configure_seed, one_line, set_progress, status_of
from tests.support import BREVO_SERVER, SENDGRID_SERVER


def _shown(moment: datetime) -> str:
    """A moment as watch shows it: local time of day, with the date when not today."""
    local = moment.astimezone()
    return f"{local:%H:%M:%S}" if local.date() == datetime.now().astimezone().date() else f"{local:%Y-%m-%d %H:%M:%S}"


def test_watch_once_shows_a_bar_per_line(db: psycopg.Connection, run, launched: int) -> None:
    set_progress(db, launched, 1, status="sending", sent_count=3)
    set_progress(db, launched, 2, status="waiting", reason="next send in 1 min", sent_count=1)
    db.execute("UPDATE campaigns SET sent_count = 4 WHERE id = %s", (launched,))

    code, out, err = run("campaign", "watch", str(launched), "--once")

    assert (code, err) == (0, "")
    rows = out.splitlines()
    # A title, then a bar with the sent count, for the campaign and for each line.
    assert rows[0] == f"campaign {launched}  'Black Friday 2025 - Ventes Flash'  running"
    assert rows[1].startswith("  ━") and rows[1].endswith("4/7 57%  -")
    assert rows[2] == f"line 1  L'équipe Promo · {BREVO_SERVER}  sending"
    assert rows[3].endswith("3/7 43%  -")
    assert rows[4] == f"line 2  Le Service Client · {SENDGRID_SERVER}  waiting  next send in 1 min"
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
    assert f"campaign_launch_sensor starts it at {start.astimezone():%Y-%m-%d %H:%M:%S}" in one_line(out)


def test_watch_once_of_an_unimported_campaign_names_the_import_sensor(run, draft: int, seed_files: Path) -> None:
    assert configure_seed(run, draft, seed_files)[0] == 0

    code, out, _ = run("campaign", "watch", str(draft), "--once")

    assert code == 0
    assert "campaign_import_sensor imports its contacts, then campaign_launch_sensor starts it" in one_line(out)


def test_watch_shows_what_each_line_waits_for_and_until_when(db: psycopg.Connection, run, launched: int) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # Line 1 is in its step but waits out its one-minute pacing; line 2 stopped at its quota.
    set_progress(db, launched, 1, status="sending", send_frequency_minutes=1, last_sent_at=now - timedelta(seconds=20))
    db.execute("UPDATE servers SET timezone = 'Europe/Paris' WHERE name = %s", (SENDGRID_SERVER,))
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), ZoneInfo("Europe/Paris"))
    set_progress(
        db,
        launched,
        2,
        status="quota_reached",
        reason=f"reached 5000/day, stopping until {midnight:%Y-%m-%d %H:%M} Europe/Paris",
        next_run_at=midnight,
    )

    code, out, _ = run("campaign", "watch", str(launched), "--once")

    assert code == 0
    flat = one_line(out)
    assert (
        f"line 1 L'équipe Promo · {BREVO_SERVER} waiting (pacing) until {_shown(now + timedelta(seconds=40))} 0/7 0%"
        in flat
    )
    assert "sending" not in flat
    assert (
        f"line 2 Le Service Client · {SENDGRID_SERVER} quota reached, resumes 00:00 Europe/Paris reached 5000/day 0/7"
        in flat
    )


def test_watch_shows_a_long_wait_the_step_ended_for(db: psycopg.Connection, run, launched: int) -> None:
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    set_progress(db, launched, 1, status="waiting", reason=f"pacing until {moment.isoformat()}", next_run_at=moment)

    code, out, _ = run("campaign", "watch", str(launched), "--once")

    assert code == 0
    assert f"{BREVO_SERVER} waiting (pacing) until {_shown(moment)} 0/7 0%" in one_line(out)


def test_watch_ends_at_once_when_the_campaign_is_over(
    db: psycopg.Connection, run, launched: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError("a finished campaign is not watched")

    monkeypatch.setattr(cli_watch.time, "sleep", no_sleep)
    set_progress(db, launched, 1, status="done", sent_count=5)
    set_progress(db, launched, 2, status="done", sent_count=2)
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
        set_progress(db, launched, 1, status="sending", sent_count=2 * len(waits))
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
    assert status_of(db, launched) == "running"


def test_watch_checks_its_arguments(db: psycopg.Connection, run) -> None:
    code, _, err = run("campaign", "watch", "1", "--interval", "0")
    assert code == 2
    assert "'0' must be a positive number of seconds" in err
    code, _, err = run("campaign", "watch", "4242", "--once")
    assert code == 1
    assert "campaign 4242 does not exist" in err


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
        set_progress(db, launched, 1, status="sending", sent_count=len(reads))
        db.execute("UPDATE campaigns SET sent_count = %s WHERE id = %s", (len(reads), launched))
        if len(reads) == 4:
            db.execute("UPDATE campaigns SET status = 'cancelled' WHERE id = %s", (launched,))

    monkeypatch.setattr(cli_watch.time, "sleep", thirty_seconds_later)

    code, out, _ = run("campaign", "watch", str(launched), "--interval", "30")

    assert code == 0
    final = out.rsplit("campaign 1  ", 1)[-1]
    assert "2.0/min" in final and "0.0/s" not in out
