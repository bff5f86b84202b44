"""`campaigns campaign watch ID`: live progress of a campaign and its lines, read from the database
(the sends themselves run in Dagster)."""

from __future__ import annotations

import argparse
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.padding import Padding
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from campaign_pipelines.cli.common import _campaign, _Database, _to_send
from campaign_pipelines.cli.output import _STATUS_STYLES
from campaign_pipelines.sending.progress import line_label
from campaign_pipelines.statuses import SETTLED_CAMPAIGNS, CampaignStatus, LineStatus
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql

# Rates are measured over this many seconds of reads.
_RATE_WINDOW_S = 60.0


@dataclass
class _Rates:
    """Send rates over the last minute of reads (or since watching began), per line and for the
    campaign: a line paced at one send a minute reads 1.0/min, not 0.0/s between two sends."""

    # (monotonic time, sent count by line id; None is the whole campaign), oldest first.
    reads: deque[tuple[float, dict[int | None, int]]] = field(default_factory=deque)

    def update(self, campaign: campaign_sql.CampaignRow, lines: Sequence[line_sql.LineState]) -> None:
        now = time.monotonic()
        self.reads.append((now, {None: campaign.sent_count, **{line.id: line.sent_count for line in lines}}))
        # Keep one read at least a window old, so the rate always spans a whole window once it can.
        while len(self.reads) > 2 and now - self.reads[1][0] >= _RATE_WINDOW_S:
            self.reads.popleft()

    def of(self, key: int | None) -> str:
        if len(self.reads) < 2:
            return "-"
        (first_at, first), (last_at, last) = self.reads[0], self.reads[-1]
        if last_at <= first_at or key not in last:
            return "-"
        per_s = max(last[key] - first.get(key, last[key]), 0) / (last_at - first_at)
        return f"{per_s:,.1f}/s" if per_s >= 1 else f"{per_s * 60:,.1f}/min"


def _campaign_watch(args: argparse.Namespace, db: _Database) -> None:
    console = Console(highlight=False)
    rates = _Rates()

    def frame() -> tuple[campaign_sql.CampaignRow, RenderableType]:
        # Short autocommit queries: no snapshot is held between two reads.
        campaign = _campaign(db.conn, args.campaign_id)
        lines = line_sql.lines_of(db.conn, campaign.id)
        rates.update(campaign, lines)
        return campaign, _progress_view(campaign, lines, rates, watching=not args.once)

    campaign, view = frame()
    if args.once:
        console.print(view)
        return
    interrupted = False
    try:
        with Live(view, console=console, auto_refresh=False) as live:
            while campaign.status not in SETTLED_CAMPAIGNS:
                time.sleep(args.interval)
                campaign, view = frame()
                live.update(view, refresh=True)
    except KeyboardInterrupt:
        interrupted = True
    if not console.is_terminal:
        console.line()  # Rich ends the frame it leaves in a file or pipe without a newline
    if interrupted:
        print(f"stopped watching; campaign {campaign.id} is {campaign.status} and goes on without you")
    else:
        print(f"campaign {campaign.id} {campaign.status}: {campaign.sent_count:,} of {_to_send(campaign):,} sent")


def _progress_view(
    campaign: campaign_sql.CampaignRow, lines: Sequence[line_sql.LineState], rates: _Rates, *, watching: bool
) -> RenderableType:
    """A title and a bar for the campaign, then for each line; the bars are aligned, the titles wrap."""
    total = _to_send(campaign)
    counts = {None: campaign.sent_count, **{line.id: line.sent_count for line in lines}}
    shares = {key: f"{sent:,}/{total:,}" + (f" {sent / total:.0%}" if total else "") for key, sent in counts.items()}
    share_width = max(len(share) for share in shares.values())
    rate_width = max(len(rates.of(key)) for key in counts)

    def bar(key: int | None) -> RenderableType:
        grid = Table.grid(padding=(0, 0, 0, 2), expand=True)
        grid.add_column(ratio=1)
        grid.add_column(justify="right", min_width=share_width, no_wrap=True)
        grid.add_column(justify="right", min_width=rate_width, no_wrap=True)
        # Nothing to send is a full bar, not a division by zero.
        grid.add_row(ProgressBar(total=total or 1, completed=counts[key] if total else 1), shares[key], rates.of(key))
        return Padding(grid, (0, 0, 0, 2))

    def title(name: str, what: str, state: _State) -> Text:
        text = Text.assemble((name, "bold"), "  ", what, "  ", (state.text, _STATUS_STYLES.get(state.status, "")))
        if state.reason:
            text.append(f"  {state.reason}", style="dim")
        return text

    parts: list[RenderableType] = [
        title(
            f"campaign {campaign.id}", f"'{campaign.name}'", _State(campaign.status, campaign.status, campaign.error)
        ),
        bar(None),
    ]
    now = datetime.now(UTC)
    for line in lines:
        parts.append(
            title(line_label(line.position), f"{line.sender_name} · {line.server_name}", _line_state(line, now))
        )
        parts.append(bar(line.id))
    parts.append(
        f"failed {sum(line.failed_count for line in lines):,} · unknown {sum(line.unknown_count for line in lines):,}"
        f" · suppressed {sum(line.suppressed_count for line in lines):,}"
    )
    if not lines:
        parts.append("no sending lines yet: see 'campaigns campaign configure --help'")
    elif (waiting := _why_not_sending(campaign, lines, now)) is not None:
        parts.append(f"not sending yet: {waiting}")
    if watching and campaign.status not in SETTLED_CAMPAIGNS:
        parts.append(Text("Ctrl-C stops watching (the campaign goes on)", style="dim"))
    return Group(*parts)


