"""SendGrid's wire format: personalizations, substitutions for per-recipient bodies, X-Message-Id."""

from __future__ import annotations

import json
import time

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from campaign_pipelines import providers
from campaign_pipelines.providers import BatchRefused, RateLimited, sendgrid
from campaign_pipelines.providers.sendgrid import MAX_SUBSTITUTION_BYTES
from campaign_pipelines.providers.sendgrid import SIGNATURE_HEADER as SENDGRID_SIGNATURE_HEADER
from campaign_pipelines.providers.sendgrid import TIMESTAMP_HEADER as SENDGRID_TIMESTAMP_HEADER
from tests.fakes.providers.sendgrid import event as sendgrid_event
from tests.fakes.providers.sendgrid import headers as sendgrid_headers
from tests.providers.support import Recorder, Wire, message, messages
from tests.providers.webhook_support import (
    NOW,
    blacklisted,
    body,
    events,
    nothing_recorded,
)


def test_single_send_has_one_personalization_with_the_send_id(recorder: Recorder) -> None:
    [delivery] = recorder.send("sendgrid", [message(1)])

    request = recorder.requests[0]
    assert request.headers["authorization"] == "Bearer SG.fake-key"
    body = recorder.json()
    assert body["personalizations"] == [{"to": [{"email": "reader1@example.org"}], "custom_args": {"send_id": "c7-r1"}}]
    assert [part["type"] for part in body["content"]] == ["text/plain", "text/html"]
    assert body["headers"]["List-Unsubscribe"] == "<https://t.example.com/u/tok1>"
    assert delivery.provider_message_id == recorder.state.messages()[0].message_id


def test_batch_bodies_share_one_template_and_carry_only_their_differences(recorder: Recorder) -> None:
    batch = messages(50)

    deliveries = recorder.send("sendgrid", batch)

    body = recorder.json()
    assert len(body["personalizations"]) == 50
    html = next(part["value"] for part in body["content"] if part["type"] == "text/html")
    assert "Our March news, the same for everyone." in html
    for personalization in body["personalizations"]:
        assert sum(len(value) for value in personalization["substitutions"].values()) < 20
    # SendGrid gives one id for the call; each recipient's events extend it.
    assert len({delivery.provider_message_id for delivery in deliveries}) == 1
    received = {each.to: each for each in recorder.state.messages()}
    assert [received[sent.to_email].html for sent in batch] == [sent.html for sent in batch]
    assert [received[sent.to_email].headers["List-Unsubscribe"] for sent in batch] == [
        sent.headers["List-Unsubscribe"] for sent in batch
    ]


def test_a_message_differing_by_more_than_the_substitution_limit_goes_alone() -> None:
    provider = providers.get("sendgrid")
    big = message(3, html=f"<p>{'x' * (MAX_SUBSTITUTION_BYTES + 1)}</p>")
    batch = [*messages(3), big, message(4)]

    calls = provider.split(batch)

    assert [[sent.send_id for sent in call] for call in calls] == [["c7-r3"], ["c7-r0", "c7-r1", "c7-r2", "c7-r4"]]


def test_send_refuses_a_batch_over_the_substitution_limit_before_any_request(recorder: Recorder) -> None:
    batch = [*messages(2), message(3, html=f"<p>{'x' * (MAX_SUBSTITUTION_BYTES + 1)}</p>")]

    with pytest.raises(BatchRefused, match="10000 bytes"):
        recorder.send("sendgrid", batch)
    assert recorder.requests == []


def test_texts_containing_the_substitution_marker_go_alone() -> None:
    provider = providers.get("sendgrid")
    odd = message(2, text="a literal [%cp:h0%] in the text")

    calls = provider.split([*messages(2), odd])

    assert [[sent.send_id for sent in call] for call in calls] == [["c7-r2"], ["c7-r0", "c7-r1"]]


def test_the_rate_limit_reset_epoch_gives_the_wait(wire: Wire) -> None:
    wire.state.fail_next("sendgrid", 429, retry_after_s=30)

    with pytest.raises(RateLimited) as caught:
        wire.send("sendgrid", messages(1))

    assert 28.0 <= caught.value.retry_after_s <= 30.0


# --- SendGrid ------------------------------------------------------------------------------


