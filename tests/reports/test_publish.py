"""publish_report: a campaign's report.html and outcomes/ folder, each renamed into place whole."""

from __future__ import annotations

import duckdb

from campaign_pipelines.reports.publish import publish_report
from tests.sending.fixtures import BREVO


def test_a_new_outcome_set_replaces_the_old_one_and_what_dead_reports_left(
    database_url, make_campaign, run_line, tmp_path
):
    setup = make_campaign(10, [BREVO])
    run_line(setup.line_ids[0])
    target = tmp_path / f"campaign-{setup.campaign_id}"
    (target / "outcomes").mkdir(parents=True)
    duckdb.sql(f"COPY (SELECT 99 AS contact_id) TO '{target}/outcomes/part-000003.parquet' (FORMAT parquet)")
    duckdb.sql(f"COPY (SELECT 98 AS contact_id) TO '{target}/outcomes.parquet' (FORMAT parquet)")
    for leftover in (".outcomes.partial", ".outcomes.old"):  # a report killed while writing
        (target / leftover).mkdir()
        (target / leftover / "part-000000.parquet").write_bytes(b"half written")

    published = publish_report(database_url, setup.campaign_id, tmp_path, outcomes_while_running=True)

    assert published.outcomes == target / "outcomes"
    assert sorted(path.name for path in target.iterdir()) == ["outcomes", "report.html"]
    assert [path.name for path in published.outcomes.iterdir()] == ["part-000000.parquet"]
    rows = duckdb.sql(
        f"SELECT count(*), count(DISTINCT contact_id), max(contact_id) FROM '{published.outcomes}/*.parquet'"
    )
    assert rows.fetchone() == (10, 10, 10)


def test_a_running_campaign_s_report_leaves_the_last_outcome_set_as_it_was(
    database_url, make_campaign, run_line, tmp_path
):
    setup = make_campaign(10, [BREVO])
    run_line(setup.line_ids[0])
    first = publish_report(database_url, setup.campaign_id, tmp_path, outcomes_while_running=True)
    assert first.outcomes is not None
    written = {path.name: path.stat().st_mtime_ns for path in first.outcomes.iterdir()}

    again = publish_report(database_url, setup.campaign_id, tmp_path)

    assert again.report.status == "running" and again.outcomes is None
    assert {path.name: path.stat().st_mtime_ns for path in first.outcomes.iterdir()} == written
