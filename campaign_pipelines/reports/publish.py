"""`publish_report`: build a campaign's report and write its files, as the `campaign_report` asset does.

Files, under `folder/campaign-<id>/`: `report.html` (self-contained) and `outcomes.parquet` (one row
per contact). Each is written beside its final name and renamed into place, so a reader never sees
half a file. The Parquet file is written once the campaign is not running (its last minute-by-minute
report, the daily ones after, any report of a draft or paused campaign), or with `outcomes_while_running`:
it costs about as much as the rest of the report together, and while a campaign sends its report
is refreshed every minute. Until then the previous file, if any, stays as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from campaign_pipelines.reports.build import build_report
from campaign_pipelines.reports.html import render_html
from campaign_pipelines.reports.model import CampaignReport


@dataclass(frozen=True)
class PublishedReport:
    report: CampaignReport
    html: Path
    # None when this report wrote none (no contacts yet, or the campaign is running).
    outcomes: Path | None


def report_folder(folder: Path, campaign_id: int) -> Path:
    return folder / f"campaign-{int(campaign_id)}"


def publish_report(
    database_url: str, campaign_id: int, folder: Path, *, outcomes_while_running: bool = False
) -> PublishedReport:
    target = report_folder(folder, campaign_id)
    target.mkdir(parents=True, exist_ok=True)
    outcomes, partial_outcomes = target / "outcomes.parquet", target / ".outcomes.parquet.partial"
    report = build_report(
        database_url, campaign_id, outcomes=partial_outcomes, outcomes_while_running=outcomes_while_running
    )
    written = partial_outcomes.exists()
    if written:
        os.replace(partial_outcomes, outcomes)
    elif report.totals.contacts == 0:
        outcomes.unlink(missing_ok=True)  # a reconfigured campaign's export no longer holds
    html, partial_html = target / "report.html", target / ".report.html.partial"
    partial_html.write_text(render_html(report), encoding="utf-8")
    os.replace(partial_html, html)
    return PublishedReport(report, html, outcomes if written else None)
