"""tracking_app.webhooks over HTTP, what every provider's route shares: matching events to sends,
bad bodies, configuration, limits and replays, with the providers' real payloads and signatures
made by their fakes (tests/fakes/providers), on the real database. Each provider's own corners are
in tests/providers/test_<name>.py.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from campaign_pipelines.store import blacklist as blacklist_sql
from tests.fakes.providers.base import basic_auth as basic
from tests.fakes.providers.brevo import TOKEN as BREVO_TOKEN
from tests.fakes.providers.brevo import event as brevo_event
from tests.fakes.providers.brevo import headers as brevo_headers
from tests.fakes.providers.mailgun import failure as mailgun_failure
from tests.fakes.providers.mailgun import sign as mailgun_body
from tests.fakes.providers.postmark import PASSWORD as POSTMARK_PASSWORD
from tests.fakes.providers.postmark import USER as POSTMARK_USER
from tests.fakes.providers.postmark import bounce as postmark_bounce
from tests.fakes.providers.sendgrid import event as sendgrid_event
from tests.fakes.providers.sendgrid import headers as sendgrid_headers
from tests.providers.webhook_support import (
    ENVIRONMENT,
    add_contacts,
    blacklisted,
    client_for,
    events,
    nothing_recorded,
)
from tracking_app import webhooks


@pytest.fixture
def ids(db: psycopg.Connection) -> dict[str, int]:
    return add_contacts(db)


@pytest.fixture
def client(db: psycopg.Connection, database_url: str) -> Iterator[TestClient]:
    """A client of the webhook routes, with every fake provider's secrets."""
    with client_for(database_url) as client:
        yield client


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
