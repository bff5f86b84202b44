"""How the commands print: plain tables, cells, ages, import progress and status colours."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal

from campaign_pipelines.contacts.loader import ImportReport
from campaign_pipelines.statuses import CampaignStatus, LineStatus

# A long import reports its progress on stderr at most this often.
_PROGRESS_EVERY_S = 10.0
# Colours of campaign and line statuses on a terminal: green moves, yellow waits, red needs someone.
_STATUS_STYLES = {
    CampaignStatus.RUNNING: "green",
    LineStatus.SENDING: "green",
    CampaignStatus.COMPLETED: "blue",
    LineStatus.DONE: "blue",
    LineStatus.WAITING: "yellow",
    LineStatus.QUOTA_REACHED: "yellow",
    CampaignStatus.PAUSED: "yellow",
    LineStatus.ERROR: "red",
    CampaignStatus.FAILED: "red",
    CampaignStatus.CANCELLED: "dim",
}


def _progress_printer(campaign_id: int) -> Callable[[ImportReport], None]:
    last = time.monotonic()

    def progress(report: ImportReport) -> None:
        nonlocal last
        if time.monotonic() - last >= _PROGRESS_EVERY_S:
            last = time.monotonic()
            print(f"campaign {campaign_id}: {report.records_read:,} records read", file=sys.stderr)

    return progress


def _print_import_report(report: ImportReport) -> None:
    invalid = sum(report.invalid.values())
    reasons = ", ".join(f"{reason}: {count:,}" for reason, count in sorted(report.invalid.items()))
    print(f"records read:      {report.records_read:,} from {len(report.files)} file(s)")
    print(f"contacts:          {report.nbre_contacts:,} ({report.blacklisted_contacts:,} blacklisted)")
    print(f"duplicates merged: {report.duplicates_merged:,}")
    print(f"invalid:           {invalid:,}" + (f" ({reasons})" if reasons else ""))
    print(f"rate:              {report.contacts_per_s:,.0f} records/s over {report.duration_s:.2f} s")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M %Z")
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def _age(moment: datetime | None, now: datetime) -> str | None:
    """How long ago, in the largest whole unit: '12s ago', '3m ago', '2h ago', '1d ago'."""
    if moment is None:
        return None
    seconds = max(int((now - moment).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, empty: str) -> None:
    """Aligned columns, numbers to the right; `empty` says what to do when there is no row."""
    if not rows:
        print(empty)
        return
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    numeric = [
        all(isinstance(row[i], int | Decimal) and not isinstance(row[i], bool) for row in rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        padded = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(padded).rstrip()

    print(line(headers))
    print(line(["-" * width for width in widths]))
    for row in cells:
        print(line(row))
