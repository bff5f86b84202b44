"""The report's charts: inline SVG whose axes read in the units the report counts in."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from campaign_pipelines.reports import CampaignReport, Funnel, HourActivity
from campaign_pipelines.reports.charts import hourly_chart

LAUNCH = datetime(2026, 11, 27, 9, tzinfo=UTC)


def _report(hours: list[HourActivity]) -> CampaignReport:
    return CampaignReport(
        campaign_id=1,
        name="Black Friday",
        status="completed",
        generated_at=LAUNCH,
        started_at=LAUNCH,
        finished_at=LAUNCH,
        sendable=12,
        totals=Funnel(contacts=12, sent=12),
        hours=tuple(hours),
    )


def _labels(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


def test_a_campaign_sent_within_its_first_hour_has_whole_hours_on_its_axis() -> None:
    svg = hourly_chart(_report([HourActivity(LAUNCH, 0, sent=12, opens=2, human_opens=1)]))

    numbers = [label for label in _labels(svg) if re.fullmatch(r"[−\-]?[\d.,]+", label.strip())]
    assert numbers, "the chart has no tick labels"
    assert not [label for label in numbers if "." in label], f"fractional ticks: {numbers}"
