"""The webhook half of the contract every provider of the registry keeps, through the tracking app's
routes on the test database, with requests made by its fake as the provider makes them."""

from __future__ import annotations

import json
import logging

import psycopg
import pytest
from starlette.testclient import TestClient

from campaign_pipelines.providers import registry
from campaign_pipelines.providers.webhook import EVENTS
from tests.fakes.providers import FAKES
from tests.providers.webhook_support import ENVIRONMENT, blacklisted, client_for, events, nothing_recorded
from tracking_app import webhooks

WEBHOOKS = registry.webhooks()
# Our kind → what the blacklist says of it (delivered and soft bounces blacklist nothing at once).
BLACKLISTS = {"hard_bounce": "hard_bounce", "complaint": "complaint", "unsubscribe": "unsubscribe"}


def _post(client: TestClient, name: str, body: bytes, headers: dict[str, str]):
    return client.post(f"/webhooks/{name}", content=body, headers=headers)


def _signed(name: str, kind: str, email: str, send_id: str | None, **options) -> tuple[bytes, dict[str, str]]:
    fake = FAKES[name]
    return fake.webhook_request(json.dumps(fake.webhook_event(kind, email, send_id)).encode(), **options)


def test_every_webhook_is_served_with_its_secrets_named() -> None:
    assert set(webhooks.PROVIDERS) == set(WEBHOOKS)
    for name, webhook in WEBHOOKS.items():
        assert set(webhook.secrets) == set(FAKES[name].webhook_environment()), name
        assert webhook.max_age_s is None or 0 < webhook.max_age_s <= 25 * 3600


@pytest.mark.parametrize("kind", EVENTS)
@pytest.mark.parametrize("name", WEBHOOKS)
def test_a_signed_event_is_stored_in_our_words_and_matched_to_its_send(
    client: TestClient, db: psycopg.Connection, ids: dict[str, int], name: str, kind: str
) -> None:
    response = _post(client, name, *_signed(name, kind, "bob@example.com", f"12-{ids['bob']}"))

    assert response.status_code == 200, response.text
    assert response.json()["recorded"] == 1
    [(provider, event, email, campaign_id, contact_id, _)] = events(db)
    assert (provider, event, email, campaign_id, contact_id) == (name, kind, "bob@example.com", 12, ids["bob"])
    expected = {"bob@example.com": BLACKLISTS[kind]} if kind in BLACKLISTS else {}
    assert {email: source for email, (source, _) in blacklisted(db).items()} == expected


@pytest.mark.parametrize("auth", ["wrong", "missing"])
@pytest.mark.parametrize("name", WEBHOOKS)
def test_a_bad_or_missing_signature_is_401_and_stores_nothing(
    client: TestClient, db: psycopg.Connection, name: str, auth: str
) -> None:
    response = _post(client, name, *_signed(name, "hard_bounce", "bob@example.com", "12-2", auth=auth))

    assert response.status_code == 401, response.text
    assert nothing_recorded(db)
    # The same event, rightly signed, is accepted: the refusal was the signature's.
    assert _post(client, name, *_signed(name, "hard_bounce", "bob@example.com", "12-2")).status_code == 200


@pytest.mark.parametrize("name", WEBHOOKS)
def test_a_replay_is_refused_outside_the_window_and_stored_once_within_it(
    client: TestClient, db: psycopg.Connection, name: str
) -> None:
    window = WEBHOOKS[name].max_age_s
    if window is not None:
        late = _signed(name, "hard_bounce", "bob@example.com", "12-2", age_s=window + 120)
        assert _post(client, name, *late).status_code == 401
        assert nothing_recorded(db)
    body, headers = _signed(name, "soft_bounce", "carl@example.com", "12-3")

    first, again = _post(client, name, body, headers), _post(client, name, body, headers)

    assert first.status_code == 200
    # A one-time token already spent (406), or acknowledged as a duplicate (200): never stored twice.
    assert again.status_code == 406 or again.json() == {"recorded": 0, "duplicates": 1, "ignored": 0}
    assert len(events(db)) == 1


@pytest.mark.parametrize("name", WEBHOOKS)
def test_a_body_that_is_not_json_is_400_and_stores_nothing(
    client: TestClient, db: psycopg.Connection, name: str
) -> None:
    response = _post(client, name, *FAKES[name].webhook_request(b"{not json"))

    assert response.status_code == 400 and response.text.startswith("malformed payload")
    assert nothing_recorded(db)


@pytest.mark.parametrize("name", WEBHOOKS)
def test_an_oversized_body_is_413_and_stores_nothing(
    client: TestClient, db: psycopg.Connection, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body, headers = _signed(name, "hard_bounce", "bob@example.com", "12-2")
    monkeypatch.setattr(webhooks, "MAX_BODY_BYTES", len(body) - 1)

    assert _post(client, name, body, headers).status_code == 413
    assert nothing_recorded(db)


@pytest.mark.parametrize("name", WEBHOOKS)
def test_a_provider_without_its_secrets_is_503_and_logs_which(
    db: psycopg.Connection, database_url: str, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = FAKES[name].webhook_environment()
    missing = {key: value for key, value in ENVIRONMENT.items() if key not in secrets}
    with caplog.at_level(logging.ERROR, logger="tracking_app.webhooks"), client_for(database_url, missing) as client:
        response = _post(client, name, *_signed(name, "hard_bounce", "bob@example.com", "12-2"))

    assert response.status_code == 503
    assert response.text == f"{name} webhooks are not configured on this server"
    [logged] = [record.getMessage() for record in caplog.records]
    assert all(variable in logged for variable in secrets)
    assert all(value not in logged for value in secrets.values())
    assert nothing_recorded(db)
