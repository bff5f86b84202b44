"""The one vocabulary of statuses: the database accepts exactly these, and the campaign moves."""

from __future__ import annotations

import re

import psycopg
import pytest

from campaign_pipelines import statuses
from campaign_pipelines.statuses import CampaignStatus, ContactStatus, LineStatus


def _checked_values(db: psycopg.Connection, table: str) -> set[str]:
    """The values the CHECK constraint on `table`.status allows."""
    (definition,) = db.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%%status%%'",
        (table,),
    ).fetchone()
    return set(re.findall(r"'(\w+)'::text", definition))


def test_the_database_accepts_exactly_the_campaign_and_line_statuses(db) -> None:
    assert _checked_values(db, "campaigns") == set(CampaignStatus)
    assert _checked_values(db, "campaign_channels") == set(LineStatus)


def test_contact_statuses_keep_their_stored_numbers_and_words() -> None:
    assert {status.word: int(status) for status in ContactStatus} == {
        "pending": 0,
        "reserved": 1,
        "sent": 2,
        "failed": 3,
        "unknown": 4,
        "suppressed": 5,
    }


@pytest.mark.parametrize(
    ("move", "allowed", "target"),
    [
        (statuses.CONFIGURE, ("draft", "scheduled", "failed"), "scheduled"),
        (statuses.START_IMPORT, ("scheduled", "failed", "processing"), "processing"),
        (statuses.LAUNCH, ("scheduled",), "running"),
        (statuses.COMPLETE, ("running",), "completed"),
        (statuses.REOPEN, ("completed",), "running"),
        (statuses.PAUSE, ("running",), "paused"),
        (statuses.RESUME, ("paused",), "running"),
        (statuses.CANCEL, ("draft", "scheduled", "running", "paused", "failed"), "cancelled"),
    ],
)
def test_each_campaign_move_starts_only_from_its_statuses(move: statuses.Move, allowed, target) -> None:
    assert {status for status in CampaignStatus if move.allows(status)} == set(allowed)
    assert move.target == target
    assert move.from_words == "/".join(allowed)


def test_no_move_leaves_a_cancelled_or_completed_campaign_but_reopening() -> None:
    moves = [value for value in vars(statuses).values() if isinstance(value, statuses.Move)]
    assert [move for move in moves if move.allows(CampaignStatus.CANCELLED)] == []
    assert [move for move in moves if move.allows(CampaignStatus.COMPLETED)] == [statuses.REOPEN]
