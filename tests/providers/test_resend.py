"""Resend's wire format: /emails/batch in permissive mode, tags, Idempotency-Key, its error names;
its Svix-signed webhooks."""

from __future__ import annotations

import json
import time
import uuid

import psycopg
import pytest
from starlette.testclient import TestClient

from campaign_pipelines.providers import (
    Ambiguous,
    AuthFailed,
    BatchRefused,
    QuotaExhausted,
    RateLimited,
    Rejected,
    resend,
)
from campaign_pipelines.providers.resend import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from campaign_pipelines.providers.webhook import MalformedPayload
from tests.fakes.providers import Reply
from tests.fakes.providers.base import json_reply
from tests.fakes.providers.resend import SECRET, contact_updated, error, signature
from tests.fakes.providers.resend import event as resend_event
from tests.fakes.providers.resend import headers as resend_headers
from tests.providers.support import SENDER, Recorder, Wire, message, messages
from tests.providers.webhook_support import NOW, blacklisted, body, events, nothing_recorded

# --- sending -----------------------------------------------------------------------------


def test_every_call_posts_complete_emails_to_the_batch_endpoint_in_permissive_mode(recorder: Recorder) -> None:
    key = str(uuid.uuid4())

    deliveries = recorder.send("resend", messages(3), idempotency_key=key)

    request = recorder.requests[0]
    assert request.url.path == "/emails/batch"
    assert request.headers["authorization"] == "Bearer re_fake_key"
    assert request.headers["x-batch-validation"] == "permissive"
    assert request.headers["idempotency-key"] == key
    first = recorder.json()[0]
    assert first["from"] == "Acme News <news@example.com>"
    assert first["to"] == ["reader0@example.org"]
    assert first["tags"] == [{"name": "send_id", "value": "c7-r0"}]
    assert first["headers"]["List-Unsubscribe"] == "<https://t.example.com/u/tok0>"
    assert [email["html"] for email in recorder.json()] == [sent.html for sent in messages(3)]
    assert len({delivery.provider_message_id for delivery in deliveries}) == 3


def test_an_empty_text_is_sent_empty_so_resend_writes_none_from_the_html(recorder: Recorder) -> None:
    recorder.send("resend", [message(1, text="")])

    assert recorder.json()[0]["text"] == ""
    assert recorder.state.messages()[0].text == ""


def test_one_message_goes_through_the_batch_endpoint_too(recorder: Recorder) -> None:
    recorder.send("resend", [message(1)])

    assert recorder.requests[0].url.path == "/emails/batch"
    assert len(recorder.json()) == 1


def test_a_repeat_under_the_same_key_gets_the_first_answer_and_sends_nothing_again(wire: Wire) -> None:
    key = str(uuid.uuid4())

    first = wire.send("resend", messages(2), idempotency_key=key)
    again = wire.send("resend", messages(2), idempotency_key=key)

    assert first == again
    assert wire.state.sent_count("resend") == 2
    assert [call.replayed for call in wire.state.calls("resend")] == [False, True]


def test_the_key_of_another_request_is_ambiguous(wire: Wire) -> None:
    key = str(uuid.uuid4())
    wire.send("resend", messages(2), idempotency_key=key)

    with pytest.raises(Ambiguous, match="invalid_idempotent_request.*may have been sent"):
        wire.send("resend", messages(2, start=5), idempotency_key=key)


@pytest.mark.parametrize("name", ["daily_quota_exceeded", "monthly_quota_exceeded"])
def test_a_quota_429_is_quota_exhausted_not_a_rate_limit(wire: Wire, name: str) -> None:
    wire.state.answer_next("resend", error(429, name, "You have reached your daily email sending quota."))

    with pytest.raises(QuotaExhausted, match=name):
        wire.send("resend", messages(2))


def test_the_rate_limit_reset_is_the_wait_when_retry_after_is_missing(wire: Wire) -> None:
    wire.state.answer_next("resend", error(429, "rate_limit_exceeded", "Too many requests.", {"ratelimit-reset": "3"}))

    with pytest.raises(RateLimited) as caught:
        wire.send("resend", messages(1))

    assert caught.value.retry_after_s == 3.0


