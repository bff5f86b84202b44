"""Where a campaign's sending stands: its totals and each line's, in the words the CLI and the
Dagster UI both show (lines are numbered by position: "line 1", "line 2").

Read from the counters the send loops keep (campaigns.sent_count, campaign_channels.*_count):
no scan of the contact table, so it is cheap enough for every progress report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from campaign_pipelines.errors import NotFoundError
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql


def line_label(position: int) -> str:
    """A line's name everywhere a person reads it: its position in the campaign's configuration."""
    return f"line {position}"


@dataclass(frozen=True)
class LineTotals:
    label: str
    sender: str
    server: str
    status: str
    reason: str | None
    sent: int
    failed: int
    unknown: int
    suppressed: int


@dataclass(frozen=True)
class SendTotals:
    """`total` is every contact of the campaign; `pending` those not final yet (in flight included),
    so total = sent + failed + unknown + suppressed + pending."""

    campaign_id: int
    status: str
    total: int
    sent: int
    failed: int
    unknown: int
    suppressed: int
    lines: list[LineTotals]

    @property
    def pending(self) -> int:
        return max(self.total - self.sent - self.failed - self.unknown - self.suppressed, 0)

    @property
    def done_share(self) -> float:
        """The share of contacts whose send is final (1.0 for a campaign without contacts)."""
        return 1.0 - self.pending / self.total if self.total else 1.0

    @classmethod
    def of(cls, campaign: campaign_sql.CampaignRow, lines: Sequence[line_sql.LineState]) -> SendTotals:
        return cls(
            campaign_id=campaign.id,
            status=campaign.status,
            total=campaign.nbre_contacts,
            sent=campaign.sent_count,
            failed=sum(line.failed_count for line in lines),
            unknown=sum(line.unknown_count for line in lines),
            suppressed=sum(line.suppressed_count for line in lines),
            lines=[
                LineTotals(
                    label=line_label(line.position),
                    sender=f"{line.sender_name} <{line.sender_email}>",
                    server=line.server_name,
                    status=line.status,
                    reason=line.reason,
                    sent=line.sent_count,
                    failed=line.failed_count,
                    unknown=line.unknown_count,
                    suppressed=line.suppressed_count,
                )
                for line in lines
            ],
        )


def send_totals(conn: psycopg.Connection, campaign_id: int) -> SendTotals:
    campaign = campaign_sql.campaign_by_id(conn, campaign_id)
    if campaign is None:
        raise NotFoundError(f"campaign {campaign_id} does not exist")
    return SendTotals.of(campaign, line_sql.lines_of(conn, campaign_id))
