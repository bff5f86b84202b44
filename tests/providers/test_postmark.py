"""Postmark's wire format: /email and /email/batch, Metadata, per-message ErrorCodes."""

from __future__ import annotations

import pytest

from campaign_pipelines import providers
from campaign_pipelines.providers import RateLimited, Rejected
from campaign_pipelines.providers.client import ProviderClient
from tests.providers.support import SENDER, Recorder, Wire, message, messages


def test_single_send_goes_to_email_on_the_broadcast_stream(recorder: Recorder) -> None:
    recorder.send("postmark", [message(1)])

    request = recorder.requests[0]
    assert request.url.path == "/email"
    assert request.headers["x-postmark-server-token"] == "fake-server-token"
    body = recorder.json()
    assert body["From"] == "Acme News <news@example.com>"
    assert body["To"] == "reader1@example.org"
    assert body["Metadata"] == {"send_id": "c7-r1"}
    assert body["MessageStream"] == "broadcast"
    assert {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"} in body["Headers"]


def test_batch_send_posts_complete_messages_to_email_batch(recorder: Recorder) -> None:
    batch = messages(3)

    deliveries = recorder.send("postmark", batch)

    assert recorder.requests[0].url.path == "/email/batch"
    assert [item["HtmlBody"] for item in recorder.json()] == [sent.html for sent in batch]
    assert len({delivery.provider_message_id for delivery in deliveries}) == 3


def test_a_batch_where_every_item_names_a_bad_sender_is_rejected(wire: Wire) -> None:
    wire.state.reject_sender(SENDER.email)

    with pytest.raises(Rejected, match="not a Sender Signature"):
        wire.send("postmark", messages(3))


@pytest.mark.parametrize(("hint", "expected"), [(None, None), (2.0, 2.0)])
def test_a_429_waits_for_retry_after_when_given(wire: Wire, hint: float | None, expected: float | None) -> None:
    wire.state.fail_next("postmark", 429, retry_after_s=hint)

    with pytest.raises(RateLimited) as caught:
        wire.send("postmark", messages(1))

    assert caught.value.retry_after_s == expected


def test_a_refused_recipient_in_a_batch_fails_with_its_error_code(wire: Wire) -> None:
    wire.state.reject_recipient("reader2@example.org")

    deliveries = wire.send("postmark", messages(4))

    assert "Invalid 'To' address: 'reader2@example.org'." in deliveries[2].error
    assert "ErrorCode 300" in deliveries[2].error


def test_a_key_that_cannot_be_written_as_a_header_is_rejected_without_being_quoted(fake_server) -> None:
    with ProviderClient(timeout=2.0) as client, pytest.raises(Rejected) as caught:
        providers.get("postmark").send(
            client,
            url=fake_server.url,
            api_key="abc\nsecret-part",
            sender=SENDER,
            messages=[message(1)],
            idempotency_key=None,
        )
    assert "secret-part" not in str(caught.value)
