"""The provider's answers as contact and line statuses: unit by unit, then as the send loop records them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from campaign_pipelines.providers import (
    Ambiguous,
    AuthFailed,
    Delivery,
    OutgoingMessage,
    QuotaExhausted,
    RateLimited,
    Rejected,
    ServerError,
    Unreachable,
)
from campaign_pipelines.providers.client import ProviderClient
from campaign_pipelines.sending.outcomes import (
    RETRY_LATER_S,
    LineOutcome,
    delivery_results,
    quota_reached,
    stop_after,
    unanswered_status,
)
from campaign_pipelines.statuses import ContactStatus, LineStatus
from campaign_pipelines.store import lines as line_sql
from campaign_pipelines.store import sending as send_sql
from campaign_pipelines.store.quotas import Quota
from tests.sending.fixtures import BREVO, POSTMARK, SENDGRID
from tests.support import contact_outcomes

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def _message(send_id: str) -> OutgoingMessage:
    return OutgoingMessage(
        send_id=send_id, to_email=f"{send_id}@example.com", subject="s", html="h", text="t", headers={}
    )


def test_each_message_takes_the_providers_verdict_or_is_unknown_when_not_mentioned() -> None:
    messages = [_message("1-1"), _message("1-2"), _message("1-3")]
    deliveries = [Delivery.accepted("1-1", "pm-1"), Delivery.refused("1-3", "mailbox does not exist")]

    results = delivery_results(messages, deliveries)

    assert results.statuses == [ContactStatus.SENT, ContactStatus.UNKNOWN, ContactStatus.FAILED]
    assert results.message_ids == ["pm-1", None, None]
    assert results.errors == [None, "the provider's answer did not mention this recipient", "mailbox does not exist"]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (Ambiguous("read timeout"), ContactStatus.UNKNOWN),
        (Rejected("invalid sender", status=400), ContactStatus.FAILED),
        (AuthFailed("bad key", status=401), None),
        (QuotaExhausted("no credits", status=402), None),
        (RateLimited("slow down", retry_after_s=7), None),
        (ServerError("boom", status=503), None),
        (Unreachable("connection refused"), None),
    ],
)
def test_a_failed_calls_contacts_are_unknown_failed_or_back_in_the_pool(error, status) -> None:
    assert unanswered_status(error) == status


@pytest.mark.parametrize(
    ("error", "status", "reason", "wait_s"),
    [
        (
            AuthFailed("401 bad key", status=401),
            LineStatus.ERROR,
            "the provider refused the API key: 401 bad key",
            None,
        ),
        (QuotaExhausted("402 no credits"), LineStatus.ERROR, "the provider account cannot send: 402 no credits", None),
        (RateLimited("429", retry_after_s=7), LineStatus.WAITING, "rate limited by the provider: 429", 7),
        (
            RateLimited("429", retry_after_s=None),
            LineStatus.WAITING,
            "rate limited by the provider: 429",
            RETRY_LATER_S,
        ),
        (ServerError("503", status=503), LineStatus.WAITING, "provider unavailable after retries: 503", RETRY_LATER_S),
        (Unreachable("refused"), LineStatus.WAITING, "provider unavailable after retries: refused", RETRY_LATER_S),
    ],
)
def test_a_call_that_sent_nothing_stops_the_line_for_a_person_or_until_it_may_retry(
    error, status, reason, wait_s
) -> None:
    stop = stop_after(error, NOW)

    assert (stop.status, stop.reason) == (status, reason)
    assert stop.next_run_at == (None if wait_s is None else NOW + timedelta(seconds=wait_s))


def test_a_quota_stops_the_line_until_its_day_ends_in_the_servers_zone() -> None:
    next_day = datetime(2026, 12, 2, tzinfo=UTC)

    stop = quota_reached(Quota("line:1", NOW.date(), 10_000, "10000/day"), next_day, "Europe/Paris")

    assert (stop.status, stop.next_run_at) == (LineStatus.QUOTA_REACHED, next_day)
    assert stop.reason == "reached 10000/day, stopping until 2026-12-02 00:00 Europe/Paris"


def test_an_outcome_counts_what_was_recorded() -> None:
    outcome = LineOutcome(line_id=1, status=LineStatus.SENDING)

    outcome.count([ContactStatus.SENT, ContactStatus.SENT, ContactStatus.FAILED, ContactStatus.UNKNOWN], 3)
    outcome.count([ContactStatus.SENT], 0)

    assert (outcome.sent, outcome.failed, outcome.unknown, outcome.suppressed) == (3, 1, 1, 3)


# --- as the send loop records them ------------------------------------------------------------


def test_a_long_rate_limit_ends_the_step_and_gives_the_contacts_back(db, make_campaign, run_line, fakes) -> None:
    setup = make_campaign(20, [BREVO])
    fakes.fail_next("brevo", 429, retry_after_s=3600)

    outcome = run_line(setup.line_ids[0])

    assert outcome.status == "waiting" and "rate limited" in outcome.reason
    assert line_sql.line_by_id(db, setup.line_ids[0]).next_run_at is not None
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.PENDING: 20}


def test_a_timeout_without_idempotency_leaves_the_batch_unknown(db, make_campaign, run_line, fakes) -> None:
    setup = make_campaign(10, [{**SENDGRID, "send_frequency_minutes": None}])
    fakes.delay_next("sendgrid", 30)

    outcome = run_line(setup.line_ids[0])

    assert outcome.unknown == 10 and outcome.sent == 0
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.UNKNOWN: 10}
    # Never resent on their own: the provider may have delivered them.
    assert fakes.sent_count("sendgrid") == 10


def test_401_stops_the_line_and_another_line_takes_its_contacts(
    db, make_campaign, run_line, fakes, monkeypatch
) -> None:
    setup = make_campaign(40, [BREVO, SENDGRID])
    monkeypatch.setenv("BREVO_API_KEY", "revoked-key")
    brevo_line, sendgrid_line = setup.line_ids

    refused = run_line(brevo_line)
    taking_over = run_line(sendgrid_line)

    assert refused.status == "error" and "API key" in refused.reason
    assert "revoked-key" not in refused.reason
    assert taking_over.sent == 40
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: 40}


def test_contacts_a_refused_line_gives_back_go_to_a_line_that_had_finished(
    db, make_campaign, run_line, fakes, monkeypatch
) -> None:
    setup = make_campaign(250, [BREVO, SENDGRID])
    db.execute("UPDATE servers SET batch_size = 100")
    monkeypatch.setenv("BREVO_API_KEY", "revoked-key")
    brevo_line, sendgrid_line = setup.line_ids
    finished = []

    def refuse_once_the_other_line_finished(request: httpx.Request) -> httpx.Response:
        # Brevo's line holds the lease of this call (and maybe of the next one, claimed
        # meanwhile); SendGrid's line sends the others and finishes.
        if not finished:
            finished.append(run_line(sendgrid_line))
        return fakes.transport().handle_request(request)

    refused = run_line(
        brevo_line, client=ProviderClient(httpx.MockTransport(refuse_once_the_other_line_finished), timeout=5)
    )

    assert refused.status == "error" and finished[0].status == "done" and finished[0].sent >= 50
    given_back = 250 - finished[0].sent
    assert send_sql.status_counts(db, setup.campaign_id) == {
        ContactStatus.SENT: finished[0].sent,
        ContactStatus.PENDING: given_back,
    }
    line = line_sql.line_by_id(db, sendgrid_line)
    assert line is not None and line.status == LineStatus.PENDING  # the launch sensor starts it again
    assert run_line(sendgrid_line).sent == given_back
    assert send_sql.status_counts(db, setup.campaign_id) == {ContactStatus.SENT: 250}
    assert fakes.sent_count("sendgrid") == 250


def test_partial_batch_failure_is_recorded_per_recipient(db, make_campaign, run_line, fakes) -> None:
    setup = make_campaign(20, [POSTMARK])
    fakes.reject_recipient("user3@example.com")
    fakes.reject_recipient("user11@example.com")

    outcome = run_line(setup.line_ids[0])

    assert (outcome.sent, outcome.failed) == (18, 2)
    failed = contact_outcomes(db, setup.campaign_id, ContactStatus.FAILED)
    assert [email for email, _ in failed] == ["user11@example.com", "user3@example.com"]
    assert all(error for _, error in failed)
