"""Mailjet's wire format: Send API v3.1 `Messages`, the API key pair, per-message results and its
error codes; its Event API payloads."""

from __future__ import annotations

import base64

import psycopg
import pytest
from starlette.testclient import TestClient

from campaign_pipelines.providers import Ambiguous, AuthFailed, BatchRefused, RateLimited, Rejected, mailjet
from campaign_pipelines.providers.webhook import MalformedPayload
from tests.fakes.providers.base import Reply, json_reply
from tests.fakes.providers.base import basic_auth as basic
from tests.fakes.providers.mailjet import PASSWORD as MAILJET_PASSWORD
from tests.fakes.providers.mailjet import USER as MAILJET_USER
from tests.fakes.providers.mailjet import event as mailjet_event
from tests.providers.support import SENDER, Recorder, Wire, message, messages
from tests.providers.webhook_support import NOW, blacklisted, body, events, nothing_recorded


def _global_error(status: int, code: str, words: str) -> Reply:
    return json_reply(
        status,
        {"ErrorIdentifier": "06df1144-c6f3-4ca7", "ErrorCode": code, "ErrorMessage": words, "StatusCode": status},
    )


def test_single_send_posts_one_message_with_the_key_pair_as_basic_auth(recorder: Recorder) -> None:
    recorder.send("mailjet", [message(1, text="")])

    request = recorder.requests[0]
    assert request.url.path == "/v3.1/send"
    assert (
        request.headers["authorization"] == "Basic " + base64.b64encode(b"fake-mj-api-key:fake-mj-secret-key").decode()
    )
    assert recorder.json() == {
        "Messages": [
            {
                "From": {"Email": "news@example.com", "Name": "Acme News"},
                "To": [{"Email": "reader1@example.org"}],
                "Subject": "March update for reader 1",
                "HTMLPart": message(1).html,
                "CustomID": "c7-r1",
                "Headers": {
                    "List-Unsubscribe": "<https://t.example.com/u/tok1>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
            }
        ]
    }


def test_batch_send_is_one_message_per_recipient_with_exact_64_bit_ids(recorder: Recorder) -> None:
    batch = messages(3)

    deliveries = recorder.send("mailjet", batch)

    sent = recorder.json()["Messages"]
    assert [item["To"] for item in sent] == [[{"Email": each.to_email}] for each in batch]
    assert [(item["HTMLPart"], item["TextPart"], item["CustomID"]) for item in sent] == [
        (each.html, each.text, each.send_id) for each in batch
    ]
    ids = [int(delivery.provider_message_id) for delivery in deliveries]
    assert len(set(ids)) == 3 and all(each > 2**53 for each in ids)
    assert [each.message_id for each in recorder.state.messages("mailjet")] == [str(each) for each in ids]


@pytest.mark.parametrize("key", ["only-the-api-key-s3cr3t", "api-key-s3cr3t:", ":s3cr3t", "  "])
def test_a_key_that_is_not_the_pair_is_auth_failed_before_sending_and_never_quoted(
    recorder: Recorder, key: str
) -> None:
    with pytest.raises(AuthFailed, match=r"<API key>:<secret key>") as caught:
        recorder.send("mailjet", messages(2), api_key=key)

    assert "s3cr3t" not in str(caught.value)
    assert recorder.requests == []


def test_sandbox_mode_validates_and_delivers_nothing(recorder: Recorder) -> None:
    sandbox = mailjet.Mailjet(sandbox_mode=True)

    deliveries = sandbox.send(
        recorder.client,
        url=recorder.urls["mailjet"],
        api_key="fake-mj-api-key:fake-mj-secret-key",
        sender=SENDER,
        messages=messages(2),
        idempotency_key=None,
    )

    assert recorder.json()["SandboxMode"] is True
    assert [(delivery.ok, delivery.provider_message_id) for delivery in deliveries] == [(True, None), (True, None)]
    assert recorder.state.sent_count() == 0


def test_a_refused_recipient_is_reported_with_its_code_and_field_beside_the_sent_ones(wire: Wire) -> None:
    wire.state.reject_recipient("reader2@example.org")

    deliveries = wire.send("mailjet", messages(4))

    assert '"reader2@example.org" is an invalid email address. (mj-0013, To[0].Email)' in deliveries[2].error
    [call] = wire.state.calls("mailjet")
    assert call.status == 400 and call.messages == 3


def test_messages_refused_for_their_sender_reject_the_call(wire: Wire) -> None:
    wire.state.reject_sender(SENDER.email)

    with pytest.raises(Rejected, match=r"not an authorized sender .*\(send-0008, From\)"):
        wire.send("mailjet", messages(3))


def test_a_message_refused_for_another_reason_beside_sender_refusals_stays_per_recipient(wire: Wire) -> None:
    results = [
        {"Status": "error", "Errors": [{"ErrorCode": "send-0008", "StatusCode": 403, "ErrorRelatedTo": ["From"]}]},
        {"Status": "error", "Errors": [{"ErrorCode": "send-0011", "ErrorMessage": "forbidden header"}]},
    ]
    wire.state.answer_next("mailjet", json_reply(400, {"Messages": results}))

    deliveries = wire.send("mailjet", messages(2))

    assert [delivery.ok for delivery in deliveries] == [False, False]
    assert "forbidden header (send-0011)" in deliveries[1].error


@pytest.mark.parametrize(
    ("reply", "count", "error", "words"),
    [
        (_global_error(400, "mj-0008", "Too many messages"), 3, BatchRefused, "Too many messages (mj-0008, HTTP 400)"),
        (_global_error(400, "mj-0011", "Payload too large"), 3, BatchRefused, "mj-0011"),
        (Reply(413, b"Request Entity Too Large"), 3, BatchRefused, "HTTP 413"),
        (_global_error(400, "mj-0011", "Payload too large"), 1, Rejected, "refused the request: Payload too large"),
        (_global_error(400, "mj-0002", "Malformed JSON"), 3, Rejected, "Malformed JSON (mj-0002, HTTP 400)"),
        (_global_error(401, "mj-0001", "API key is suspended"), 1, AuthFailed, "suspended (mj-0001, HTTP 401)"),
        (_global_error(403, "", "You are not authorized to access this resource"), 1, AuthFailed, "HTTP 403"),
        (_global_error(403, "send-0008", "Not an authorized sender"), 2, Rejected, "refused the sender"),
    ],
)
def test_global_errors_map_by_code_and_status(
    wire: Wire, reply: Reply, count: int, error: type[Exception], words: str
) -> None:
    wire.state.answer_next("mailjet", reply)

    with pytest.raises(error, match=r"^mailjet: ") as caught:
        wire.send("mailjet", messages(count))

    assert words in str(caught.value)
    assert type(caught.value) is error


@pytest.mark.parametrize(
    "payload",
    [
        {"Sent": [{"Email": "reader0@example.org", "MessageID": 1}]},
        {"Messages": [{"Status": "success", "To": []}]},
        {"Messages": [{"Status": "queued"}, {"Status": "success"}]},
        {"Messages": "success"},
    ],
)
def test_an_answer_without_one_documented_result_per_message_is_ambiguous(wire: Wire, payload: object) -> None:
    wire.state.answer_next("mailjet", json_reply(200, payload))

    with pytest.raises(Ambiguous, match="may have been sent"):
        wire.send("mailjet", messages(2))


@pytest.mark.parametrize(("hint", "expected"), [(None, None), (2.0, 2.0)])
def test_a_429_waits_for_retry_after_only_when_given(wire: Wire, hint: float | None, expected: float | None) -> None:
    wire.state.fail_next("mailjet", 429, retry_after_s=hint)

    with pytest.raises(RateLimited, match="Too Many Requests") as caught:
        wire.send("mailjet", messages(1))

    assert caught.value.retry_after_s == expected


# --- webhooks through the app ---------------------------------------------------------------


def test_mailjet_grouped_events(client: TestClient, db: psycopg.Connection, ids: dict[str, int]) -> None:
    auth = basic(MAILJET_USER, MAILJET_PASSWORD)
    grouped = [
        mailjet_event("sent", "ana@example.com", f"12-{ids['ana']}"),
        mailjet_event("bounce", "bob@example.com", f"12-{ids['bob']}", hard_bounce=True, error="user unknown"),
        mailjet_event("bounce", "carl@example.com", f"12-{ids['carl']}", hard_bounce=False, error="mailbox full"),
        mailjet_event("spam", "dan@example.com", f"12-{ids['dan']}"),
        mailjet_event("unsub", "eve@example.com", f"12-{ids['eve']}"),
        mailjet_event("open", "ana@example.com", f"12-{ids['ana']}"),
        mailjet_event("click", "ana@example.com", f"12-{ids['ana']}", url="https://example.com"),
        mailjet_event("blocked", "ana@example.com", f"12-{ids['ana']}", error="preblocked"),
    ]

    response = client.post("/webhooks/mailjet", json=grouped, headers=auth)

    assert response.status_code == 200, response.text
    assert response.json() == {"recorded": 5, "duplicates": 0, "ignored": 3}
    assert events(db) == [
        ("mailjet", "delivered", "ana@example.com", 12, ids["ana"], None),
        ("mailjet", "hard_bounce", "bob@example.com", 12, ids["bob"], "user unknown"),
        ("mailjet", "soft_bounce", "carl@example.com", 12, ids["carl"], "mailbox full"),
        ("mailjet", "complaint", "dan@example.com", 12, ids["dan"], "JMRPP"),
        ("mailjet", "unsubscribe", "eve@example.com", 12, ids["eve"], None),
    ]
    assert {email: source for email, (source, _) in blacklisted(db).items()} == {
        "bob@example.com": "hard_bounce",
        "dan@example.com": "complaint",
        "eve@example.com": "unsubscribe",
    }


def test_mailjet_one_event_per_request(client: TestClient, db: psycopg.Connection, ids: dict[str, int]) -> None:
    single = mailjet_event("bounce", "bob@example.com", f"12-{ids['bob']}", hard_bounce=True)

    response = client.post("/webhooks/mailjet", json=single, headers=basic(MAILJET_USER, MAILJET_PASSWORD))

    assert response.status_code == 200
    assert [row[:5] for row in events(db)] == [("mailjet", "hard_bounce", "bob@example.com", 12, ids["bob"])]


@pytest.mark.parametrize(
    "headers",
    [
        basic(MAILJET_USER, "wrong-password"),
        basic("someone", MAILJET_PASSWORD),
        {"authorization": f"Bearer {MAILJET_PASSWORD}"},
        {"authorization": "Basic not-base64!"},
        {},
    ],
)
def test_mailjet_without_its_basic_auth_is_401(client: TestClient, db: psycopg.Connection, headers: dict) -> None:
    grouped = [mailjet_event("bounce", "bob@example.com", "12-2", hard_bounce=True)]

    assert client.post("/webhooks/mailjet", json=grouped, headers=headers).status_code == 401
    assert nothing_recorded(db)


# --- webhook payloads, without HTTP or database -------------------------------------------


@pytest.mark.parametrize("hard_bounce", [None, "true", 1])
def test_a_bounce_without_a_true_or_false_hard_bounce_is_malformed(hard_bounce: object) -> None:
    item = {**mailjet_event("bounce", "a@example.com", None), "hard_bounce": hard_bounce}

    with pytest.raises(MalformedPayload, match="event 0: hard_bounce is not true or false"):
        mailjet.events(body([item]), NOW)


def test_mailjet_events_read_time_and_send_id_and_derive_their_ids() -> None:
    item = mailjet_event("sent", "a@example.com", "12-5")
    first, again = (mailjet.events(body(item), NOW).events[0] for _ in range(2))
    later = mailjet.events(body({**item, "time": item["time"] + 1}), NOW).events[0]
    untimed = mailjet.events(body({key: value for key, value in item.items() if key != "time"}), NOW).events[0]

    assert first.event_id == again.event_id != later.event_id
    assert first.event_id.startswith("sha256:")
    assert (first.send_id, first.occurred_at.timestamp()) == ("12-5", item["time"])
    assert untimed.occurred_at == NOW
    # An empty CustomID (none given at send time) is no send id: the event is kept by address.
    assert mailjet.events(body(mailjet_event("sent", "a@example.com", None)), NOW).events[0].send_id is None
