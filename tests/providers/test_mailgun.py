"""Mailgun's wire format: the sender's domain in the path, multipart fields, recipient-variables."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
import pytest
from starlette.testclient import TestClient

from campaign_pipelines import providers
from campaign_pipelines.providers import RateLimited, mailgun
from campaign_pipelines.providers.mailgun import Signature as MailgunSignature
from campaign_pipelines.providers.webhook import MalformedPayload, Parsed
from tests.fakes.providers.mailgun import event as mailgun_event
from tests.fakes.providers.mailgun import failure as mailgun_failure
from tests.fakes.providers.mailgun import form_fields
from tests.fakes.providers.mailgun import sign as mailgun_body
from tests.providers.support import Recorder, Wire, message, messages
from tests.providers.webhook_support import (
    NOW,
    blacklisted,
    events,
    nothing_recorded,
)


def _fields(recorder: Recorder) -> list[tuple[str, str]]:
    request = recorder.requests[-1]
    fields = form_fields(request.headers["content-type"], request.content)
    assert fields is not None
    return fields


def test_single_send_posts_multipart_to_the_senders_domain(recorder: Recorder) -> None:
    recorder.send("mailgun", [message(1)])

    request = recorder.requests[0]
    assert request.url.path == "/v3/example.com/messages"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"api:key-fake").decode()
    fields = dict(_fields(recorder))
    assert fields["to"] == "reader1@example.org"
    assert fields["from"] == "Acme News <news@example.com>"
    assert fields["v:send_id"] == "c7-r1"
    assert fields["h:List-Unsubscribe"] == "<https://t.example.com/u/tok1>"
    assert "recipient-variables" not in fields


def test_batch_send_uses_one_to_per_recipient_and_recipient_variables(recorder: Recorder) -> None:
    batch = messages(4)

    deliveries = recorder.send("mailgun", batch)

    fields = _fields(recorder)
    assert [value for name, value in fields if name == "to"] == [sent.to_email for sent in batch]
    named = dict(fields)
    assert named["v:send_id"] == "%recipient.send_id%"
    variables = orjson.loads(named["recipient-variables"])
    assert [variables[sent.to_email]["send_id"] for sent in batch] == [sent.send_id for sent in batch]
    assert "Our March news, the same for everyone." in named["html"]
    assert len({delivery.provider_message_id for delivery in deliveries}) == 1


def test_messages_with_different_header_names_never_share_a_call() -> None:
    provider = providers.get("mailgun")
    plain = message(9, headers={})

    calls = provider.split([*messages(2), plain, message(3)])

    assert [[sent.send_id for sent in call] for call in calls] == [["c7-r0", "c7-r1", "c7-r3"], ["c7-r9"]]


def test_a_message_containing_recipient_markers_goes_alone() -> None:
    provider = providers.get("mailgun")
    odd = message(2, html="<p>%recipient.name%</p>")

    calls = provider.split([*messages(2), odd])

    assert [[sent.send_id for sent in call] for call in calls] == [["c7-r2"], ["c7-r0", "c7-r1"]]


@pytest.mark.parametrize(("hint", "expected"), [(None, None), (5.0, 5.0)])
def test_a_429_waits_for_retry_after_when_given(wire: Wire, hint: float | None, expected: float | None) -> None:
    wire.state.fail_next("mailgun", 429, retry_after_s=hint)

    with pytest.raises(RateLimited) as caught:
        wire.send("mailgun", messages(2))

    assert caught.value.retry_after_s == expected


# --- Mailgun -------------------------------------------------------------------------------


def test_mailgun_permanent_failure_blacklists_at_once(
    client: TestClient, db: psycopg.Connection, ids: dict[str, int]
) -> None:
    failure = mailgun_failure(
        "bob@example.com",
        f"12-{ids['bob']}",
        "permanent",
        "5.1.1 The email account that you tried to reach does not exist",
    )
    response = client.post("/webhooks/mailgun", content=mailgun_body(failure))

    assert response.status_code == 200
    assert events(db) == [
        (
            "mailgun",
            "hard_bounce",
            "bob@example.com",
            12,
            ids["bob"],
            "5.1.1 The email account that you tried to reach does not exist",
        )
    ]
    assert blacklisted(db)["bob@example.com"][0] == "hard_bounce"


@pytest.mark.parametrize(
    ("event_data", "expected"),
    [
        (mailgun_event("delivered", "ana@example.com", "12-1"), "delivered"),
        (mailgun_event("complained", "ana@example.com", "12-1"), "complaint"),
        (mailgun_event("unsubscribed", "ana@example.com", "12-1"), "unsubscribe"),
        (mailgun_failure("ana@example.com", "12-1", "temporary", "4.2.2 mailbox full"), "soft_bounce"),
    ],
)
def test_mailgun_events(client: TestClient, db: psycopg.Connection, event_data: dict, expected: str) -> None:
    assert client.post("/webhooks/mailgun", content=mailgun_body(event_data)).status_code == 200
    assert [row[1] for row in events(db)] == [expected]


def test_mailgun_ignores_opens_but_spends_their_token(client: TestClient, db: psycopg.Connection) -> None:
    body = mailgun_body(mailgun_event("opened", "ana@example.com", "12-1"))
    assert client.post("/webhooks/mailgun", content=body).json() == {"recorded": 0, "duplicates": 0, "ignored": 1}
    assert events(db) == []
    assert client.post("/webhooks/mailgun", content=body).status_code == 406


def test_a_replayed_mailgun_request_is_refused(client: TestClient, db: psycopg.Connection) -> None:
    body = mailgun_body(mailgun_failure("bob@example.com", "12-2", "temporary", "4.2.2 mailbox full"))

    first = client.post("/webhooks/mailgun", content=body)
    replay = client.post("/webhooks/mailgun", content=body)

    assert first.status_code == 200
    assert replay.status_code == 406
    assert len(events(db)) == 1
    assert db.execute("SELECT count(*) FROM webhook_tokens").fetchone() == (1,)


def test_old_mailgun_tokens_are_forgotten(client: TestClient, db: psycopg.Connection) -> None:
    db.execute(
        "INSERT INTO webhook_tokens (token, seen_at) VALUES ('old', now() - interval '2 hours'), ('recent', now())"
    )
    body = mailgun_body(mailgun_event("delivered", "ana@example.com", "12-1"), token="new")
    assert client.post("/webhooks/mailgun", content=body).status_code == 200
    assert sorted(db.execute("SELECT token FROM webhook_tokens").fetchall()) == [("new",), ("recent",)]


@pytest.mark.parametrize("age_s", [301, -301, 86400])
def test_a_stale_mailgun_signature_is_refused(client: TestClient, db: psycopg.Connection, age_s: float) -> None:
    failure = mailgun_failure("bob@example.com", "12-2", "permanent", "550 gone")
    response = client.post("/webhooks/mailgun", content=mailgun_body(failure, age_s=age_s))
    assert response.status_code == 401
    assert "5 minutes" in response.text
    assert nothing_recorded(db)
    # Within the window it passes.
    assert (
        client.post("/webhooks/mailgun", content=mailgun_body(failure, age_s=age_s / abs(age_s) * 250)).status_code
        == 200
    )


def test_a_bad_mailgun_signature_is_401_and_records_nothing(client: TestClient, db: psycopg.Connection) -> None:
    failure = mailgun_failure("bob@example.com", "12-2", "permanent", "550 gone")
    signed = json.loads(mailgun_body(failure))
    other_token = {**signed, "signature": {**signed["signature"], "token": secrets.token_hex(25)}}
    for body in (
        mailgun_body(failure, key=secrets.token_hex(32)),
        json.dumps(other_token).encode(),
        json.dumps({"event-data": failure}).encode(),
        json.dumps({**signed, "signature": {**signed["signature"], "signature": ""}}).encode(),
    ):
        assert client.post("/webhooks/mailgun", content=body).status_code == 401
    assert nothing_recorded(db)


def test_soft_bounces_blacklist_at_the_nth(client: TestClient, db: psycopg.Connection, ids: dict[str, int]) -> None:
    for attempt in (1, 2):
        failure = mailgun_failure("carl@example.com", f"12-{ids['carl']}", "temporary", f"452 mailbox full ({attempt})")
        assert client.post("/webhooks/mailgun", content=mailgun_body(failure)).status_code == 200
        assert blacklisted(db) == {}

    failure = mailgun_failure("carl@example.com", f"12-{ids['carl']}", "temporary", "452 mailbox full (3)")
    assert client.post("/webhooks/mailgun", content=mailgun_body(failure)).status_code == 200

    assert blacklisted(db) == {
        "carl@example.com": ("soft_bounce", "mailgun: 3 soft bounces, the last: 452 mailbox full (3)")
    }


# --- webhook payloads, without HTTP or database -------------------------------------------


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


def test_mailgun_event_ids_hold_the_event_time() -> None:
    def event_id(**changes: Any) -> str:
        data = {"event": "delivered", "id": "Ase7i2zsRYeDXztHGENqRA", "timestamp": 1764318600.5, "recipient": "a@x.com"}
        return mailgun.events({"event-data": {**data, **changes}}, NOW).events[0].event_id

    assert event_id() == event_id()
    # Mailgun's id is unique within a day only.
    assert event_id(timestamp=1764405000.5) != event_id()
