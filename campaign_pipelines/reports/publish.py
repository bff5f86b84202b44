"""`publish_report`: build a campaign's report and write its files, as the `campaign_report` asset does.

Files, under `folder/campaign-<id>/`: `report.html` (self-contained) and `outcomes.parquet` (one row
per contact). Each is written beside its final name and renamed into place, so a reader never sees
half a file.
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
    # None when the campaign has no contacts yet (nothing to export).
    outcomes: Path | None


def report_folder(folder: Path, campaign_id: int) -> Path:
    return folder / f"campaign-{int(campaign_id)}"


def publish_report(database_url: str, campaign_id: int, folder: Path) -> PublishedReport:
    target = report_folder(folder, campaign_id)
    target.mkdir(parents=True, exist_ok=True)
    outcomes, partial_outcomes = target / "outcomes.parquet", target / ".outcomes.parquet.partial"
    report = build_report(database_url, campaign_id, outcomes=partial_outcomes)
    if partial_outcomes.exists():
        os.replace(partial_outcomes, outcomes)
    else:
        outcomes.unlink(missing_ok=True)  # a reconfigured campaign's export no longer holds
    html, partial_html = target / "report.html", target / ".report.html.partial"
    partial_html.write_text(render_html(report), encoding="utf-8")
    os.replace(partial_html, html)
    return PublishedReport(report, html, outcomes if outcomes.exists() else None)
