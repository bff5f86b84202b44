"""A sender name with CR/LF stored before validation refused it (an old row, a hand-made SQL
fix): its line stops for a person, naming the problem, and sends nothing; the other line of
the campaign sends everyone once."""

from __future__ import annotations

import psycopg
import pytest

from campaign_pipelines.store import lines as line_sql
from tests.fakes.server import FakeServer
from tests.faults.support import Runs, assert_never_twice
from tests.sending.fixtures import BREVO, SENDGRID

pytestmark = pytest.mark.faults

CONTACTS = 1_000
INJECTED = "Promo\r\nBcc: evil@attacker.example"


def test_a_stored_sender_with_a_line_break_stops_its_line_and_sends_nothing(
    db: psycopg.Connection, strict_fake: FakeServer, make_campaign, runs: Runs
) -> None:
    setup = make_campaign(CONTACTS, [BREVO, SENDGRID], base=strict_fake.url, launch=False)
    bad_line, good_line = setup.line_ids
    db.execute("UPDATE campaign_channels SET sender_name = %s WHERE id = %s", (INJECTED, bad_line))

    runs.send(setup.campaign_id).succeeded()

    assert strict_fake.state.calls("brevo") == []
    assert not [m for m in strict_fake.state.messages() if "evil@attacker.example" in repr(m)]
    tally = assert_never_twice(db, strict_fake.state, setup.campaign_id)
    assert (tally.delivered, tally.duplicates, tally.sent, tally.unknown) == (CONTACTS, 0, CONTACTS, 0)
    bad = line_sql.line_by_id(db, bad_line)
    assert bad is not None and (bad.status, bad.sent_count) == ("error", 0)
    assert bad.reason == (
        "sender name contains control characters (CR, LF); it goes into an email header, which is one line of text"
    )
    good = line_sql.line_by_id(db, good_line)
    assert good is not None and (good.status, good.sent_count) == ("done", CONTACTS)
