"""build_report against real PostgreSQL: the funnel of a sent campaign, and reports over missing data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import psycopg
import pytest

from campaign_pipelines import blacklist, campaigns, templates
from campaign_pipelines.errors import NotFoundError
from campaign_pipelines.reports import build_report
from campaign_pipelines.store.tracking import CLICK, OPEN, UNSUBSCRIBE, copy_events, save_links
from tests.sending.fixtures import BREVO, SENDGRID
from tests.support import record_delivery

HUMAN, APPLE_MPP, SCANNER = 0, 1, 2


def _events(db: psycopg.Connection, campaign_id: int, rows: list[tuple[int, int, int | None, int]]) -> None:
    """(contact id, kind, link number, flag) events from now on, one second apart, as the tracking app writes them."""
    start = datetime.now(UTC)  # after the launch: hours since launch are never negative
    null = "\\N"
    lines = [
        f"{campaign_id}\t{contact}\t{kind}\t{null if link is None else link}\t{flag}\t"
        f"{(start + timedelta(seconds=i)).isoformat()}\t{null}\t{null}\n"
        for i, (contact, kind, link, flag) in enumerate(rows)
    ]
    copy_events(db, "".join(lines).encode())


@pytest.fixture
def sent_campaign(db, make_campaign, run_line) -> int:
    """Ten contacts on two lines, all sent; contact ids 1-10 (user0@ ... user9@example.com)."""
    setup = make_campaign(10, [BREVO, SENDGRID])
    for line_id in setup.line_ids:
        run_line(line_id)
    save_links(db, setup.campaign_id, ["https://shop.example.com/bf", "https://shop.example.com/cgv"])
    return setup.campaign_id


# Read in one slice, and in slices of 3 contact ids (1-3, 4-6, 7-9, 10): the counts are the same.
@pytest.mark.parametrize("slice_contacts", [1_000_000, 3])
def test_a_sent_campaign_shows_its_funnel_with_human_rates_beside_raw_ones(
    db, database_url, sent_campaign, slice_contacts
):
    _events(
        db,
        sent_campaign,
        [
            (1, OPEN, None, HUMAN),
            (1, OPEN, None, HUMAN),  # a second open: counted in total, not in unique
            (2, OPEN, None, APPLE_MPP),
            (3, OPEN, None, APPLE_MPP),
            (3, CLICK, 0, SCANNER),
            (4, CLICK, 0, HUMAN),
            (4, CLICK, 1, HUMAN),
            (5, UNSUBSCRIBE, None, HUMAN),
        ],
    )
    for contact_id in (1, 2, 3, 4, 5, 6, 7, 8):
        record_delivery(db, sent_campaign, contact_id, blacklist.DELIVERED)
    record_delivery(db, sent_campaign, 9, blacklist.HARD_BOUNCE)
    record_delivery(db, sent_campaign, 8, blacklist.COMPLAINT)

    report = build_report(database_url, sent_campaign, slice_contacts=slice_contacts)

    totals = report.totals
    assert (totals.contacts, totals.sent, totals.pending, totals.failed) == (10, 10, 0, 0)
    assert (totals.delivered, totals.hard_bounced, totals.complained) == (8, 1, 1)
    assert (totals.opens, totals.unique_opens, totals.human_opens, totals.human_unique_opens) == (4, 3, 2, 1)
    assert (totals.clicks, totals.unique_clicks, totals.human_clicks, totals.human_unique_clicks) == (3, 2, 2, 1)
    assert totals.unsubscribed == 1
    rates = totals.rates()
    assert rates["open_rate"] == pytest.approx(0.3) and rates["human_open_rate"] == pytest.approx(0.1)
    assert rates["click_rate"] == pytest.approx(0.2) and rates["human_click_rate"] == pytest.approx(0.1)
    assert report.sendable == 10
    assert [line.label for line in report.lines] == ["line 1", "line 2"]
    assert sum(line.funnel.sent for line in report.lines) == 10
    assert [(d.domain, d.funnel.contacts) for d in report.domains] == [("example.com", 10)]
    assert report.other_domains.contacts == 0
    assert [(link.idx, link.url, link.clicks, link.unique_clicks, link.human_clicks) for link in report.links] == [
        (0, "https://shop.example.com/bf", 2, 2, 1),
        (1, "https://shop.example.com/cgv", 1, 1, 1),
    ]
    assert sum(hour.sent for hour in report.hours) == 10
    assert sum(hour.opens for hour in report.hours) == 4
    assert all(hour.hours_since_launch is not None and hour.hours_since_launch >= 0 for hour in report.hours)
    assert report.notes == ()
    as_json = report.to_dict()
    assert as_json["totals"]["human_open_rate"] == 0.1 and as_json["lines"][0]["label"] == "line 1"


def test_the_outcomes_of_a_campaign_read_in_slices_are_one_table_of_every_contact_once(
    db, database_url, sent_campaign, tmp_path
):
    _events(db, sent_campaign, [(4, OPEN, None, HUMAN), (10, CLICK, 0, HUMAN), (10, CLICK, 0, APPLE_MPP)])
    folder = tmp_path / "report" / "outcomes"

    build_report(database_url, sent_campaign, outcomes=folder, outcomes_while_running=True, slice_contacts=4)

    rows = duckdb.sql(
        f"SELECT contact_id, status, opens, clicks, human_clicks FROM '{folder}/*.parquet' ORDER BY 1"
    ).fetchall()
    assert [row[0] for row in rows] == list(range(1, 11))
    assert {row[1] for row in rows} == {"sent"}
    assert (rows[3][2], rows[9][3:]) == (1, (2, 1))
    # One file per slice of 4 ids, in id order, and nothing else beside them.
    assert sorted(path.name for path in folder.iterdir()) == [f"part-{n:06d}.parquet" for n in range(3)]
    assert [
        duckdb.sql(f"SELECT min(contact_id), max(contact_id) FROM '{folder}/part-{n:06d}.parquet'").fetchone()
        for n in range(3)
    ] == [(1, 4), (5, 8), (9, 10)]
    assert list((tmp_path / "report").iterdir()) == [folder]


def test_outcomes_are_never_written_into_an_existing_folder(database_url, sent_campaign, tmp_path):
    older = tmp_path / "outcomes"
    older.mkdir()

    with pytest.raises(FileExistsError):
        build_report(database_url, sent_campaign, outcomes=older, outcomes_while_running=True)
    assert list(older.iterdir()) == []


def test_a_sent_campaign_without_events_shows_zeros_and_says_why(database_url, sent_campaign):
    report = build_report(database_url, sent_campaign)

    assert report.totals.sent == 10 and report.totals.opens == 0 and report.totals.delivered == 0
    assert report.totals.rates()["open_rate"] == 0.0
    assert "no opens, clicks or unsubscribes recorded yet" in report.notes
    assert any(note.startswith("no provider webhook events yet") for note in report.notes)


def test_a_campaign_not_yet_imported_reports_zeros_and_why(db, database_url):
    templates.save_template(db, "promo", "<p>Bonjour</p>")
    campaign_id = campaigns.create_campaign(db, name="Draft", subject="Hi", template="promo")

    report = build_report(database_url, campaign_id)

    assert report.status == "draft" and report.totals.contacts == 0 and report.sendable == 0
    assert report.lines == () and report.hours == () and report.links == ()
    assert "no contacts: the campaign's contacts have not been imported yet" in report.notes
    assert "no sending lines configured yet" in report.notes


def test_a_failed_import_is_reported_with_its_reason(db, database_url, make_campaign):
    setup = make_campaign(3, [BREVO], launch=False)
    db.execute(
        "UPDATE campaigns SET status = 'failed', error = 'contact file ''x.json'' is not UTF-8 text' WHERE id = %s",
        (setup.campaign_id,),
    )

    report = build_report(database_url, setup.campaign_id)

    assert report.totals.contacts == 3 and report.totals.sent == 0
    assert "the import failed: contact file 'x.json' is not UTF-8 text" in report.notes
    assert "nothing sent yet: the campaign has not been launched" in report.notes


def test_contacts_blacklisted_since_the_import_are_not_sendable(db, database_url, make_campaign):
    setup = make_campaign(4, [BREVO], launch=False)
    blacklist.add(db, "user0@example.com")

    report = build_report(database_url, setup.campaign_id)

    assert (report.totals.contacts, report.sendable) == (4, 3)


def test_an_unknown_campaign_is_named(database_url):
    with pytest.raises(NotFoundError, match="campaign 42 does not exist"):
        build_report(database_url, 42)


def test_the_report_leaves_running_lines_alone(db, database_url, make_campaign):
    """A report reads in its own snapshot: a line's row locked by a send loop does not hold it up."""
    setup = make_campaign(3, [BREVO])
    with psycopg.connect(database_url) as sender:
        sender.execute("SELECT 1 FROM campaign_channels WHERE id = %s FOR UPDATE", (setup.line_ids[0],))
        report = build_report(database_url, setup.campaign_id)
    assert report.totals.pending == 3
