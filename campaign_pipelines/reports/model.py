"""The campaign report as plain data: funnels per campaign, line, recipient domain, hour and link.

Built by `campaign_pipelines.reports.build_report`; read by the `campaign_report` asset (Dagster
metadata, the HTML file), the CLI (`campaigns campaign report`, `--json` = `to_dict()`) and tests.
Rates are fractions of the contacts sent (0.0 while nothing is sent). "Human" counts leave out the
events the tracking app flagged as a machine's: Apple Mail Privacy Protection, security scanners
and prefetchers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


@dataclass(frozen=True)
class Funnel:
    """What happened to a group of contacts: send states, provider events, opens, clicks, unsubscribes.

    Unique counts are contacts (with at least one such event); the others count events.
    """

    contacts: int = 0
    pending: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    suppressed: int = 0
    delivered: int = 0
    hard_bounced: int = 0
    soft_bounced: int = 0
    complained: int = 0
    unique_opens: int = 0
    opens: int = 0
    human_unique_opens: int = 0
    human_opens: int = 0
    unique_clicks: int = 0
    clicks: int = 0
    human_unique_clicks: int = 0
    human_clicks: int = 0
    unsubscribed: int = 0

    @property
    def bounced(self) -> int:
        return self.hard_bounced + self.soft_bounced

    def rates(self) -> dict[str, float]:
        """Each rate over the contacts sent: raw and human-only open and click rates side by side."""
        return {
            "delivery_rate": _rate(self.delivered, self.sent),
            "open_rate": _rate(self.unique_opens, self.sent),
            "human_open_rate": _rate(self.human_unique_opens, self.sent),
            "click_rate": _rate(self.unique_clicks, self.sent),
            "human_click_rate": _rate(self.human_unique_clicks, self.sent),
            "hard_bounce_rate": _rate(self.hard_bounced, self.sent),
            "complaint_rate": _rate(self.complained, self.sent),
            "unsubscribe_rate": _rate(self.unsubscribed, self.sent),
        }

    def minus(self, other: Funnel) -> Funnel:
        return Funnel(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    def to_dict(self) -> dict[str, int | float]:
        return {**asdict(self), "bounced": self.bounced, **{k: round(v, 6) for k, v in self.rates().items()}}


@dataclass(frozen=True)
class LineFunnel:
    """A sending line's funnel; `label` is how the CLI names it ("line 1": its position)."""

    line_id: int
    position: int
    sender: str
    server: str
    funnel: Funnel

    @property
    def label(self) -> str:
        return f"line {self.position}"

    def to_dict(self) -> dict:
        return {
            "line": self.position,
            "label": self.label,
            "line_id": self.line_id,
            "sender": self.sender,
            "server": self.server,
            **self.funnel.to_dict(),
        }


@dataclass(frozen=True)
class DomainFunnel:
    domain: str
    funnel: Funnel

    def to_dict(self) -> dict:
        return {"domain": self.domain, **self.funnel.to_dict()}


@dataclass(frozen=True)
class HourActivity:
    """One hour (UTC, its start) since launch: what was sent then, and what recipients did then."""

    hour: datetime
    hours_since_launch: int | None
    sent: int = 0
    failed: int = 0
    opens: int = 0
    human_opens: int = 0
    clicks: int = 0
    human_clicks: int = 0
    unsubscribes: int = 0

    def to_dict(self) -> dict:
        return {**asdict(self), "hour": self.hour.isoformat()}


@dataclass(frozen=True)
class LinkClicks:
    """A tracked link (its number in the template) and its clicks; `url` None: no longer in the link table."""

    idx: int
    url: str | None
    clicks: int = 0
    unique_clicks: int = 0
    human_clicks: int = 0
    human_unique_clicks: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CampaignReport:
    """Everything the report shows about one campaign, as of `generated_at`.

    `sendable`: contacts sent or still to send, less those the send loop will suppress (blacklisted
    since the import). `domains`: the largest recipient domains (by contacts), `other_domains` the
    rest together. `notes` say why parts of the report are empty (no import, nothing sent yet, no
    events): a report never fails for lack of data.
    """

    campaign_id: int
    name: str
    status: str
    generated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    sendable: int
    totals: Funnel
    lines: tuple[LineFunnel, ...] = ()
    domains: tuple[DomainFunnel, ...] = ()
    other_domains: Funnel = field(default_factory=Funnel)
    hours: tuple[HourActivity, ...] = ()
    links: tuple[LinkClicks, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready (ISO 8601 times, rates as fractions)."""
        return {
            "campaign_id": self.campaign_id,
            "name": self.name,
            "status": self.status,
            "generated_at": self.generated_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "sendable": self.sendable,
            "totals": self.totals.to_dict(),
            "lines": [line.to_dict() for line in self.lines],
            "domains": [domain.to_dict() for domain in self.domains],
            "other_domains": self.other_domains.to_dict(),
            "hours": [hour.to_dict() for hour in self.hours],
            "links": [link.to_dict() for link in self.links],
            "notes": list(self.notes),
        }