# A waiting line's reason as the send loop writes it: "<why> until <ISO 8601 moment>".
_UNTIL = re.compile(r"(?P<why>.+) until (?P<moment>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)?)")
# What a line waits for, in a word, by the reason's start.
_WAITS = {"pacing": "pacing", "waiting for the start date": "start date"}
# A quota reason ends with when the line stops until: the status already says when it resumes.
_QUOTA_UNTIL = re.compile(r", stopping until .*$")


def _clock_time(moment: datetime, now: datetime, zone: ZoneInfo | None = None) -> str:
    """A moment as the watcher reads it: the time of day, with its date when not today."""
    local = moment.astimezone(zone)
    return f"{local:%H:%M:%S}" if local.date() == now.astimezone(zone).date() else f"{local:%Y-%m-%d %H:%M:%S}"


@dataclass(frozen=True)
class _State:
    """A campaign's or line's state in words, the status giving its colour, and a reason."""

    text: str
    status: str
    reason: str | None


def _line_state(line: line_sql.LineState, now: datetime) -> _State:
    """What a line is doing, in words, and the reason left to show beside it.

    A step waits out short pauses itself (pacing, a near start date) with its line still
    'sending': it is shown waiting, with the moment its next send may leave.
    """
    if line.status == LineStatus.SENDING:
        gap = float(line.send_frequency_minutes or 0)
        if line.scheduled_at is not None and line.scheduled_at > now:
            return _State(
                f"waiting (start date) until {_clock_time(line.scheduled_at, now)}", LineStatus.WAITING, line.reason
            )
        if gap and line.last_sent_at is not None and (next_send := line.last_sent_at + timedelta(minutes=gap)) > now:
            return _State(f"waiting (pacing) until {_clock_time(next_send, now)}", LineStatus.WAITING, line.reason)
    if line.status == LineStatus.WAITING and line.reason and (until := _UNTIL.fullmatch(line.reason)):
        why = _WAITS.get(until["why"], until["why"])
        moment = datetime.fromisoformat(until["moment"])
        return _State(f"waiting ({why}) until {_clock_time(moment, now)}", LineStatus.WAITING, None)
    if line.status == LineStatus.WAITING and line.next_run_at is not None:
        return _State(f"waiting until {_clock_time(line.next_run_at, now)}", LineStatus.WAITING, line.reason)
    if line.status == LineStatus.QUOTA_REACHED and line.next_run_at is not None:
        zone = ZoneInfo(line.server_timezone)
        resumes = line.next_run_at.astimezone(zone)
        when = f"{resumes:%H:%M}" if resumes - now <= timedelta(days=1) else f"{resumes:%Y-%m-%d %H:%M}"
        reason = _QUOTA_UNTIL.sub("", line.reason) if line.reason else None
        return _State(f"quota reached, resumes {when} {line.server_timezone}", LineStatus.QUOTA_REACHED, reason)
    return _State(line.status, line.status, line.reason)


def _why_not_sending(
    campaign: campaign_sql.CampaignRow, lines: Sequence[line_sql.LineState], now: datetime
) -> str | None:
    """Why a campaign with lines does not send yet, and what starts it (None: it sends or is over)."""
    if campaign.status == CampaignStatus.DRAFT:
        return f"a draft; 'campaigns campaign configure {campaign.id}' schedules it"
    if campaign.status == CampaignStatus.PROCESSING:
        return "its contacts are being imported; Dagster's campaign_launch_sensor starts it next"
    if campaign.status != CampaignStatus.SCHEDULED:
        return None
    if campaign.imported_at is None or (campaign.configured_at and campaign.imported_at < campaign.configured_at):
        return "Dagster's campaign_import_sensor imports its contacts, then campaign_launch_sensor starts it"
    starts = [line.scheduled_at for line in lines if line.scheduled_at is not None]
    if len(starts) == len(lines) and min(starts) > now:
        return f"Dagster's campaign_launch_sensor starts it at {_clock_time(min(starts), now)}"
    return "Dagster's campaign_launch_sensor starts it within seconds (its daemon must run: 'make dev' starts one)"
