"""`campaigns campaign list` and `campaigns campaign status`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store.contacts import contact_table
from tests.cli.support import configure_seed, set_progress
from tests.support import set_outcomes


def test_campaign_list_and_status(db: psycopg.Connection, run, draft: int, seed_files: Path) -> None:
    assert configure_seed(run, draft, seed_files, "--import-now")[0] == 0
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


def test_status_shows_the_progress_of_each_line(db: psycopg.Connection, run, launched: int) -> None:
    now = datetime.now(UTC)
    set_progress(
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
    set_progress(db, launched, 2, status="sending", sent_count=1, unknown_count=1, heartbeat_at=now)
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


def test_status_counts_contacts_blacklisted_after_they_were_sent(db: psycopg.Connection, run, launched: int) -> None:
    set_outcomes(db, launched, ContactStatus.SENT)
    emails = [
        row[0]
        for row in db.execute(sql.SQL("SELECT email FROM {} ORDER BY id LIMIT 3").format(contact_table(launched)))
    ]
    # Two recipients unsubscribed after the send; a third was skipped as blacklisted, then taken off the list.
    for email in emails[:2]:
        db.execute("INSERT INTO blacklist (email, reason, source) VALUES (%s, 'unsubscribed', 'unsubscribe')", (email,))
    set_outcomes(db, launched, ContactStatus.SUPPRESSED, emails=[emails[2]])

    code, out, _ = run("campaign", "status", str(launched))

    assert code == 0
    assert "blacklisted:   3" in out


def test_list_shows_progress_and_human_beside_raw_rates(db: psycopg.Connection, run, launched: int) -> None:
    set_progress(db, launched, 1, sent_count=4, failed_count=1)
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