@pytest.mark.parametrize("name", ["invalid_api_key", "suspended_api_key", "restricted_api_key"])
def test_a_refused_key_is_auth_failed(wire: Wire, name: str) -> None:
    wire.state.answer_next("resend", error(403, name, "API key is invalid."))

    with pytest.raises(AuthFailed, match=name):
        wire.send("resend", messages(1))


def test_an_unverified_domain_refuses_the_sender_in_resends_words(wire: Wire) -> None:
    wire.state.reject_sender(SENDER.email)

    with pytest.raises(Rejected, match="The example.com domain is not verified.*validation_error, HTTP 403"):
        wire.send("resend", messages(2))


def test_a_permissive_batch_where_every_email_names_the_sender_is_rejected(wire: Wire) -> None:
    refusal = {"message": "Invalid `from` field. The email address needs to follow the `email@example.com` format."}
    wire.state.answer_next(
        "resend", json_reply(200, {"data": [], "errors": [{"index": 0, **refusal}, {"index": 1, **refusal}]})
    )

    with pytest.raises(Rejected, match="refused the sender news@example.com: Invalid `from` field"):
        wire.send("resend", messages(2))


@pytest.mark.parametrize(
    "answer",
    [
        {"data": [{"id": "4ef2"}]},  # ids for fewer emails than were sent
        {"data": [{"id": "4ef2"}, {"id": "5a01"}], "errors": [{"index": 7, "message": "?"}]},  # an index not sent
        {"data": [{"id": "4ef2"}], "errors": [{"index": 1, "message": "?"}, {"index": 1, "message": "?"}]},
        {"data": [{"id": "4ef2"}, {"id": 3}, {"id": "5a01"}]},  # an id that is not text
        {"id": "4ef2"},  # the single endpoint's answer
        [{"id": "4ef2"}],
    ],
)
def test_a_success_whose_ids_do_not_add_up_is_ambiguous(wire: Wire, answer: object) -> None:
    wire.state.answer_next("resend", json_reply(200, answer))

    with pytest.raises(Ambiguous, match="may have been sent"):
        wire.send("resend", messages(3))


def test_a_refused_recipient_keeps_resends_words_and_its_index(wire: Wire) -> None:
    wire.state.reject_recipient("reader2@example.org")

    deliveries = wire.send("resend", messages(4))

    assert deliveries[2].error.startswith("resend refused reader2@example.org: Invalid `to` field.")
    assert deliveries[2].error.endswith("(email 2)")


def test_a_413_splits_the_call(wire: Wire) -> None:
    wire.state.answer_next("resend", Reply(413, b"Request Entity Too Large", {"content-type": "text/plain"}))

    with pytest.raises(BatchRefused, match="HTTP 413"):
        wire.send("resend", messages(2))


# --- webhooks ----------------------------------------------------------------------------


def _post(client: TestClient, document: object, **signing: str):
    content = json.dumps(document).encode()
    return client.post("/webhooks/resend", content=content, headers=resend_headers(content, **signing))


