"""The event writer: batches with COPY, keeps events while PostgreSQL is down, skips a row it refuses."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import psycopg
import pytest

from campaign_pipelines.store.tracking import OPEN
from tests.tracking_app.conftest import Campaign, events, stop
from tracking_app.events import EventWriter, Hit
from tracking_app.settings import Settings


def _hit(campaign: Campaign, index: int = 0, *, contact_id: int | None = None) -> Hit:
    contact = campaign.contact_ids[index] if contact_id is None else contact_id
    return (OPEN, campaign.id, contact, None, time.time(), "198.51.100.1", None, b"Mozilla/5.0", None, False)


class FlakyDatabase:
    """Connects only once `up` is set; until then, connecting fails as with PostgreSQL down."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.up = False
        self.attempts = 0

    def connect(self) -> psycopg.Connection:
        self.attempts += 1
        if not self.up:
            raise psycopg.OperationalError("connection refused (simulated)")
        return psycopg.connect(self.url, autocommit=True)


def _wait(condition, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_events_are_kept_while_the_database_is_down_and_written_when_it_is_back(
    settings: Settings, campaign: Campaign, db, caplog: pytest.LogCaptureFixture
) -> None:
    database = FlakyDatabase(settings.database_url)
    writer = EventWriter(replace(settings, flush_interval_s=0.02), connect=database.connect)
    writer.start()
    try:
        for _ in range(100):
            writer.record(_hit(campaign))
        _wait(lambda: database.attempts >= 2)
        assert writer.buffered == 100 and events(db) == []

        database.up = True
        _wait(lambda: writer.written == 100)
    finally:
        writer.close()

    assert len(events(db)) == 100
    assert "cannot write to PostgreSQL (connection refused (simulated)); keeping 100 events in memory" in caplog.text
    assert "PostgreSQL is back" in caplog.text


def test_the_buffer_is_bounded_and_what_it_drops_is_counted_and_logged(
    settings: Settings, campaign: Campaign, caplog: pytest.LogCaptureFixture
) -> None:
    database = FlakyDatabase(settings.database_url)
    writer = EventWriter(replace(settings, max_buffered=10, shutdown_retry_s=0.1), connect=database.connect)
    writer.start()
    for _ in range(15):
        writer.record(_hit(campaign))
    writer.close()

    assert writer.dropped == 5
    assert "5 events dropped" in caplog.text
    assert "PostgreSQL still unreachable at shutdown after 0 s" in caplog.text
    assert "10 events lost" in caplog.text


def test_a_row_postgresql_refuses_does_not_hold_back_the_others(
    settings: Settings, campaign: Campaign, db, caplog: pytest.LogCaptureFixture
) -> None:
    writer = EventWriter(replace(settings, flush_interval_s=60))
    writer.start()
    writer.record(_hit(campaign, 0))
    writer.record(_hit(campaign, contact_id=2**63))  # beyond bigint
    writer.record(_hit(campaign, 1))
    writer.close()

    assert [event["contact_id"] for event in events(db)] == campaign.contact_ids[:2]
    assert (writer.written, writer.rejected) == (2, 1)
    assert caplog.records[-1].levelno == logging.ERROR
    assert f"refused the event of contact {2**63} in campaign {campaign.id}" in caplog.text


def test_with_postgresql_down_hits_are_still_answered_and_unsubscribes_ask_to_retry(
    make_client, campaign: Campaign, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(database_url="postgresql://nobody@127.0.0.1:1/none", shutdown_retry_s=0.1)

    assert client.get(f"/o/{campaign.token()}.gif").status_code == 200  # kept in memory
    assert client.get(f"/c/{campaign.token()}/0").status_code == 503  # its link table is unknown
    response = client.post(f"/u/{campaign.token()}", headers={"Accept-Language": "en"})
    assert response.status_code == 503
    assert "Please try again in a few minutes" in response.text
    stop(client)

    assert "PostgreSQL still unreachable at shutdown" in caplog.text
    assert "1 events lost" in caplog.text
