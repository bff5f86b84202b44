"""The report SQL on the PostgreSQL side: read-only snapshots, sendable contacts, campaigns due a report."""

from __future__ import annotations

import psycopg
import pytest

from campaign_pipelines import blacklist, campaigns, templates
from campaign_pipelines.store import reports as report_sql
from tests.sending.fixtures import BREVO


def test_a_report_snapshot_refuses_writes(db):
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        with report_sql.report_snapshot(db):
            db.execute("INSERT INTO blacklist (email, reason) VALUES ('a@example.com', 'x')")
    assert db.execute("SELECT count(*) FROM blacklist").fetchone() == (0,)


def test_pending_blacklisted_counts_only_contacts_still_to_send(db, make_campaign):
    setup = make_campaign(3, [BREVO], launch=False)
    blacklist.add(db, "user0@example.com")
    blacklist.add(db, "someone.else@example.com")

    assert report_sql.pending_blacklisted(db, setup.campaign_id) == 1


def test_campaigns_to_report_are_running_or_stopped_recently(db):
    templates.save_template(db, "promo", "<p>Bonjour</p>")
    ids = {}
    for status, days in [("running", None), ("paused", 0), ("cancelled", 40), ("draft", None), ("completed", 2)]:
        ids[status] = campaigns.create_campaign(db, name=status, subject="Hi", template="promo")
        db.execute(
            "UPDATE campaigns SET status = %s, finished_at = now() - make_interval(days => %s) WHERE id = %s",
            (status, days, ids[status]),
        )

    due = report_sql.campaigns_to_report(db, within_days=30, limit=10)

    assert due == [(ids["running"], "running"), (ids["paused"], "paused"), (ids["completed"], "completed")]
