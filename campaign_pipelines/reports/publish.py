"""`publish_report`: build a campaign's report and write its files, as the `campaign_report` asset does.

Files, under `folder/campaign-<id>/`: `report.html` (self-contained) and `outcomes/`, the per-contact
outcomes as one Parquet dataset (one row per contact, one file per slice of contacts the report
read: `part-000000.parquet`, … in contact-id order; DuckDB reads it as one table with
`read_parquet('outcomes/*.parquet')`, pandas and pyarrow with `read_parquet('outcomes')`). Each is
written beside its final name and renamed into place, so a reader never sees half a file nor an
outcome set missing slices: `outcomes/` is renamed away just before the new set is renamed in
(for that instant there is none). Reports before this form wrote one `outcomes.parquet` file; the
first set written in its folder deletes it.
The outcomes are written once the campaign is not running (its last minute-by-minute report, the
daily ones after, any report of a draft or paused campaign), or with `outcomes_while_running`: they
cost about as much as the rest of the report together, and while a campaign sends its report is
refreshed every minute. Until then the previous set, if any, stays as it was.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from campaign_pipelines.reports.build import build_report
from campaign_pipelines.reports.html import render_html
from campaign_pipelines.reports.model import CampaignReport

OUTCOMES = "outcomes"
# The single file reports wrote before the per-slice dataset.
_OLD_OUTCOMES = "outcomes.parquet"


@dataclass(frozen=True)
class PublishedReport:
    report: CampaignReport
    html: Path
    # The outcomes folder; None when this report wrote none (no contacts yet, or the campaign is running).
    outcomes: Path | None


def report_folder(folder: Path, campaign_id: int) -> Path:
    return folder / f"campaign-{int(campaign_id)}"


def publish_report(
    database_url: str, campaign_id: int, folder: Path, *, outcomes_while_running: bool = False
) -> PublishedReport:
    target = report_folder(folder, campaign_id)
    target.mkdir(parents=True, exist_ok=True)
    outcomes, partial, replaced = target / OUTCOMES, target / f".{OUTCOMES}.partial", target / f".{OUTCOMES}.old"
    for leftover in (partial, replaced):  # of a report that died writing
        shutil.rmtree(leftover, ignore_errors=True)
    report = build_report(database_url, campaign_id, outcomes=partial, outcomes_while_running=outcomes_while_running)
    written = partial.exists()
    if written or report.totals.contacts == 0:  # a reconfigured campaign's outcomes no longer hold
        if outcomes.exists():
            os.replace(outcomes, replaced)
        if written:
            os.replace(partial, outcomes)
        shutil.rmtree(replaced, ignore_errors=True)
        (target / _OLD_OUTCOMES).unlink(missing_ok=True)
    html, partial_html = target / "report.html", target / ".report.html.partial"
    partial_html.write_text(render_html(report), encoding="utf-8")
    os.replace(partial_html, html)
    return PublishedReport(report, html, outcomes if written else None)
