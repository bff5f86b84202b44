"""Header safety: control characters named, the tracking resource checked, and a line saved by an
older version with a forged sender never reaching a provider."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from campaign_pipelines.headers import header_problem, is_field_name, unsafe_characters
from campaign_pipelines.sending.outcomes import LineOutcome
from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import sending as send_sql
from tests.fakes.providers import FakeProviders
from tests.sending.fixtures import Setup


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("L'équipe Promo", None),
        ("Équipe « Été » 🌞", None),
        ("Promo\r\nBcc: evil@attacker.example", "CR, LF"),
        ("a\nb\nc", "LF"),
        ("tab\there", "TAB"),
        ("nul\x00, bell\x07, del\x7f", "NUL, U+0007, DEL"),
        ("next line\x85", "U+0085"),
        ("line\u2028paragraph\u2029", "U+2028, U+2029"),
    ],
)
def test_unsafe_characters_are_named_once_each(value: str, named: str | None) -> None:
    assert unsafe_characters(value) == named


def test_a_header_problem_names_the_field() -> None:
    assert header_problem("sender name", "Promo") is None
    assert header_problem("sender name", "Promo\n") == (
        "sender name contains control characters (LF); it goes into an email header, which is one line of text"
    )


@pytest.mark.parametrize(
    ("name", "valid"), [("List-Unsubscribe", True), ("X-A_b.1", True), ("Bcc: x", False), ("", False)]
)
def test_field_names_are_printable_ascii_without_colon_or_space(name: str, valid: bool) -> None:
    assert is_field_name(name) is valid


@pytest.mark.parametrize("provider", ["brevo", "mailgun"])
def test_a_forged_sender_stored_by_an_older_version_is_never_sent(
    db: psycopg.Connection,
    make_campaign: Callable[..., Setup],
    run_line: Callable[..., LineOutcome],
    fakes: FakeProviders,
    provider: str,
) -> None:
    setup = make_campaign(
        3, [{"sender_name": "Promo", "sender_email": "promo@shop.example", "server": "S", "provider": provider}]
    )
    # What validation refuses today, written as an older version could have saved it.
    db.execute(
        "UPDATE campaign_channels SET sender_name = %s WHERE id = %s",
        ("Promo\r\nBcc: evil@attacker.example", setup.line_ids[0]),
    )

    outcome = run_line(setup.line_ids[0])

    # The line stops for a person; its contacts stay in the pool for another line.
    assert fakes.sent_count() == 0
    assert (outcome.status, outcome.sent, outcome.failed) == ("error", 0, 0)
    assert outcome.reason == (
        "sender name contains control characters (CR, LF); it goes into an email header, which is one line of text"
    )
    assert set(send_sql.status_counts(db, setup.campaign_id)) == {ContactStatus.PENDING}
