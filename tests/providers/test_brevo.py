"""Brevo's wire format: messageVersions, X-Mailin-custom, the idempotency key, its errors."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from campaign_pipelines import providers
from campaign_pipelines.providers import QuotaExhausted, RateLimited, brevo
from tests.fakes.providers.base import basic_auth as basic
from tests.fakes.providers.brevo import TOKEN as BREVO_TOKEN
from tests.fakes.providers.brevo import event as brevo_event
from tests.fakes.providers.brevo import headers as brevo_headers
from tests.providers.support import SENDER, Recorder, Wire, message, messages
from tests.providers.webhook_support import (
    NOW,
    blacklisted,
    body,
    events,
    nothing_recorded,
)


def test_single_send_uses_to_and_carries_the_send_id_and_key_in_headers(recorder: Recorder) -> None:
    key = str(uuid.uuid4())

    recorder.send("brevo", [message(1)], idempotency_key=key)

    request = recorder.requests[0]
    assert request.url.path == "/v3/smtp/email"
    assert request.headers["api-key"] == "xkeysib-fake-key"
    body = recorder.json()
    assert body["to"] == [{"email": "reader1@example.org"}]
    assert body["sender"] == {"name": SENDER.name, "email": SENDER.email}
    assert body["headers"]["X-Mailin-custom"] == "c7-r1"
    assert body["headers"]["idempotencyKey"] == key
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "messageVersions" not in body


def test_batch_send_gives_each_recipient_a_version_of_its_own(recorder: Recorder) -> None:
    batch = messages(3)

    deliveries = recorder.send("brevo", batch)

    body = recorder.json()
    assert "to" not in body and "textContent" not in body
    versions = body["messageVersions"]
    assert [version["to"] for version in versions] == [[{"email": sent.to_email}] for sent in batch]
    assert [version["htmlContent"] for version in versions] == [sent.html for sent in batch]
    assert [version["headers"]["X-Mailin-custom"] for version in versions] == ["c7-r0", "c7-r1", "c7-r2"]
    assert len({delivery.provider_message_id for delivery in deliveries}) == 3
    assert all(delivery.provider_message_id.endswith("@smtp-relay.mailin.fr>") for delivery in deliveries)


def test_a_1000_message_batch_is_one_call(recorder: Recorder) -> None:
    batch = messages(1000)

    deliveries = recorder.send("brevo", batch)

    assert len(recorder.requests) == 1 and len(deliveries) == 1000
    assert recorder.state.sent_count("brevo") == 1000


def test_the_rate_limit_reset_header_gives_the_wait(wire: Wire) -> None:
    wire.state.fail_next("brevo", 429, retry_after_s=7)

    with pytest.raises(RateLimited) as caught:
        wire.send("brevo", messages(2))

    assert caught.value.retry_after_s == 7.0


def test_no_credits_is_quota_exhausted_in_brevos_words(wire: Wire) -> None:
    wire.state.fail_next("brevo", 402)

    with pytest.raises(QuotaExhausted, match="not_enough_credits"):
        wire.send("brevo", messages(1))


def test_a_repeated_key_is_answered_without_sending_again(wire: Wire) -> None:
    key = str(uuid.uuid4())
    first = wire.send("brevo", messages(2), idempotency_key=key)

    again = wire.send("brevo", messages(2), idempotency_key=key)

    assert again == first
    assert wire.state.sent_count("brevo") == 2


def test_brevo_is_the_idempotent_provider() -> None:
    assert [name for name in providers.NAMES if providers.get(name).idempotent] == ["brevo"]


# --- Brevo ---------------------------------------------------------------------------------


def test_brevo_single_and_batched(client: TestClient, db: psycopg.Connection, ids: dict[str, int]) -> None:
    single = brevo_event(
        "hard_bounce", "bob@example.com", f"12-{ids['bob']}", reason=" RecipientError: 550 5.5.0 unknown"
    )
    assert client.post("/webhooks/brevo", json=single, headers=brevo_headers()).status_code == 200

    batch = [
        brevo_event("delivered", "ana@example.com", f"12-{ids['ana']}"),
        brevo_event("spam", "dan@example.com", f"12-{ids['dan']}"),
        brevo_event("unsubscribed", "eve@example.com", f"12-{ids['eve']}"),
        brevo_event("soft_bounce", "carl@example.com", f"12-{ids['carl']}", reason="mailbox full"),
        brevo_event("unique_opened", "ana@example.com", f"12-{ids['ana']}"),
        brevo_event("request", "ana@example.com", f"12-{ids['ana']}"),
    ]
    response = client.post("/webhooks/brevo", json=batch, headers=basic("brevo", BREVO_TOKEN))

    assert response.json() == {"recorded": 4, "duplicates": 0, "ignored": 2}
    assert [(row[1], row[2], row[4]) for row in events(db)] == [
        ("hard_bounce", "bob@example.com", ids["bob"]),
        ("delivered", "ana@example.com", ids["ana"]),
        ("soft_bounce", "carl@example.com", ids["carl"]),
        ("complaint", "dan@example.com", ids["dan"]),
        ("unsubscribe", "eve@example.com", ids["eve"]),
    ]
    assert blacklisted(db) == {
        "bob@example.com": ("hard_bounce", "brevo: RecipientError: 550 5.5.0 unknown"),
        "dan@example.com": ("complaint", "brevo: spam complaint"),
        "eve@example.com": ("unsubscribe", "brevo: unsubscribed"),
    }
    occurred = db.execute("SELECT occurred_at FROM delivery_events ORDER BY id LIMIT 1").fetchone()[0]
    assert occurred.timestamp() == 1764318600.123


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer not-the-token"},
        basic("brevo", "not-the-token"),
        basic(BREVO_TOKEN, "x"),
        {"authorization": BREVO_TOKEN},
        {},
    ],
)
def test_brevo_without_its_token_is_401(client: TestClient, db: psycopg.Connection, headers: dict) -> None:
    body = brevo_event("hard_bounce", "bob@example.com", "12-2")
    assert client.post("/webhooks/brevo", json=body, headers=headers).status_code == 401
    assert nothing_recorded(db)


# --- webhook payloads, without HTTP or database -------------------------------------------


def test_brevo_times_fall_back_from_ts_epoch_to_ts_event_to_now() -> None:
    parsed = brevo.events(
        body(
            [
                {"event": "delivered", "email": "a@example.com", "ts_epoch": 1764318600123, "ts_event": 1},
                {"event": "delivered", "email": "a@example.com", "ts_event": 1764318600, "ts": 1},
                {"event": "delivered", "email": "a@example.com"},
            ]
        ),
        NOW,
    )
    assert [event.occurred_at.timestamp() for event in parsed.events] == [1764318600.123, 1764318600, NOW.timestamp()]


def test_brevo_reads_its_custom_header_whatever_its_case() -> None:
    parsed = brevo.events(body({"event": "spam", "email": "a@example.com", "x-mailin-custom": "12-3"}), NOW)
    assert (parsed.events[0].event, parsed.events[0].send_id) == ("complaint", "12-3")


def test_brevo_event_ids_are_derived_from_what_identifies_the_event() -> None:
    event = {
        "event": "soft_bounce",
        "email": "a@example.com",
        "message-id": "<1@mailin.fr>",
        "ts_epoch": 1764318600123,
        "id": 901234,
    }

    def event_id(**changes: Any) -> str:
        return brevo.events(body({**event, **changes}), NOW).events[0].event_id

    assert event_id() == event_id()
    # The webhook's own id names the webhook, not the event: two webhooks bring one event.
    assert event_id(id=5) == event_id()
    others = [event_id(ts_epoch=1764318600124), event_id(email="b@example.com"), event_id(event="hard_bounce")]
    assert len({event_id(), *others}) == 4