def test_sendgrid_batch_is_recorded_with_its_blacklist_effects(
    client: TestClient, db: psycopg.Connection, ids: dict[str, int]
) -> None:
    batch = [
        sendgrid_event("processed", "ana@example.com", f"12-{ids['ana']}"),
        sendgrid_event("delivered", "ana@example.com", f"12-{ids['ana']}", response="250 OK"),
        sendgrid_event(
            "bounce",
            "bob@example.com",
            f"12-{ids['bob']}",
            type="bounce",
            status="5.1.1",
            reason="550 5.1.1 The email account that you tried to reach does not exist",
        ),
        sendgrid_event(
            "bounce", "carl@example.com", f"12-{ids['carl']}", type="blocked", status="4.2.2", reason="452 mailbox full"
        ),
        sendgrid_event("spamreport", "dan@example.com", f"12-{ids['dan']}"),
        sendgrid_event("unsubscribe", "eve@example.com", f"12-{ids['eve']}"),
        sendgrid_event("open", "ana@example.com", f"12-{ids['ana']}", useragent="Mozilla/5.0", ip="17.0.0.1"),
    ]
    body = json.dumps(batch).encode()

    response = client.post("/webhooks/sendgrid", content=body, headers=sendgrid_headers(body))

    assert response.status_code == 200
    assert response.json() == {"recorded": 5, "duplicates": 0, "ignored": 2}
    assert events(db) == [
        ("sendgrid", "delivered", "ana@example.com", 12, ids["ana"], None),
        (
            "sendgrid",
            "hard_bounce",
            "bob@example.com",
            12,
            ids["bob"],
            "550 5.1.1 The email account that you tried to reach does not exist",
        ),
        ("sendgrid", "soft_bounce", "carl@example.com", 12, ids["carl"], "452 mailbox full"),
        ("sendgrid", "complaint", "dan@example.com", 12, ids["dan"], None),
        ("sendgrid", "unsubscribe", "eve@example.com", 12, ids["eve"], None),
    ]
    assert blacklisted(db) == {
        "bob@example.com": (
            "hard_bounce",
            "sendgrid: 550 5.1.1 The email account that you tried to reach does not exist",
        ),
        "dan@example.com": ("complaint", "sendgrid: spam complaint"),
        "eve@example.com": ("unsubscribe", "sendgrid: unsubscribed"),
    }


def _forged_sendgrid(body: bytes) -> list[tuple[bytes, dict[str, str]]]:
    other_key = ec.generate_private_key(ec.SECP256R1())
    good = sendgrid_headers(body)
    return [
        (body, sendgrid_headers(body, key=other_key)),  # signed by someone else
        (body.replace(b"bob@", b"ann@"), good),  # body changed after signing
        (body, {**good, SENDGRID_TIMESTAMP_HEADER: str(int(time.time()) + 1)}),  # timestamp changed
        (body, {**good, SENDGRID_SIGNATURE_HEADER: "bm90IGEgc2lnbmF0dXJl"}),  # not a signature
        (body, {**good, SENDGRID_SIGNATURE_HEADER: "%%%"}),  # not base64
        (body, {"content-type": "application/json"}),  # unsigned
    ]


def test_sendgrid_without_a_valid_signature_is_401_and_records_nothing(
    client: TestClient, db: psycopg.Connection
) -> None:
    body = json.dumps([sendgrid_event("bounce", "bob@example.com", "12-2", type="bounce", reason="550")]).encode()
    for number, (content, headers) in enumerate(_forged_sendgrid(body)):
        response = client.post("/webhooks/sendgrid", content=content, headers=headers)
        assert response.status_code == 401, number
    assert nothing_recorded(db)
    # The same body, rightly signed, is accepted: the refusals above were the signature's.
    assert client.post("/webhooks/sendgrid", content=body, headers=sendgrid_headers(body)).status_code == 200
    assert len(events(db)) == 1


# --- webhook payloads, without HTTP or database -------------------------------------------


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


def test_sendgrid_event_ids_are_its_own_or_derived() -> None:
    item = {"event": "delivered", "email": "a@example.com", "timestamp": 1764318600, "sg_message_id": "m.1"}
    own, derived, again = sendgrid.events(body([{**item, "sg_event_id": "ZGVsaXZlcmVk"}, item, item]), NOW).events
    assert own.event_id == "ZGVsaXZlcmVk"
    assert derived.event_id == again.event_id and derived.event_id.startswith("sha256:")
