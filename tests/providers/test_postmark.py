"""Postmark's wire format: /email and /email/batch, Metadata, per-message ErrorCodes."""

from __future__ import annotations

import psycopg
import pytest
from starlette.testclient import TestClient

from campaign_pipelines import providers
from campaign_pipelines.providers import RateLimited, Rejected, postmark
from campaign_pipelines.providers.client import ProviderClient
from campaign_pipelines.providers.webhook import Parsed
from tests.fakes.providers.base import basic_auth as basic
from tests.fakes.providers.postmark import PASSWORD as POSTMARK_PASSWORD
from tests.fakes.providers.postmark import USER as POSTMARK_USER
from tests.fakes.providers.postmark import bounce as postmark_bounce
from tests.providers.support import SENDER, Recorder, Wire, message, messages
from tests.providers.webhook_support import (
    NOW,
    blacklisted,
    body,
    events,
    nothing_recorded,
)


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


# --- Postmark ------------------------------------------------------------------------------


def test_postmark_records(client: TestClient, db: psycopg.Connection, ids: dict[str, int]) -> None:
    auth = basic(POSTMARK_USER, POSTMARK_PASSWORD)
    records = [
        {
            "RecordType": "Delivery",
            "ServerID": 23,
            "MessageStream": "broadcast",
            "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
            "Recipient": "ana@example.com",
            "Tag": "",
            "DeliveredAt": "2025-11-28T08:30:00Z",
            "Details": "smtp;250 2.0.0 OK",
            "Metadata": {"send_id": f"12-{ids['ana']}"},
        },
        postmark_bounce("HardBounce", "bob@example.com", f"12-{ids['bob']}", "smtp;550 5.1.1 user unknown"),
        postmark_bounce("SoftBounce", "carl@example.com", f"12-{ids['carl']}"),
        {**postmark_bounce("SpamComplaint", "dan@example.com", f"12-{ids['dan']}"), "RecordType": "SpamComplaint"},
        {
            "RecordType": "SubscriptionChange",
            "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
            "ServerID": 23,
            "MessageStream": "broadcast",
            "ChangedAt": "2025-11-28T08:31:00-05:00",
            "Recipient": "eve@example.com",
            "Origin": "Recipient",
            "SuppressSending": True,
            "SuppressionReason": "ManualSuppression",
            "Tag": "",
            "Metadata": {"send_id": f"12-{ids['eve']}"},
        },
        {"RecordType": "Open", "Recipient": "ana@example.com", "ReceivedAt": "2025-11-28T08:32:00Z"},
        postmark_bounce("Transient", "ana@example.com", None),
    ]
    for record in records:
        assert client.post("/webhooks/postmark", json=record, headers=auth).status_code == 200

    assert events(db) == [
        ("postmark", "delivered", "ana@example.com", 12, ids["ana"], None),
        ("postmark", "hard_bounce", "bob@example.com", 12, ids["bob"], "smtp;550 5.1.1 user unknown"),
        (
            "postmark",
            "soft_bounce",
            "carl@example.com",
            12,
            ids["carl"],
            "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        ),
        (
            "postmark",
            "complaint",
            "dan@example.com",
            12,
            ids["dan"],
            "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        ),
        ("postmark", "unsubscribe", "eve@example.com", 12, ids["eve"], "ManualSuppression"),
    ]
    assert {email: source for email, (source, _) in blacklisted(db).items()} == {
        "bob@example.com": "hard_bounce",
        "dan@example.com": "complaint",
        "eve@example.com": "unsubscribe",
    }
    times = db.execute("SELECT occurred_at FROM delivery_events ORDER BY id").fetchall()
    assert times[1][0].isoformat() == "2025-11-28T08:30:00.123456+00:00"
    assert times[4][0].isoformat() == "2025-11-28T13:31:00+00:00"


@pytest.mark.parametrize(
    "headers",
    [
        basic(POSTMARK_USER, "wrong-password"),
        basic("someone", POSTMARK_PASSWORD),
        basic(POSTMARK_USER, ""),
        {"authorization": f"Bearer {POSTMARK_PASSWORD}"},
        {"authorization": "Basic not-base64!"},
        {},
    ],
)
def test_postmark_without_its_basic_auth_is_401(client: TestClient, db: psycopg.Connection, headers: dict) -> None:
    record = postmark_bounce("HardBounce", "bob@example.com", "12-2")
    assert client.post("/webhooks/postmark", json=record, headers=headers).status_code == 401
    assert nothing_recorded(db)
    assert (
        client.post("/webhooks/postmark", json=record, headers=basic(POSTMARK_USER, POSTMARK_PASSWORD)).status_code
        == 200
    )


# --- webhook payloads, without HTTP or database -------------------------------------------


def test_postmark_subscription_changes() -> None:
    def change(suppress: bool, reason: str) -> Parsed:
        record = {
            "RecordType": "SubscriptionChange",
            "Recipient": "a@example.com",
            "ChangedAt": "2025-11-28T08:31:00Z",
            "SuppressSending": suppress,
            "SuppressionReason": reason,
        }
        return postmark.events(body(record), NOW)

    assert change(True, "ManualSuppression").events[0].event == "unsubscribe"
    # Bounce and SpamComplaint records say these themselves; a reactivation is not an event of ours.
    assert change(True, "HardBounce").ignored == 1
    assert change(False, "ManualSuppression").ignored == 1


@pytest.mark.parametrize(
    ("bounce_type", "expected"),
    [
        ("HardBounce", "hard_bounce"),
        ("BadEmailAddress", "hard_bounce"),
        ("SoftBounce", "soft_bounce"),
        ("DnsError", "soft_bounce"),
        ("Unsubscribe", "unsubscribe"),
        ("Transient", None),
        ("Blocked", None),
        ("AutoResponder", None),
        (None, None),
    ],
)
def test_postmark_bounce_types(bounce_type: str | None, expected: str | None) -> None:
    record = {"RecordType": "Bounce", "Type": bounce_type, "TypeCode": 16, "Email": "a@example.com"}
    parsed = postmark.events(body(record), NOW)
    assert [(event.event, event.occurred_at) for event in parsed.events] == (
        [] if expected is None else [(expected, NOW)]
    )
    assert parsed.ignored == (1 if expected is None else 0)


def test_postmark_event_ids_are_derived() -> None:
    record = {"RecordType": "Bounce", "Type": "SoftBounce", "ID": 42, "Email": "a@example.com", "MessageID": "m-1"}
    first, again = (postmark.events(body(record), NOW).events[0] for _ in range(2))
    other = postmark.events(body({**record, "ID": 43}), NOW).events[0]
    assert first.event_id == again.event_id != other.event_id
