"""tracking_app.webhooks over HTTP: each provider's real payloads, signatures and credentials made in
the test (an ECDSA P-256 key pair for SendGrid, a random HMAC key for Mailgun), on the real database.

The app here holds only the webhook routes, so these tests do not depend on the rest of the
tracking app.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from psycopg import sql
from starlette.applications import Starlette
from starlette.testclient import TestClient

from campaign_pipelines.providers.sendgrid import SIGNATURE_HEADER as SENDGRID_SIGNATURE_HEADER
from campaign_pipelines.providers.sendgrid import TIMESTAMP_HEADER as SENDGRID_TIMESTAMP_HEADER
from campaign_pipelines.store import blacklist as blacklist_sql
from campaign_pipelines.store.contacts import contact_table, create_contact_table, create_send_indexes
from tracking_app import webhooks
from tracking_app.webhooks import WebhookSettings

CAMPAIGN = 12
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
MAILGUN_KEY = secrets.token_hex(32)
BREVO_TOKEN = secrets.token_urlsafe(24)
POSTMARK_USER, POSTMARK_PASSWORD = "postmark", secrets.token_urlsafe(16)


def der_base64(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


ENVIRONMENT = {
    "BREVO_WEBHOOK_TOKEN": BREVO_TOKEN,
    "SENDGRID_WEBHOOK_PUBLIC_KEY": der_base64(SENDGRID_KEY),
    "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
    "POSTMARK_WEBHOOK_USER": POSTMARK_USER,
    "POSTMARK_WEBHOOK_PASSWORD": POSTMARK_PASSWORD,
    "SOFT_BOUNCE_LIMIT": "3",
}


@pytest.fixture
def ids(db: psycopg.Connection) -> dict[str, int]:
    """Campaign 12's contacts, email → contact id: their send ids are "12-<id>"."""
    create_contact_table(db, CAMPAIGN)
    table = contact_table(CAMPAIGN)
    with db.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO {} (email, attributes) VALUES (%s, '{{}}')").format(table),
            [(f"{name}@example.com",) for name in ("ana", "bob", "carl", "dan", "eve")],
        )
    create_send_indexes(db, CAMPAIGN)  # as its launch would
    return {email.split("@")[0]: id_ for email, id_ in db.execute(sql.SQL("SELECT email, id FROM {}").format(table))}


def client_for(database_url: str, environment: dict[str, str] | None = None) -> TestClient:
    app = Starlette(routes=webhooks.routes)
    app.state.webhook_settings = WebhookSettings.from_environment(
        ENVIRONMENT if environment is None else environment, database_url=database_url
    )
    return TestClient(app)


@pytest.fixture
def client(db: psycopg.Connection, database_url: str) -> Iterator[TestClient]:
    with client_for(database_url) as client:
        yield client


def events(db: psycopg.Connection) -> list[tuple]:
    """By request, then by address: one request's events are stored in event id order, not the payload's."""
    return db.execute(
        "SELECT provider, event, email, campaign_id, contact_id, detail FROM delivery_events"
        " ORDER BY received_at, email, event"
    ).fetchall()


def blacklisted(db: psycopg.Connection) -> dict[str, tuple[str, str]]:
    return {
        email: (source, reason) for email, source, reason in db.execute("SELECT email, source, reason FROM blacklist")
    }


def nothing_recorded(db: psycopg.Connection) -> bool:
    return (
        events(db) == []
        and blacklisted(db) == {}
        and db.execute("SELECT count(*) FROM webhook_tokens").fetchone() == (0,)
    )


# --- signing as the providers do ---------------------------------------------------------


def sendgrid_headers(body: bytes, key: ec.EllipticCurvePrivateKey = SENDGRID_KEY, timestamp: str | None = None) -> dict:
    timestamp = timestamp or str(int(time.time()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "content-type": "application/json",
        SENDGRID_SIGNATURE_HEADER: base64.b64encode(signature).decode(),
        SENDGRID_TIMESTAMP_HEADER: timestamp,
    }


def mailgun_body(
    event_data: dict[str, Any], *, key: str = MAILGUN_KEY, token: str | None = None, age_s: float = 0
) -> bytes:
    timestamp = str(int(time.time() - age_s))
    token = token or secrets.token_hex(25)
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": event_data}
    ).encode()


def basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def brevo_headers(token: str = BREVO_TOKEN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# --- payloads as the providers send them (providers.md §2.7, §3.7, §4.7, §5.7) -------------


def sendgrid_event(event: str, email: str, send_id: str | None, **fields: Any) -> dict[str, Any]:
    item = {
        "email": email,
        "timestamp": 1764318600,
        "event": event,
        "sg_event_id": secrets.token_urlsafe(16),
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "category": ["black-friday"],
        **fields,
    }
    if send_id is not None:
        item["send_id"] = send_id  # custom_args come back merged at the top level
    return item


def mailgun_event(event: str, recipient: str, send_id: str | None, **fields: Any) -> dict[str, Any]:
    data = {
        "event": event,
        "id": secrets.token_urlsafe(16),
        "timestamp": 1764318600.521,
        "recipient": recipient,
        "log-level": "info",
        "message": {"headers": {"message-id": "20251128083000.1.ABC@mg.mondomaine.com"}},
        "tags": [],
        "user-variables": {} if send_id is None else {"send_id": send_id},
        **fields,
    }
    return data


def mailgun_failure(recipient: str, send_id: str, severity: str, message: str) -> dict[str, Any]:
    return mailgun_event(
        "failed",
        recipient,
        send_id,
        severity=severity,
        reason="bounce" if severity == "permanent" else "generic",
        **{
            "log-level": "error",
            "delivery-status": {"code": 550, "message": message, "description": "", "attempt-no": 1},
        },
    )


def brevo_event(event: str, email: str, custom: str | None, **fields: Any) -> dict[str, Any]:
    item = {
        "event": event,
        "email": email,
        "id": 901234,
        "date": "2025-11-28 09:30:00",
        "ts": 1764318600,
        "message-id": "<202511280830.12345678901@smtp-relay.mailin.fr>",
        "ts_event": 1764318600,
        "ts_epoch": 1764318600123,
        "subject": "Offres Exclusives",
        "tag": "",
        "sending_ip": "185.41.28.109",
        "tags": [],
        **fields,
    }
    if custom is not None:
        item["X-Mailin-custom"] = custom
    return item


def postmark_bounce(bounce_type: str, email: str, send_id: str | None, details: str = "") -> dict[str, Any]:
    return {
        "RecordType": "Bounce",
        "MessageStream": "broadcast",
        "ID": 4323372036854775807,
        "Type": bounce_type,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {} if send_id is None else {"send_id": send_id},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": details,
        "Email": email,
        "From": "offres@mondomaine.com",
        "BouncedAt": "2025-11-28T08:30:00.1234567Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Offres Exclusives",
    }


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


# --- matching, bad bodies, configuration ---------------------------------------------------


def test_events_without_one_of_our_send_ids_are_recorded_by_email(
    client: TestClient, db: psycopg.Connection, ids: dict[str, int]
) -> None:
    batch = [
        brevo_event("hard_bounce", "Bob@Example.com", "newsletter-2025-abc", reason="550 unknown"),
        brevo_event("delivered", "ana@example.com", None),
        # Our format, but contact 'ana' has another address: not that send.
        brevo_event("delivered", "zoe@example.com", f"12-{ids['ana']}"),
        brevo_event("delivered", "ana@example.com", f"99-{ids['ana']}", **{"message-id": "<another@mailin.fr>"}),
    ]
    assert client.post("/webhooks/brevo", json=batch, headers=brevo_headers()).status_code == 200

    assert [(row[1], row[2], row[3], row[4]) for row in events(db)] == [
        ("delivered", "ana@example.com", None, None),
        ("delivered", "ana@example.com", None, None),
        ("hard_bounce", "bob@example.com", None, None),
        ("delivered", "zoe@example.com", None, None),
    ]
    assert blacklisted(db)["bob@example.com"][0] == "hard_bounce"


@pytest.mark.parametrize(
    ("provider", "body"),
    [
        ("sendgrid", b"not json"),
        ("sendgrid", b'[{"event": "bounce", "email": "bob@example.com"}, 42]'),
        ("sendgrid", b'[{"event": "bounce", "type": "bounce", "timestamp": 1764318600}]'),
        ("sendgrid", b'[{"email": "bob@example.com"}]'),
        ("sendgrid", b'[{"event": "delivered", "email": "a@example.com", "timestamp": "yesterday"}]'),
        ("brevo", b'{"event": "hard_bounce"'),
        ("brevo", b'{"event": "hard_bounce", "email": 42}'),
        ("brevo", b'[{"event": "delivered", "email": "a@example.com"}, {"event": "spam", "email": ""}]'),
        ("postmark", b'{"RecordType": "Bounce", "Type": "HardBounce"}'),
        ("postmark", b'{"RecordType": "Delivery", "Recipient": "a@example.com", "DeliveredAt": "28/11/2025"}'),
        ("postmark", b'{"RecordType": "Bounce", "Type": "HardBounce", "Email": "a@example.com", "Metadata": "12-1"}'),
        ("postmark", b"[]]"),
    ],
)
def test_a_malformed_body_is_400_and_records_nothing(
    client: TestClient, db: psycopg.Connection, provider: str, body: bytes
) -> None:
    headers = {
        "sendgrid": sendgrid_headers(body),
        "brevo": brevo_headers(),
        "postmark": basic(POSTMARK_USER, POSTMARK_PASSWORD),
    }[provider]
    response = client.post(f"/webhooks/{provider}", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.text.startswith("malformed payload")
    assert nothing_recorded(db)


@pytest.mark.parametrize(
    "event_data",
    [
        "not an object",
        {"event": "failed", "severity": "permanent"},
        {"event": "delivered", "recipient": "a@example.com", "user-variables": "12-1"},
        {"event": "delivered", "recipient": "a@example.com", "timestamp": float("1e20")},
    ],
)
def test_a_malformed_mailgun_event_is_400_and_spends_no_token(
    client: TestClient, db: psycopg.Connection, event_data: Any
) -> None:
    response = client.post("/webhooks/mailgun", content=mailgun_body(event_data))
    assert response.status_code == 400, response.text
    assert nothing_recorded(db)
    assert client.post("/webhooks/mailgun", content=b"{").status_code == 400


def test_a_provider_not_configured_answers_503_and_logs_why(
    db: psycopg.Connection, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    environment = {
        **{
            k: v
            for k, v in ENVIRONMENT.items()
            if k not in ("MAILGUN_WEBHOOK_SIGNING_KEY", "POSTMARK_WEBHOOK_PASSWORD")
        },
        "SENDGRID_WEBHOOK_PUBLIC_KEY": "bm90IGEga2V5",
    }
    body = mailgun_body(mailgun_failure("bob@example.com", "12-2", "permanent", "550"))
    with (
        caplog.at_level(logging.ERROR, logger="tracking_app.webhooks"),
        client_for(database_url, environment) as client,
    ):
        mailgun = client.post("/webhooks/mailgun", content=body)
        postmark = client.post("/webhooks/postmark", json={}, headers=basic(POSTMARK_USER, POSTMARK_PASSWORD))
        sendgrid = client.post("/webhooks/sendgrid", content=b"[]", headers=sendgrid_headers(b"[]"))
        brevo = client.post("/webhooks/brevo", json=[], headers=brevo_headers())

    assert (mailgun.status_code, postmark.status_code, sendgrid.status_code, brevo.status_code) == (503, 503, 503, 200)
    assert mailgun.text == "mailgun webhooks are not configured on this server"
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == (
        "webhook from mailgun answered 503, mailgun webhooks are not configured: MAILGUN_WEBHOOK_SIGNING_KEY not set"
    )
    assert messages[1].endswith("POSTMARK_WEBHOOK_PASSWORD not set")
    assert "SENDGRID_WEBHOOK_PUBLIC_KEY cannot be used: it is not a base64 DER public key" in messages[2]
    assert all(secret not in message for message in messages for secret in (BREVO_TOKEN, POSTMARK_PASSWORD))
    assert nothing_recorded(db)


def test_a_bad_soft_bounce_limit_stops_every_provider(db: psycopg.Connection, database_url: str) -> None:
    with client_for(database_url, {**ENVIRONMENT, "SOFT_BOUNCE_LIMIT": "0"}) as client:
        response = client.post("/webhooks/brevo", json=[], headers=brevo_headers())
    assert response.status_code == 503


def test_settings_come_from_the_environment_at_the_first_request(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**ENVIRONMENT, "DATABASE_URL": database_url, "SOFT_BOUNCE_LIMIT": "1"}.items():
        monkeypatch.setenv(name, value)
    app = Starlette(routes=webhooks.routes)
    with TestClient(app) as client:
        body = json.dumps([sendgrid_event("bounce", "carl@example.com", None, type="blocked", reason="452")]).encode()
        assert client.post("/webhooks/sendgrid", content=body, headers=sendgrid_headers(body)).status_code == 200
    assert app.state.webhook_settings.soft_bounce_limit == 1
    assert blacklisted(db) == {"carl@example.com": ("soft_bounce", "sendgrid: 1 soft bounces, the last: 452")}


def test_a_failure_while_recording_keeps_nothing_not_even_the_token(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = mailgun_body(mailgun_failure("bob@example.com", "12-2", "permanent", "550 gone"))

    def broken(conn: psycopg.Connection, new: object) -> list:
        raise psycopg.errors.AdminShutdown("the server is shutting down")

    with monkeypatch.context() as patch:
        patch.setattr(blacklist_sql, "add_many", broken)
        with TestClient(client_for(database_url).app, raise_server_exceptions=False) as client:
            assert client.post("/webhooks/mailgun", content=body).status_code == 500
    assert nothing_recorded(db)
    # Mailgun retries; the retry is not taken for a replay.
    with client_for(database_url) as client:
        assert client.post("/webhooks/mailgun", content=body).status_code == 200
    assert blacklisted(db)["bob@example.com"][0] == "hard_bounce"


def test_a_huge_body_is_413(client: TestClient, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks, "MAX_BODY_BYTES", 1000)
    body = json.dumps([sendgrid_event("delivered", "ana@example.com", "12-1")] * 20).encode()
    assert client.post("/webhooks/sendgrid", content=body, headers=sendgrid_headers(body)).status_code == 413
    assert nothing_recorded(db)


def test_webhooks_are_post_only(client: TestClient) -> None:
    for provider in webhooks.PROVIDERS:
        assert client.get(f"/webhooks/{provider}").status_code == 405


# --- replays: a provider's retries and anyone's copies are stored once -----------------------


def soft_bounce_copies(provider: str, ids: dict[str, int]) -> tuple[list[tuple[bytes, dict[str, str]]], str]:
    """Three POSTs of one soft bounce of carl's, each signed or authenticated anew, and the path."""
    if provider == "sendgrid":
        body = json.dumps(
            [sendgrid_event("bounce", "carl@example.com", f"12-{ids['carl']}", type="blocked", reason="452 full")]
        ).encode()
        return [(body, sendgrid_headers(body)) for _ in range(3)], "/webhooks/sendgrid"
    body = json.dumps(brevo_event("soft_bounce", "carl@example.com", f"12-{ids['carl']}", reason="452 full")).encode()
    return [(body, {**brevo_headers(), "content-type": "application/json"}) for _ in range(3)], "/webhooks/brevo"


def test_a_sendgrid_event_posted_three_times_is_stored_once(
    client: TestClient, db: psycopg.Connection, ids: dict[str, int]
) -> None:
    body = json.dumps([sendgrid_event("delivered", "ana@example.com", f"12-{ids['ana']}")]).encode()
    headers = sendgrid_headers(body)

    answers = [client.post("/webhooks/sendgrid", content=body, headers=headers) for _ in range(3)]

    # Acknowledged every time, so SendGrid stops retrying; stored the first time only.
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert [answer.json()["recorded"] for answer in answers] == [1, 0, 0]
    assert [answer.json()["duplicates"] for answer in answers] == [0, 1, 1]
    assert events(db) == [("sendgrid", "delivered", "ana@example.com", 12, ids["ana"], None)]


def test_copies_of_an_event_in_one_sendgrid_batch_are_stored_once(
    client: TestClient, db: psycopg.Connection, ids: dict[str, int]
) -> None:
    bounce = sendgrid_event("bounce", "carl@example.com", f"12-{ids['carl']}", type="blocked", reason="452 full")
    body = json.dumps([bounce, bounce, bounce]).encode()

    response = client.post("/webhooks/sendgrid", content=body, headers=sendgrid_headers(body))

    assert response.json() == {"recorded": 1, "duplicates": 2, "ignored": 0}
    assert len(events(db)) == 1
    assert blacklisted(db) == {}


@pytest.mark.parametrize("provider", ["sendgrid", "brevo"])
def test_three_copies_of_one_soft_bounce_do_not_blacklist(
    client: TestClient, db: psycopg.Connection, ids: dict[str, int], provider: str
) -> None:
    posts, path = soft_bounce_copies(provider, ids)
    for body, headers in posts:
        assert client.post(path, content=body, headers=headers).status_code == 200

    assert [row[1] for row in events(db)] == ["soft_bounce"]
    assert blacklisted(db) == {}


@pytest.mark.parametrize("provider", ["sendgrid", "brevo"])
def test_three_distinct_soft_bounces_still_blacklist(
    client: TestClient, db: psycopg.Connection, ids: dict[str, int], provider: str
) -> None:
    for attempt in (1, 2, 3):
        if provider == "sendgrid":
            item = sendgrid_event(
                "bounce", "carl@example.com", f"12-{ids['carl']}", type="blocked", reason=f"452 full ({attempt})"
            )
            body = json.dumps([item]).encode()
            response = client.post("/webhooks/sendgrid", content=body, headers=sendgrid_headers(body))
        else:
            # Brevo gives no event id: the same message bouncing again has another time.
            item = brevo_event(
                "soft_bounce",
                "carl@example.com",
                f"12-{ids['carl']}",
                reason=f"452 full ({attempt})",
                ts_epoch=1764318600123 + attempt * 3_600_000,
            )
            response = client.post("/webhooks/brevo", json=item, headers=brevo_headers())
        assert response.status_code == 200

    assert len(events(db)) == 3
    assert blacklisted(db) == {
        "carl@example.com": ("soft_bounce", f"{provider}: 3 soft bounces, the last: 452 full (3)")
    }


def test_exact_replays_of_postmark_and_brevo_events_are_stored_once(
    client: TestClient, db: psycopg.Connection, ids: dict[str, int]
) -> None:
    bounce = postmark_bounce("SoftBounce", "carl@example.com", f"12-{ids['carl']}")
    batch = [
        brevo_event("delivered", "ana@example.com", f"12-{ids['ana']}"),
        # The same message to another recipient is another event, though Brevo gives both one message-id.
        brevo_event("delivered", "bob@example.com", f"12-{ids['bob']}"),
    ]
    for _ in range(2):
        auth = basic(POSTMARK_USER, POSTMARK_PASSWORD)
        assert client.post("/webhooks/postmark", json=bounce, headers=auth).status_code == 200
        assert client.post("/webhooks/brevo", json=batch, headers=brevo_headers()).status_code == 200

    assert sorted((row[0], row[1], row[2]) for row in events(db)) == [
        ("brevo", "delivered", "ana@example.com"),
        ("brevo", "delivered", "bob@example.com"),
        ("postmark", "soft_bounce", "carl@example.com"),
    ]


def test_a_mailgun_retry_signed_anew_is_stored_once(
    client: TestClient, db: psycopg.Connection, ids: dict[str, int]
) -> None:
    failure = mailgun_failure("carl@example.com", f"12-{ids['carl']}", "temporary", "452 mailbox full")
    # Each retry comes with a fresh timestamp and token, so the token check lets it in.
    answers = [client.post("/webhooks/mailgun", content=mailgun_body(failure)) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert len(events(db)) == 1
    assert blacklisted(db) == {}


def test_a_signed_sendgrid_event_30_days_old_is_refused(
    client: TestClient, db: psycopg.Connection, ids: dict[str, int]
) -> None:
    body = json.dumps(
        [sendgrid_event("bounce", "carl@example.com", f"12-{ids['carl']}", type="blocked", reason="452")]
    ).encode()
    month_ago = str(int(time.time()) - 30 * 86400)

    response = client.post("/webhooks/sendgrid", content=body, headers=sendgrid_headers(body, timestamp=month_ago))

    assert response.status_code == 401
    assert "older than 25 hours" in response.text
    assert nothing_recorded(db)


@pytest.mark.parametrize(("age_s", "status"), [(24 * 3600, 200), (25 * 3600 + 60, 401), (-600, 401), (-60, 200)])
def test_the_sendgrid_signature_window(client: TestClient, db: psycopg.Connection, age_s: int, status: int) -> None:
    """A day back, for SendGrid's own retries; a few minutes ahead, for clocks."""
    body = json.dumps([sendgrid_event("delivered", "ana@example.com", None)]).encode()
    signed_at = str(int(time.time()) - age_s)
    response = client.post("/webhooks/sendgrid", content=body, headers=sendgrid_headers(body, timestamp=signed_at))
    assert response.status_code == status, response.text


def test_concurrent_identical_posts_are_stored_once(
    db: psycopg.Connection, database_url: str, ids: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    bounce = sendgrid_event("bounce", "carl@example.com", f"12-{ids['carl']}", type="blocked", reason="452 full")
    body = json.dumps([bounce]).encode()
    insert = blacklist_sql.insert_delivery_events

    def slow_insert(*args: Any, **kwargs: Any) -> Any:
        # Every request's transaction stays open a while after its INSERT: the copies overlap.
        stored = insert(*args, **kwargs)
        time.sleep(0.2)
        return stored

    monkeypatch.setattr(blacklist_sql, "insert_delivery_events", slow_insert)
    start = threading.Barrier(5)
    answers: list[dict] = []

    def post() -> None:
        with client_for(database_url) as client:
            start.wait(timeout=10)
            response = client.post("/webhooks/sendgrid", content=body, headers=sendgrid_headers(body))
            answers.append({"status": response.status_code, **response.json()})

    threads = [threading.Thread(target=post) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(answer["status"] for answer in answers) == [200] * 5
    assert sum(answer["recorded"] for answer in answers) == 1
    assert len(events(db)) == 1
    assert blacklisted(db) == {}
