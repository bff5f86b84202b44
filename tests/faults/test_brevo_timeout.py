"""Brevo (idempotent) answering after the client's read timeout, against a fake that ignores
idempotency keys, so every retry shows as a copy: a call without an answer is retried once,
with the same key, and then its recipients are `unknown`, never sent again."""

from __future__ import annotations

import psycopg
import pytest

from campaign_pipelines.statuses import ContactStatus
from campaign_pipelines.store import campaigns as campaign_sql
from tests.fakes.providers import FakeProviders
from tests.fakes.server import FakeServer
from tests.faults.support import Runs, assert_sent_count_exact, deliveries, emails_by_status
from tests.sending.fixtures import BREVO

pytestmark = pytest.mark.faults

CONTACTS = 300
BATCH = 10
# The run's `http` resource waits this long for an answer; a late call is answered after LATE_S.
READ_TIMEOUT_S = 1.0
LATE_S = 2.5


def _recipients_by_call(fakes: FakeProviders) -> list[list[str]]:
    """Each call's recipients, in the order the fake received them."""
    messages = iter(fakes.messages("brevo"))
    return [[next(messages).to for _ in range(call.messages)] for call in fakes.calls("brevo")]


def test_a_late_brevo_answer_is_retried_once_then_unknown(
    db: psycopg.Connection, strict_fake: FakeServer, make_campaign, runs: Runs
) -> None:
    setup = make_campaign(CONTACTS, [BREVO], base=strict_fake.url, launch=False)
    # One call in flight at a time: the script of late calls below counts calls in order (a window of calls at a
    # crash: tests/sending/test_crash.py, tests/faults/test_frozen_run.py).
    db.execute("UPDATE servers SET batch_size = %s, calls_in_flight = 1", (BATCH,))
    fakes = strict_fake.state
    # Call 3 is late, its retry (call 4) answered; later, call 6 and its retry (call 7) are both late.
    fakes.delay_next("brevo", LATE_S, after=2)
    fakes.delay_next("brevo", LATE_S, times=2, after=2)

    runs.send(setup.campaign_id, http_timeout_s=READ_TIMEOUT_S).succeeded()

    calls = _recipients_by_call(fakes)
    answered_on_retry, never_answered = set(calls[2]), set(calls[5])
    assert calls[3] == calls[2] and calls[6] == calls[5]
    assert len(answered_on_retry) == len(never_answered) == BATCH
    counts = deliveries(fakes)
    assert len(counts) == CONTACTS
    # One bounded retry: two copies at most, and only for the late calls.
    assert {email: n for email, n in counts.items() if n != 1} == dict.fromkeys(answered_on_retry | never_answered, 2)
    states = emails_by_status(db, setup.campaign_id)
    assert states.get(ContactStatus.UNKNOWN, set()) == never_answered
    assert states.get(ContactStatus.SENT, set()) == counts.keys() - never_answered
    assert len(calls) == CONTACTS // BATCH + 2
    assert_sent_count_exact(db, setup.campaign_id)
    campaign = campaign_sql.campaign_by_id(db, setup.campaign_id)
    assert campaign is not None and campaign.status == "completed"
    # Nothing is due: the unknown recipients are not sent again by a relaunch.
    assert runs.stalled_requests() == []