def test_resend_events_are_recorded_with_their_blacklist_effects(
    client: TestClient, db: psycopg.Connection, ids: dict[str, int]
) -> None:
    documents = [
        resend_event("email.delivered", "ana@example.com", f"12-{ids['ana']}"),
        resend_event(
            "email.bounced",
            "Bob <bob@example.com>",
            f"12-{ids['bob']}",
            bounce={"type": "Permanent", "subType": "General", "message": "550 5.1.1 user unknown"},
        ),
        resend_event(
            "email.bounced",
            "carl@example.com",
            f"12-{ids['carl']}",
            bounce={"type": "Transient", "subType": "MailboxFull", "message": "452 mailbox full"},
        ),
        resend_event("email.complained", "dan@example.com", f"12-{ids['dan']}"),
        contact_updated("eve@example.com"),
        resend_event("email.delivery_delayed", "ana@example.com", f"12-{ids['ana']}"),
        resend_event("email.opened", "ana@example.com", f"12-{ids['ana']}"),
        contact_updated("ana@example.com", unsubscribed=False),
    ]

    answers = [_post(client, document).json() for document in documents]

    assert [answer["recorded"] for answer in answers] == [1, 1, 1, 1, 1, 0, 0, 0]
    assert [answer["ignored"] for answer in answers] == [0, 0, 0, 0, 0, 1, 1, 1]
    assert sorted(events(db)) == [
        ("resend", "complaint", "dan@example.com", 12, ids["dan"], None),
        ("resend", "delivered", "ana@example.com", 12, ids["ana"], None),
        ("resend", "hard_bounce", "bob@example.com", 12, ids["bob"], "550 5.1.1 user unknown"),
        ("resend", "soft_bounce", "carl@example.com", 12, ids["carl"], "452 mailbox full"),
        # A contact's change names no email of ours: kept by address.
        ("resend", "unsubscribe", "eve@example.com", None, None, None),
    ]
    assert blacklisted(db) == {
        "bob@example.com": ("hard_bounce", "resend: 550 5.1.1 user unknown"),
        "dan@example.com": ("complaint", "resend: spam complaint"),
        "eve@example.com": ("unsubscribe", "resend: unsubscribed"),
    }


def test_a_retry_carries_the_same_svix_id_and_is_stored_once(client: TestClient, db: psycopg.Connection) -> None:
    document = resend_event("email.bounced", "bob@example.com", "12-2", bounce={"type": "Permanent"})

    first = _post(client, document, event_id="msg_2W2D3qXLS5fOaPja1GDg7rF2CwB")
    retry = _post(client, document, event_id="msg_2W2D3qXLS5fOaPja1GDg7rF2CwB", timestamp=str(int(time.time()) + 5))

    assert first.json()["recorded"] == 1
    assert retry.json() == {"recorded": 0, "duplicates": 1, "ignored": 0}
    assert len(events(db)) == 1


def _forged(content: bytes) -> list[dict[str, str]]:
    good = resend_headers(content)
    other = resend_headers(content, secret="whsec_" + "b3RoZXItc2VjcmV0LW9mLXNvbWVvbmU=")
    later = str(int(good[TIMESTAMP_HEADER]) + 1)
    return [
        other,  # signed with another secret
        {**good, TIMESTAMP_HEADER: later},  # timestamp changed after signing
        {**good, ID_HEADER: "msg_another"},  # id changed after signing
        {**good, SIGNATURE_HEADER: "v1,bm90IGEgc2lnbmF0dXJl"},  # not the signature
        {**good, SIGNATURE_HEADER: "v1,%%%"},  # not base64
        {**good, SIGNATURE_HEADER: good[SIGNATURE_HEADER].replace("v1,", "v2,")},  # a scheme we do not know
        {key: value for key, value in good.items() if key != ID_HEADER},  # id missing
        {key: value for key, value in good.items() if key != TIMESTAMP_HEADER},  # timestamp missing
    ]


def test_resend_without_a_valid_signature_is_401_and_records_nothing(
    client: TestClient, db: psycopg.Connection
) -> None:
    content = json.dumps(
        resend_event("email.bounced", "bob@example.com", "12-2", bounce={"type": "Permanent"})
    ).encode()

    for number, forged in enumerate(_forged(content)):
        assert client.post("/webhooks/resend", content=content, headers=forged).status_code == 401, number
    changed = content.replace(b"bob@", b"ann@")
    assert client.post("/webhooks/resend", content=changed, headers=resend_headers(content)).status_code == 401

    assert nothing_recorded(db)
    assert client.post("/webhooks/resend", content=content, headers=resend_headers(content)).status_code == 200


def test_while_a_secret_is_rotated_either_signature_is_enough(client: TestClient, db: psycopg.Connection) -> None:
    content = json.dumps(resend_event("email.delivered", "bob@example.com", "12-2")).encode()
    signed = resend_headers(content)
    stale = signature(content, "whsec_b2xkLXNlY3JldA==", signed[ID_HEADER], signed[TIMESTAMP_HEADER])

    response = client.post(
        "/webhooks/resend",
        content=content,
        headers={**signed, SIGNATURE_HEADER: f"v1,{stale} {signed[SIGNATURE_HEADER]}"},
    )

    assert response.status_code == 200 and len(events(db)) == 1


