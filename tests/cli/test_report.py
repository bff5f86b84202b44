"""`campaigns campaign report`: the funnel, per line, and as JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg

from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import lines as line_sql
from tests.cli.support import one_line, set_progress
from tests.support import set_outcomes


def _sent_with_events(db: psycopg.Connection, campaign_id: int) -> None:
    """Every contact sent by line 1; contact 1 opened and clicked (a person), contact 2 opened by Apple's proxy."""
    line_id = line_sql.lines_of(db, campaign_id)[0].id
    set_outcomes(db, campaign_id, ContactStatus.SENT, line_id=line_id)
    db.execute("UPDATE campaigns SET sent_count = 7 WHERE id = %s", (campaign_id,))
    set_progress(db, campaign_id, 1, sent_count=7)
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
    flat = one_line(out)
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
    assert "contacts │ 0" in one_line(out)
    assert "note: " in out


def test_report_of_an_unknown_campaign_exits_1(db: psycopg.Connection, run) -> None:
    code, _, err = run("campaign", "report", "4242")
    assert (code, err) == (1, "error: campaign 4242 does not exist\n")
