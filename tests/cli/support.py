"""What the CLI tests share besides fixtures: the seed's lines as typed, and the line state a run leaves."""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from campaign_pipelines.store import campaigns as campaign_sql
from tests.support import BREVO_SERVER, SENDGRID_SERVER

PROMO_LINE = (
    f"sender_name=L'équipe Promo,sender_email=offres@mondomaine.com,server={BREVO_SERVER},max_daily_sends=10000"
)
SUPPORT_LINE = (
    f"sender_name=Le Service Client,sender_email=support@mondomaine.com,server={SENDGRID_SERVER},"
    "send_frequency_minutes=1,max_daily_sends=5000"
)


def configure_seed(run, campaign_id: int, contacts_dir: Path, *extra: str) -> tuple[int, str, str]:
    return run(
        "campaign",
        "configure",
        str(campaign_id),
        "--contacts-dir",
        str(contacts_dir),
        "--file",
        "nouveaux_inscrits.json",
        "--file",
        "clients_vip.json",
        "--channel",
        PROMO_LINE,
        "--channel",
        SUPPORT_LINE,
        *extra,
    )


def status_of(db: psycopg.Connection, campaign_id: int) -> str:
    campaign = campaign_sql.campaign_by_id(db, campaign_id)
    assert campaign is not None
    return campaign.status


def set_progress(db: psycopg.Connection, campaign_id: int, position: int, **columns: object) -> None:
    """Line state as a sending run would leave it."""
    db.execute(
        sql.SQL("UPDATE campaign_channels SET {} WHERE campaign_id = %s AND position = %s").format(
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(column)) for column in columns)
        ),
        (*columns.values(), campaign_id, position),
    )


def one_line(out: str) -> str:
    """Rich wraps long titles at 80 columns: the words in order, one space apart."""
    return " ".join(out.split())
