"""What a run of a line does before its first send: take the line over (settling what a dead
run left), then check and gather what sending needs: an active server, a sender safe in headers,
the API key, the provider, the renderer and the pace. A line that cannot send stops here with a
reason a person can act on. Called by sending.line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from campaign_pipelines import providers, servers
from campaign_pipelines.errors import ValidationError
from campaign_pipelines.headers import header_problem
from campaign_pipelines.providers import Provider, Sender
from campaign_pipelines.rendering import MessageRenderer, Tracking
from campaign_pipelines.sending.outcomes import LineStop
from campaign_pipelines.statuses import LineStatus
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import recovery as recovery_sql
from campaign_pipelines.store import tracking as tracking_sql
from campaign_pipelines.store.campaigns import CampaignRow
from campaign_pipelines.store.lines import STALE_AFTER_S, LineState

# Contacts an unpaced line claims at once, whatever its messages per call. After a crash only
# the contacts of calls that may have left are `unknown` (inflight_calls); the rest of a claim
# goes back to the pool.
CLAIM_AT_LEAST = 100


def take_over(conn: psycopg.Connection, line: LineState, run_id: str, warn: Callable[[str], None]) -> bool:
    """Make `run_id` the line's sender (False: another live run is sending it, or took it over
    meanwhile), and settle the contacts a dead run of the line had reserved."""
    if not line_sql.claim_line(conn, line.id, run_id, stale_after_s=STALE_AFTER_S):
        return False
    # Contacts of a call a dead run of this line had started may have been sent: never resent
    # on their own. What it had reserved but not requested yet goes back to the pool.
    recovered = recovery_sql.recover_line(conn, line.campaign_id, line.id, run_id)
    if recovered is None:
        return False
    if recovered.unknown:
        warn(f"{recovered.unknown} contact(s) of a call an interrupted run had started are now 'unknown'")
    if recovered.released:
        warn(f"{recovered.released} contact(s) an interrupted run had reserved but not requested went back to the pool")
    return True


@dataclass(frozen=True)
class LineSetup:
    provider: Provider
    api_key: str
    sender: Sender
    renderer: MessageRenderer
    # The least time between two sends (zero: as fast as possible), messages per provider call
    # and contacts per claim.
    gap: timedelta
    batch_size: int
    claim_size: int
    # The most calls in flight at once (sending.window).
    calls_in_flight: int


def prepare(conn: psycopg.Connection, line: LineState, campaign: CampaignRow, tracking: Tracking | None) -> LineSetup:
    """What the line needs to send; LineStop (status `error`) when it cannot."""
    if not line.server_active:
        raise LineStop(LineStatus.ERROR, f"server '{line.server_name}' is inactive")
    # A sender saved before validation refused control characters: stop for a person, rather
    # than fail every contact on the adapters' own check.
    for what, value in (("sender name", line.sender_name), ("sender email", line.sender_email)):
        if problem := header_problem(what, value):
            raise LineStop(LineStatus.ERROR, problem)
    try:
        api_key = servers.resolve_api_key(line.api_key_ref)
    except ValidationError as error:
        raise LineStop(LineStatus.ERROR, "; ".join(error.problems)) from None
    provider = providers.get(line.provider)
    renderer = MessageRenderer(
        campaign.subject,
        campaign_sql.template_snapshot(conn, campaign.id),
        tracking=tracking,
        campaign_id=campaign.id,
        line_id=line.id,
        links=tracking_sql.links_of(conn, campaign.id),
    )
    gap = timedelta(minutes=float(line.send_frequency_minutes or 0))
    batch = line.server_batch_size or provider.max_batch
    batch_size = 1 if gap else max(1, min(batch, provider.max_batch))
    # An unpaced line claims and records at least CLAIM_AT_LEAST contacts at a time, even
    # with one message per call: two commits per message would cost more than the call.
    claim_size = 1 if gap else max(batch_size, CLAIM_AT_LEAST)
    return LineSetup(
        provider=provider,
        api_key=api_key,
        sender=Sender(name=line.sender_name, email=line.sender_email),
        renderer=renderer,
        gap=gap,
        batch_size=batch_size,
        claim_size=claim_size,
        # A paced line makes one call at a time, each after the last one's answer.
        calls_in_flight=1
        if gap
        else min(line.server_calls_in_flight or provider.max_in_flight, provider.max_in_flight),
    )
