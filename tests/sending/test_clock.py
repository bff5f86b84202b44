"""The real clock of the send loop: aware UTC time, and sleeps that last what they are asked."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from campaign_pipelines.sending.clock import Clock


def test_now_is_the_current_time_in_utc() -> None:
    before = datetime.now(UTC)
    now = Clock().now()

    assert now.tzinfo is UTC
    assert before <= now <= datetime.now(UTC)


def test_sleep_waits_at_least_the_seconds_asked() -> None:
    started = time.monotonic()
    Clock().sleep(0.05)
    assert time.monotonic() - started >= 0.05
