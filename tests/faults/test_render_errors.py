"""A template that fails for one contact's data (a division by its age, 0) fails that contact
alone: the run succeeds and everyone else is sent once."""

from __future__ import annotations

import psycopg
import pytest

from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import lines as line_sql
from tests.fakes.server import FakeServer
from tests.faults.support import Runs, Tally, assert_never_twice, deliveries
from tests.sending.fixtures import SENDGRID
from tests.support import contact_outcomes

pytestmark = pytest.mark.faults

CONTACTS = 3_000
AGELESS = 1_234
TEMPLATE = "<p>Bonjour {{ first_name }}, {{ 100 // (age|int) }} % de remise</p>"


def test_a_render_error_fails_only_its_contact(
    db: psycopg.Connection, strict_fake: FakeServer, make_campaign, runs: Runs
) -> None:
    setup = make_campaign(
        CONTACTS,
        [SENDGRID],
        base=strict_fake.url,
        launch=False,
        template=TEMPLATE,
        attributes=lambda i: {"age": 0 if i == AGELESS else 20 + i % 60},
    )

    runs.send(setup.campaign_id).succeeded()

    tally = assert_never_twice(db, strict_fake.state, setup.campaign_id)
    assert tally == Tally(delivered=CONTACTS - 1, duplicates=0, sent=CONTACTS - 1, failed=1, unknown=0, pending=0)
    failed = contact_outcomes(db, setup.campaign_id, ContactStatus.FAILED)
    assert [email for email, _ in failed] == [f"user{AGELESS}@example.com"]
    assert failed[0][1] == "the template failed for this contact: ZeroDivisionError: integer division or modulo by zero"
    assert f"user{AGELESS}@example.com" not in deliveries(strict_fake.state)
    # The others got their own figure.
    (message,) = [m for m in strict_fake.state.messages() if m.to == "user7@example.com"]
    assert "3 % de remise" in message.html  # 100 // 27
    (line,) = line_sql.lines_of(db, setup.campaign_id)
    assert (line.status, line.sent_count, line.failed_count) == ("done", CONTACTS - 1, 1)
    campaign = campaign_sql.campaign_by_id(db, setup.campaign_id)
    assert campaign is not None and campaign.status == "completed"
