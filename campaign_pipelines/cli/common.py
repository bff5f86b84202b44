"""What every `campaigns` command shares: the database it works on, help formatting, command
registration, argument types, and the campaign lookups several commands make."""

from __future__ import annotations

import argparse
import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from campaign_pipelines.errors import NotFoundError
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store.connection import connect

_HELP_WIDTH = 79


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's examples as written; descriptions go through `_wrap`."""


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=_HELP_WIDTH)


@dataclass(frozen=True)
class _Database:
    url: str
    conn: psycopg.Connection

    def connect(self) -> psycopg.Connection:
        return connect(self.url)


_Handler = Callable[[argparse.Namespace, _Database], None]


def _group(
    groups: argparse._SubParsersAction, name: str, summary: str, description: str, epilog: str
) -> argparse._SubParsersAction:
    parser = groups.add_parser(
        name, help=summary, description=_wrap(description), epilog=epilog, formatter_class=_Formatter
    )
    return parser.add_subparsers(title="commands", metavar="COMMAND", required=True)


def _command(
    commands: argparse._SubParsersAction, name: str, handler: _Handler, summary: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name, help=summary, description=_wrap(summary), epilog=epilog, formatter_class=_Formatter
    )
    parser.set_defaults(handler=handler, prepare=None, command_parser=parser)
    return parser


def _campaign(conn: psycopg.Connection, campaign_id: int) -> campaign_sql.CampaignRow:
    campaign = campaign_sql.campaign_by_id(conn, campaign_id)
    if campaign is None:
        raise NotFoundError(f"campaign {campaign_id} does not exist")
    return campaign


def _to_send(campaign: campaign_sql.CampaignRow) -> int:
    """The contacts the campaign goes to: blacklisted ones are never sent."""
    return max(campaign.nbre_contacts - campaign.blacklisted_contacts, 0)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value
