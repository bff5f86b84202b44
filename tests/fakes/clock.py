"""A clock whose sleeps advance time at once: pacing and quota days without waiting."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept = 0.0

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self.slept += seconds

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta
