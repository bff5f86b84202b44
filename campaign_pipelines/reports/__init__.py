"""Campaign reports: the funnel model, how it is built, and the files it is published as.

`build_report(database_url, campaign_id) -> CampaignReport` (its `to_dict()` is the JSON form);
`publish_report(database_url, campaign_id, folder)` also writes the HTML and Parquet files, as the
`campaign_report` asset does.
"""

from campaign_pipelines.reports.build import TOP_DOMAINS, build_report
from campaign_pipelines.reports.model import (
    CampaignReport,
    DomainFunnel,
    Funnel,
    HourActivity,
    LineFunnel,
    LinkClicks,
)

__all__ = [
    "TOP_DOMAINS",
    "CampaignReport",
    "DomainFunnel",
    "Funnel",
    "HourActivity",
    "LineFunnel",
    "LinkClicks",
    "build_report",
]
