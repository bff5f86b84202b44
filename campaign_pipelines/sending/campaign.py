"""A campaign's sending lifecycle: launch, which lines to run, finish, and operator control."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from campaign_pipelines.campaigns import campaign_choices
from campaign_pipelines.errors import NotFoundError, ValidationError
from campaign_pipelines.statuses import (
    CANCEL,
    COMPLETE,
    CONTROLS,
    LAUNCH,
    REOPEN,
    RESUME,
    RUNNABLE_LINES,
    SENDING_STARTED,
)
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import recovery as recovery_sql
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store import tracking as tracking_sql
from campaign_pipelines.store.contacts import create_send_indexes
from campaign_pipelines.store.lines import LineState
from campaign_pipelines.tracking.links import template_links


@dataclass(frozen=True)
class CampaignProgress:
    status: str
    lines: list[LineState]


def launch(conn: psycopg.Connection, campaign_id: int) -> campaign_sql.CampaignRow:
    """A fully imported, scheduled campaign becomes running (a running one stays so)."""
    with conn.transaction():
        campaign = campaign_sql.campaign_by_id(conn, campaign_id, for_update=True)
        if campaign is None:
            sendable = campaign_choices(
                conn,
                (*LAUNCH.sources, LAUNCH.target),
                "be sent",
                none="no campaign can be sent yet: configure one first",
            )
            raise NotFoundError(f"campaign {campaign_id} does not exist; {sendable}")
        if campaign.status == LAUNCH.target:
            return campaign
        problems = []
        if not LAUNCH.allows(campaign.status):
            problems.append(f"status is '{campaign.status}': only a {LAUNCH.from_words} campaign can be launched")
        elif campaign.imported_at is None or (campaign.configured_at and campaign.imported_at < campaign.configured_at):
            problems.append("its contacts are not imported yet")
        if problems:
            raise ValidationError(f"campaign {campaign_id}", problems)
        create_send_indexes(conn, campaign_id)
        send_sql.open_cursor(conn, campaign_id)
        # The campaign's link table: a tracked click can only ever redirect to one of these.
        tracking_sql.save_links(conn, campaign_id, template_links(campaign_sql.template_snapshot(conn, campaign_id)))
        campaign_sql.set_status(conn, campaign_id, LAUNCH.target, started=True)
    updated = campaign_sql.campaign_by_id(conn, campaign_id)
    assert updated is not None
    return updated


def lines_to_run(
    conn: psycopg.Connection, campaign_id: int, selected: list[int] | None, *, run_id: str, stale_after_s: float
) -> list[LineState]:
    """The lines this run should send: the selected ones, else every runnable one, never a line
    another live run is sending."""
    if selected:
        unknown = sorted(set(selected) - {line.id for line in line_sql.lines_of(conn, campaign_id)})
        if unknown:
            raise ValidationError(f"campaign {campaign_id}", [f"line(s) {unknown} do not belong to it"])
    free = line_sql.lines_not_held(conn, campaign_id, run_id, stale_after_s=stale_after_s)
    if selected:
        return [line for line in free if line.id in selected]
    return [line for line in free if line.status in RUNNABLE_LINES]


def finish(conn: psycopg.Connection, campaign_id: int) -> CampaignProgress:
    """After a run: completed when no contact is left to send, else still running."""
    with conn.transaction():
        campaign = campaign_sql.campaign_by_id(conn, campaign_id, for_update=True)
        assert campaign is not None
        status = campaign.status
        if COMPLETE.allows(status) and not send_sql.has_unfinished(conn, campaign_id):
            campaign_sql.set_status(conn, campaign_id, COMPLETE.target, finished=True)
            status = COMPLETE.target
    return CampaignProgress(status=status, lines=line_sql.lines_of(conn, campaign_id))


def apply(conn: psycopg.Connection, campaign_id: int, action: str) -> str:
    """An operator's action; returns the campaign's new status (or what was done)."""
    if action == "resend_unknown":
        with conn.transaction():
            # It resets the lines' unknown counts: their rows first, as a line recording results.
            line_sql.lock_lines_of(conn, campaign_id)
            campaign = campaign_sql.campaign_by_id(conn, campaign_id, for_update=True)
            if campaign is None:
                raise NotFoundError(f"campaign {campaign_id} does not exist")
            if campaign.status not in SENDING_STARTED:
                raise ValidationError(f"campaign {campaign_id}", [f"nothing was sent yet (status '{campaign.status}')"])
            count = recovery_sql.resend_unknown(conn, campaign_id)
            if count:
                line_sql.reopen_lines(conn, campaign_id)
                if REOPEN.allows(campaign.status):
                    campaign_sql.set_status(conn, campaign_id, REOPEN.target)
        return f"{count} unknown contact(s) back in the pool"
    return control(conn, campaign_id, action)


def control(conn: psycopg.Connection, campaign_id: int, action: str) -> str:
    """pause, resume or cancel; running lines see it within a second and stop cleanly."""
    if action not in CONTROLS:
        raise ValidationError("control", [f"action must be pause, resume or cancel, not {action!r}"])
    move = CONTROLS[action]
    with conn.transaction():
        if move is RESUME:
            # It writes the lines: their rows first, as resending unknown contacts and recording results do.
            line_sql.lock_lines_of(conn, campaign_id)
        campaign = campaign_sql.campaign_by_id(conn, campaign_id, for_update=True)
        if campaign is None:
            past = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[action]
            choices = campaign_choices(conn, move.sources, f"be {past}", none=f"no campaign can be {past}")
            raise NotFoundError(f"campaign {campaign_id} does not exist; {choices}")
        if not move.allows(campaign.status):
            raise ValidationError(
                f"campaign {campaign_id}", [f"cannot {action} a campaign whose status is '{campaign.status}'"]
            )
        campaign_sql.set_status(conn, campaign_id, move.target, finished=move is CANCEL)
        if move is RESUME:
            line_sql.resume_lines(conn, campaign_id)
    return move.target
