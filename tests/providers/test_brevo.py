"""Brevo's wire format: messageVersions, X-Mailin-custom, the idempotency key, its errors."""

from __future__ import annotations

import uuid

import pytest

from campaign_pipelines import providers
from campaign_pipelines.providers import QuotaExhausted, RateLimited
from tests.providers.support import SENDER, Recorder, Wire, message, messages


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
