"""A campaign's sending lifecycle: launch, which lines to run, finish, and operator control."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from campaign_pipelines.campaigns import campaign_choices
from campaign_pipelines.errors import NotFoundError, ValidationError
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store import tracking as tracking_sql
from campaign_pipelines.store.contacts import create_send_indexes
from campaign_pipelines.tracking.links import template_links

# Line statuses a run picks up when no line is named: everything not finished or broken.
RUNNABLE = ("pending", "sending", "waiting", "quota_reached", "paused")


@dataclass(frozen=True)
class CampaignProgress:
    status: str
    lines: list[send_sql.LineState]


def launch(conn: psycopg.Connection, campaign_id: int) -> campaign_sql.CampaignRow:
    """A fully imported, scheduled campaign becomes running (a running one stays so)."""
    with conn.transaction():
        campaign = campaign_sql.campaign_by_id(conn, campaign_id, for_update=True)
        if campaign is None:
            sendable = campaign_choices(
                conn, ("scheduled", "running"), "be sent", none="no campaign can be sent yet: configure one first"
            )
            raise NotFoundError(f"campaign {campaign_id} does not exist; {sendable}")
        if campaign.status == "running":
            return campaign
        problems = []
        if campaign.status != "scheduled":
            problems.append(f"status is '{campaign.status}': only a scheduled campaign can be launched")
        elif campaign.imported_at is None or (campaign.configured_at and campaign.imported_at < campaign.configured_at):
            problems.append("its contacts are not imported yet")
        if problems:
            raise ValidationError(f"campaign {campaign_id}", problems)
        create_send_indexes(conn, campaign_id)
        # The campaign's link table: a tracked click can only ever redirect to one of these.
        tracking_sql.save_links(conn, campaign_id, template_links(campaign_sql.template_snapshot(conn, campaign_id)))
        campaign_sql.set_status(conn, campaign_id, "running", started=True)
    updated = campaign_sql.campaign_by_id(conn, campaign_id)
    assert updated is not None
    return updated


def lines_to_run(
    conn: psycopg.Connection, campaign_id: int, selected: list[int] | None, *, run_id: str, stale_after_s: float
) -> list[send_sql.LineState]:
    """The lines this run should send: the selected ones, else every runnable one, never a line
    another live run is sending."""
    lines = send_sql.lines_of(conn, campaign_id)
    if selected:
        unknown = sorted(set(selected) - {line.id for line in lines})
        if unknown:
            raise ValidationError(f"campaign {campaign_id}", [f"line(s) {unknown} do not belong to it"])
        lines = [line for line in lines if line.id in selected]
    else:
        lines = [line for line in lines if line.status in RUNNABLE]
    now = datetime.now(UTC)
    return [line for line in lines if not send_sql.held_by_live_run(line, run_id, stale_after_s=stale_after_s, now=now)]


def finish(conn: psycopg.Connection, campaign_id: int) -> CampaignProgress:
    """After a run: completed when no contact is left to send, else still running."""
    with conn.transaction():
        campaign = campaign_sql.campaign_by_id(conn, campaign_id, for_update=True)
        assert campaign is not None
        status = campaign.status
        if status == "running" and not send_sql.has_unfinished(conn, campaign_id):
            campaign_sql.set_status(conn, campaign_id, "completed", finished=True)
            status = "completed"
    return CampaignProgress(status=status, lines=send_sql.lines_of(conn, campaign_id))


def apply(conn: psycopg.Connection, campaign_id: int, action: str) -> str:
    """An operator's action; returns the campaign's new status (or what was done)."""
    if action == "resend_unknown":
        with conn.transaction():
            campaign = campaign_sql.campaign_by_id(conn, campaign_id, for_update=True)
            if campaign is None:
                raise NotFoundError(f"campaign {campaign_id} does not exist")
            if campaign.status not in ("running", "paused", "completed"):
                raise ValidationError(f"campaign {campaign_id}", [f"nothing was sent yet (status '{campaign.status}')"])
            count = send_sql.resend_unknown(conn, campaign_id)
            if count:
                send_sql.reopen_lines(conn, campaign_id)
                if campaign.status == "completed":
                    campaign_sql.set_status(conn, campaign_id, "running")
        return f"{count} unknown contact(s) back in the pool"
    return control(conn, campaign_id, action)


def control(conn: psycopg.Connection, campaign_id: int, action: str) -> str:
    """pause, resume or cancel; running lines see it within a second and stop cleanly."""
    transitions = {
        "pause": ({"running"}, "paused"),
        "resume": ({"paused"}, "running"),
        "cancel": ({"draft", "scheduled", "running", "paused", "failed"}, "cancelled"),
    }
    if action not in transitions:
        raise ValidationError("control", [f"action must be pause, resume or cancel, not {action!r}"])
    allowed, target = transitions[action]
    with conn.transaction():
        campaign = campaign_sql.campaign_by_id(conn, campaign_id, for_update=True)
        if campaign is None:
            past = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[action]
            choices = campaign_choices(conn, allowed, f"be {past}", none=f"no campaign can be {past}")
            raise NotFoundError(f"campaign {campaign_id} does not exist; {choices}")
        if campaign.status not in allowed:
            raise ValidationError(
                f"campaign {campaign_id}", [f"cannot {action} a campaign whose status is '{campaign.status}'"]
            )
        campaign_sql.set_status(conn, campaign_id, target, finished=target == "cancelled")
        if action == "resume":
            send_sql.resume_lines(conn, campaign_id)
    return target