def test_a_signature_from_more_than_five_minutes_ahead_is_refused(client: TestClient, db: psycopg.Connection) -> None:
    response = _post(
        client, resend_event("email.delivered", "bob@example.com", "12-2"), timestamp=str(int(time.time()) + 400)
    )

    assert response.status_code == 401 and "5 minutes" in response.text
    assert nothing_recorded(db)


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("c2VjcmV0", "does not start with 'whsec_'"),
        ("whsec_not*base64", "is not base64"),
        ("whsec_", "nothing follows"),
    ],
)
def test_a_signing_secret_that_is_not_resends_is_refused_without_being_shown(secret: str, why: str) -> None:
    with pytest.raises(ValueError, match=f"^RESEND_WEBHOOK_SECRET cannot be used: .*{why}") as caught:
        resend.PROVIDER.webhook.configure({"RESEND_WEBHOOK_SECRET": secret})
    assert "c2VjcmV0" not in str(caught.value) and "not*base64" not in str(caught.value)


def test_the_signing_key_is_the_base64_after_whsec() -> None:
    assert resend.signing_key("whsec_" + "c2VjcmV0") == b"secret"
    assert resend.signing_key(SECRET)


# --- webhook payloads, without HTTP or database -------------------------------------------


def _events(document: object) -> list:
    return resend.events(body(document), "msg_1", NOW).events


@pytest.mark.parametrize(
    ("bounce", "expected"),
    [
        ({"type": "Transient", "message": "452 mailbox full"}, ("soft_bounce", "452 mailbox full")),
        ({"type": "Permanent", "subType": "Suppressed"}, ("hard_bounce", "Suppressed")),
        ({"type": "Undetermined"}, ("hard_bounce", "Undetermined")),
        (
            {"message": "Resend has suppressed sending to this address"},
            ("hard_bounce", "Resend has suppressed sending to this address"),
        ),
        (None, ("hard_bounce", None)),
    ],
)
def test_a_bounce_is_soft_only_when_resend_calls_it_transient(bounce: dict | None, expected: tuple) -> None:
    document = resend_event("email.bounced", "a@example.com", "12-2", **({} if bounce is None else {"bounce": bounce}))

    [parsed] = _events(document)

    assert (parsed.event, parsed.detail) == expected


def test_an_event_is_named_by_its_svix_id_and_dated_by_its_creation() -> None:
    [parsed] = _events(resend_event("email.delivered", "a@example.com", "12-2"))

    assert parsed.event_id == "msg_1"
    assert parsed.occurred_at.isoformat() == "2025-11-28T08:30:00.123000+00:00"


def test_tags_in_the_requests_list_form_give_the_send_id_too() -> None:
    document = resend_event("email.delivered", "a@example.com", None)
    document["data"]["tags"] = [{"name": "campaign", "value": "march"}, {"name": "send_id", "value": "12-9"}]

    assert _events(document)[0].send_id == "12-9"


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ([resend_event("email.delivered", "a@example.com", "12-2")], "not one event object"),
        ({"created_at": "2025-11-28T08:30:00Z", "data": {}}, "type is missing"),
        ({"type": "email.delivered", "data": {"to": []}}, "the recipient"),
        (
            {"type": "email.delivered", "data": {"to": ["a@example.com"], "tags": "send_id"}},
            "data.tags is not an object",
        ),
        ({"type": "email.delivered", "data": "a@example.com"}, "data is not an object"),
        ({"type": "contact.updated", "data": {"unsubscribed": True}}, "the recipient"),
        ({"type": "email.delivered", "created_at": "yesterday", "data": {"to": ["a@example.com"]}}, "not an ISO 8601"),
    ],
)
def test_a_body_that_is_not_resends_is_malformed_in_words_that_say_where(document: object, words: str) -> None:
    with pytest.raises(MalformedPayload, match=words):
        _events(document)
