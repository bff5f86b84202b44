"""What a line's send loop makes of its provider's answers, and what a run of a line reports.

A provider's verdicts become each contact's final status; a call that failed becomes the status
of the contacts it had (unknown, failed, or back to the pool) and, when nothing was sent, the
line's stop: an error for a person, or a wait a sensor ends. Plain functions, no database:
called by sending.line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from campaign_pipelines.providers import (
    Ambiguous,
    AuthFailed,
    Delivery,
    OutgoingMessage,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Rejected,
)
from campaign_pipelines.statuses import ContactStatus, LineStatus
from campaign_pipelines.store.quotas import Quota

# Transient provider trouble that outlasts the retries: try again after this.
RETRY_LATER_S = 300.0


@dataclass
class LineOutcome:
    line_id: int
    status: str
    reason: str | None = None
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    suppressed: int = 0
    undefined_variables: int = 0
    seconds: float = 0.0
    # The most provider calls the line had in flight at once.
    most_in_flight: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def count(self, statuses: Sequence[int], suppressed: int) -> None:
        """Add recorded results to the run's figures."""
        self.sent += sum(1 for s in statuses if s == ContactStatus.SENT)
        self.failed += sum(1 for s in statuses if s == ContactStatus.FAILED)
        self.unknown += sum(1 for s in statuses if s == ContactStatus.UNKNOWN)
        self.suppressed += suppressed


Progress = Callable[[LineOutcome], None]


class LineStop(Exception):
    """Ends a line's loop with its new status, the reason a person reads, and when a sensor may
    relaunch it (None: a person or an operator's action does)."""

    def __init__(self, status: LineStatus, reason: str | None = None, next_run_at: datetime | None = None) -> None:
        super().__init__(reason or status)
        self.status = status
        self.reason = reason
        self.next_run_at = next_run_at


@dataclass(frozen=True)
class Results:
    """Final states of sent contacts, in their messages' order, as store.sending records them."""

    statuses: list[int]
    message_ids: list[str | None]
    errors: list[str | None]

    def extend(self, status: int, error: str, n: int) -> None:
        """`n` more contacts in `status` for the same reason, without a provider message id."""
        self.statuses.extend([status] * n)
        self.message_ids.extend([None] * n)
        self.errors.extend([error] * n)


def delivery_results(messages: Sequence[OutgoingMessage], deliveries: Sequence[Delivery]) -> Results:
    """Each message's state from the provider's verdicts: sent or failed as it says; unknown when
    its answer does not mention the recipient (it may have been sent)."""
    by_id = {d.send_id: d for d in deliveries}
    results = Results([], [], [])
    for message in messages:
        delivery = by_id.get(message.send_id)
        if delivery is None:
            results.statuses.append(ContactStatus.UNKNOWN)
            results.message_ids.append(None)
            results.errors.append("the provider's answer did not mention this recipient")
        else:
            results.statuses.append(ContactStatus.SENT if delivery.ok else ContactStatus.FAILED)
            results.message_ids.append(delivery.provider_message_id)
            results.errors.append(delivery.error)
    return results


def unanswered_status(error: ProviderError) -> ContactStatus | None:
    """The state of a failed call's contacts the provider gave no verdict for: unknown when the
    request may have been delivered, failed when the provider refused the whole call; None when
    nothing was sent (they go back to the pool, and the line stops: `stop_after`)."""
    if isinstance(error, Ambiguous):
        return ContactStatus.UNKNOWN
    if isinstance(error, Rejected):
        return ContactStatus.FAILED
    return None


def stop_after(error: ProviderError, now: datetime) -> LineStop:
    """How the line stops after a call that sent nothing: for a person when the account cannot
    send, else until the provider's rate limit or the retry delay is over."""
    reason = str(error)
    if isinstance(error, AuthFailed):
        return LineStop(LineStatus.ERROR, f"the provider refused the API key: {reason}")
    if isinstance(error, QuotaExhausted):
        return LineStop(LineStatus.ERROR, f"the provider account cannot send: {reason}")
    if isinstance(error, RateLimited):
        wait = error.retry_after_s or RETRY_LATER_S
        return LineStop(
            LineStatus.WAITING, f"rate limited by the provider: {reason}", next_run_at=now + timedelta(seconds=wait)
        )
    return LineStop(
        LineStatus.WAITING,
        f"provider unavailable after retries: {reason}",
        next_run_at=now + timedelta(seconds=RETRY_LATER_S),
    )


def quota_reached(quota: Quota, next_day: datetime, zone: str) -> LineStop:
    """The line stops until its quota's new day, in its server's time zone."""
    return LineStop(
        LineStatus.QUOTA_REACHED,
        f"reached {quota.label}, stopping until {next_day.strftime('%Y-%m-%d %H:%M')} {zone}",
        next_run_at=next_day,
    )
