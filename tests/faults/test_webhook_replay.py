"""Provider webhooks replayed against the tracking app under real uvicorn (a thread, a free port):
signed SendGrid batches and Brevo events POSTed again, one after the other and all at once, are
stored once and blacklist nothing more; a signature a month old is refused. Counts come from
the database."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from tests.fakes.providers.brevo import event as brevo_event
from tests.fakes.providers.brevo import headers as brevo_headers
from tests.fakes.providers.sendgrid import event as sendgrid_event
from tests.fakes.providers.sendgrid import headers as sendgrid_headers
from tests.fakes.server import serving
from tests.providers.webhook_support import ENVIRONMENT
from tests.tracking_app.conftest import SECRET
from tracking_app.app import create_app
from tracking_app.settings import Settings
from tracking_app.webhooks import WebhookSettings

pytestmark = pytest.mark.faults

CONCURRENT_COPIES = 8


@pytest.fixture
def base_url(database_url: str) -> Iterator[str]:
    """The whole tracking app, lifespan included, with the webhooks' secrets of the tests."""
    app = create_app(Settings(database_url=database_url, secret=SECRET))
    app.state.webhook_settings = WebhookSettings.from_environment(ENVIRONMENT, database_url=database_url)
    with serving(app, name="tracking-app", lifespan="on") as url:
        yield url


def stored(db: psycopg.Connection) -> dict[tuple[str, str, str], int]:
    """(provider, event, email) → rows."""
    rows = db.execute("SELECT provider, event, email, count(*) FROM delivery_events GROUP BY 1, 2, 3")
    return {(provider, event, email): count for provider, event, email, count in rows}


def blacklisted(db: psycopg.Connection) -> dict[str, str]:
    return dict(db.execute("SELECT email, source FROM blacklist").fetchall())


def test_replayed_webhooks_are_stored_once(base_url: str, db: psycopg.Connection) -> None:
    batch = [
        sendgrid_event("delivered", "ana@example.com", None),
        sendgrid_event("bounce", "carl@example.com", None, type="blocked", reason="452 mailbox full"),
    ]
    body = json.dumps(batch).encode()
    headers = sendgrid_headers(body)
    brevo_bounce = brevo_event("soft_bounce", "dan@example.com", None, reason="452 mailbox full")

    with httpx.Client(base_url=base_url, timeout=10) as client:
        # The same signed request three times, as SendGrid retries it and as anyone may copy it.
        replays = [client.post("/webhooks/sendgrid", content=body, headers=headers) for _ in range(3)]
        copies = [client.post("/webhooks/brevo", json=brevo_bounce, headers=brevo_headers()) for _ in range(3)]

        def post_at_once(_: int) -> httpx.Response:
            return client.post("/webhooks/sendgrid", content=body, headers=sendgrid_headers(body))

        with ThreadPoolExecutor(CONCURRENT_COPIES) as pool:
            at_once = list(pool.map(post_at_once, range(CONCURRENT_COPIES)))

        month_old = sendgrid_headers(body, timestamp=str(int(time.time()) - 30 * 86400))
        stale = client.post("/webhooks/sendgrid", content=body, headers=month_old)

        # Three distinct soft bounces of another address still blacklist it.
        for hour in (1, 2, 3):
            distinct = brevo_event("soft_bounce", "eve@example.com", None, ts_epoch=1764318600123 + hour * 3_600_000)
            assert client.post("/webhooks/brevo", json=distinct, headers=brevo_headers()).status_code == 200

    assert [response.status_code for response in replays + copies + at_once] == [200] * (6 + CONCURRENT_COPIES)
    assert [response.json()["recorded"] for response in replays] == [2, 0, 0]
    assert [response.json()["recorded"] for response in copies] == [1, 0, 0]
    assert sum(response.json()["recorded"] for response in at_once) == 0
    assert stale.status_code == 401
    assert stored(db) == {
        ("sendgrid", "delivered", "ana@example.com"): 1,
        ("sendgrid", "soft_bounce", "carl@example.com"): 1,
        ("brevo", "soft_bounce", "dan@example.com"): 1,
        ("brevo", "soft_bounce", "eve@example.com"): 3,
    }
    assert blacklisted(db) == {"eve@example.com": "soft_bounce"}


def test_identical_posts_at_once_are_stored_once(base_url: str, db: psycopg.Connection) -> None:
    body = json.dumps([sendgrid_event("bounce", "carl@example.com", None, type="blocked", reason="452")]).encode()
    headers = sendgrid_headers(body)
    start = threading.Barrier(CONCURRENT_COPIES)

    def post(_: int) -> httpx.Response:
        # A client each, all released together: the requests reach PostgreSQL side by side.
        with httpx.Client(base_url=base_url, timeout=10) as client:
            start.wait(timeout=10)
            return client.post("/webhooks/sendgrid", content=body, headers=headers)

    with ThreadPoolExecutor(CONCURRENT_COPIES) as pool:
        answers = list(pool.map(post, range(CONCURRENT_COPIES)))

    assert [answer.status_code for answer in answers] == [200] * CONCURRENT_COPIES
    assert sorted(answer.json()["recorded"] for answer in answers) == [0] * (CONCURRENT_COPIES - 1) + [1]
    assert stored(db) == {("sendgrid", "soft_bounce", "carl@example.com"): 1}
    assert blacklisted(db) == {}
