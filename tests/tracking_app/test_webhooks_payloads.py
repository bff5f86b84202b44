"""tracking_app.webhooks_payloads: the corners of each provider's payloads, without HTTP or database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from campaign_pipelines.providers import brevo, mailgun, postmark, sendgrid
from campaign_pipelines.providers.mailgun import Signature as MailgunSignature
from campaign_pipelines.providers.webhook import MalformedPayload, Parsed

NOW = datetime(2025, 11, 28, 12, 0, tzinfo=UTC)


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


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


def test_a_send_id_that_is_not_text_is_not_ours() -> None:
    parsed = sendgrid.events(body([{"event": "delivered", "email": "a@example.com", "send_id": 12}]), NOW)
    assert parsed.events[0].send_id is None


def test_sendgrid_bounce_types() -> None:
    parsed = sendgrid.events(
        body(
            [
                {"event": "bounce", "email": "a@example.com", "type": "blocked", "status": "4.2.2"},
                {"event": "bounce", "email": "b@example.com", "reason": "550 unknown"},
                {"event": "dropped", "email": "c@example.com", "reason": "Bounced Address"},
                {"event": "deferred", "email": "d@example.com"},
                {"event": "group_unsubscribe", "email": "e@example.com", "asm_group_id": 1},
            ]
        ),
        NOW,
    )
    assert [(event.event, event.email, event.detail) for event in parsed.events] == [
        ("soft_bounce", "a@example.com", "4.2.2"),
        ("hard_bounce", "b@example.com", "550 unknown"),
        ("unsubscribe", "e@example.com", None),
    ]
    assert parsed.ignored == 2


def test_mailgun_signature_block() -> None:
    document = {"signature": {"timestamp": 1764318600, "token": "t" * 50, "signature": "ab" * 32}}
    assert mailgun.signature(document) == MailgunSignature("1764318600", "t" * 50, "ab" * 32)
    for broken in ({}, {"signature": "x"}, {"signature": {"timestamp": True, "token": "t", "signature": "s"}}):
        assert mailgun.signature(broken) is None
    with pytest.raises(MalformedPayload, match="not a JSON object"):
        mailgun.document(b"[]")


def test_mailgun_failures_by_severity_and_their_words() -> None:
    def failure(**fields: Any) -> Parsed:
        data = {"event": "failed", "recipient": "a@example.com", "timestamp": 1764318600.5, **fields}
        return mailgun.events({"event-data": data}, NOW)

    hard = failure(
        severity="permanent", reason="suppress-bounce", **{"delivery-status": {"message": "", "description": ""}}
    )
    assert (hard.events[0].event, hard.events[0].detail) == ("hard_bounce", "suppress-bounce")
    assert hard.events[0].occurred_at == datetime.fromtimestamp(1764318600.5, UTC)
    soft = failure(severity="temporary", **{"delivery-status": {"message": "", "description": "mailbox full"}})
    assert (soft.events[0].event, soft.events[0].detail) == ("soft_bounce", "mailbox full")
    assert failure().ignored == 1


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


def test_sendgrid_event_ids_are_its_own_or_derived() -> None:
    item = {"event": "delivered", "email": "a@example.com", "timestamp": 1764318600, "sg_message_id": "m.1"}
    own, derived, again = sendgrid.events(body([{**item, "sg_event_id": "ZGVsaXZlcmVk"}, item, item]), NOW).events
    assert own.event_id == "ZGVsaXZlcmVk"
    assert derived.event_id == again.event_id and derived.event_id.startswith("sha256:")


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


def test_mailgun_event_ids_hold_the_event_time() -> None:
    def event_id(**changes: Any) -> str:
        data = {"event": "delivered", "id": "Ase7i2zsRYeDXztHGENqRA", "timestamp": 1764318600.5, "recipient": "a@x.com"}
        return mailgun.events({"event-data": {**data, **changes}}, NOW).events[0].event_id

    assert event_id() == event_id()
    # Mailgun's id is unique within a day only.
    assert event_id(timestamp=1764405000.5) != event_id()


def test_postmark_event_ids_are_derived() -> None:
    record = {"RecordType": "Bounce", "Type": "SoftBounce", "ID": 42, "Email": "a@example.com", "MessageID": "m-1"}
    first, again = (postmark.events(body(record), NOW).events[0] for _ in range(2))
    other = postmark.events(body({**record, "ID": 43}), NOW).events[0]
    assert first.event_id == again.event_id != other.event_id
