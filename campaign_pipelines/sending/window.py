"""How many provider calls a line keeps in flight at once (sending.line).

By Little's law, a line that takes P seconds to prepare a call (claim, render, note it) and
whose calls take L seconds to be answered needs ceil(L / P) calls in flight to never wait for
an answer; with fewer it is bound by latency, with more it gains nothing and exposes more
contacts to `unknown` should it crash (every call in flight may have been sent). A call's own
interpreter time C (building its body, reading its verdicts: its thread's CPU time) is taken
from the same interpreter as the loop's, so the line's work per call is P + C and the window
ceil(L / (P + C)): against a provider answering at once, one call at a time. The window is
that number, between 1 and the provider's documented concurrency, from moving averages of P and C and
the shortest of the last answer times: the calls' threads share the interpreter with the loop, so
an answer's time also holds its wait for the loop's rendering, which more calls would not shorten
(with the average, the window fed its own growth: measured 5 calls where 2 sufficed). A rate limit
(429) halves that ceiling for the rest of the run. A call still unanswered counts only once it is
answered: one stuck call does not widen the window.
"""

from __future__ import annotations

import math
import threading
from collections import deque

from campaign_pipelines.providers import ProviderError, RateLimited

# Weight of the newest measurement in the moving average of preparation times.
SMOOTHING = 0.3
# Answer times kept: the shortest of these is the calls' latency.
ANSWERS_KEPT = 16


class CallWindow:
    def __init__(self, ceiling: int) -> None:
        if ceiling < 1:
            raise ValueError(f"a line needs room for at least one call in flight, not {ceiling}")
        self._ceiling = ceiling
        self._prepare_s: float | None = None
        self._call_cpu_s = 0.0
        self._answers: deque[float] = deque(maxlen=ANSWERS_KEPT)
        # Rate limits are seen by the threads making the calls.
        self._lock = threading.Lock()

    @property
    def ceiling(self) -> int:
        return self._ceiling

    def size(self) -> int:
        """Calls the line may have in flight now."""
        with self._lock:
            if self._prepare_s is None or not self._answers:
                return 1
            work = self._prepare_s + self._call_cpu_s
            if work <= 0:
                return self._ceiling
            return max(1, min(self._ceiling, math.ceil(min(self._answers) / work)))

    def prepared(self, seconds: float) -> None:
        """The line spent `seconds` of its own work on the call it is about to make."""
        with self._lock:
            self._prepare_s = _average(self._prepare_s, seconds)

    def answered(self, seconds: float, cpu_s: float = 0.0) -> None:
        """A call was answered (or failed) `seconds` after it left, its thread having used `cpu_s`
        of interpreter time on it."""
        with self._lock:
            self._answers.append(seconds)
            self._call_cpu_s = _average(self._call_cpu_s if len(self._answers) > 1 else None, cpu_s)

    def provider_waits(self, seconds: float, error: ProviderError) -> None:
        """deliver()'s `on_wait`: a rate limit narrows the window."""
        if isinstance(error, RateLimited):
            self.rate_limited()

    def rate_limited(self) -> None:
        """The provider answered 429: fewer calls at once from now on."""
        with self._lock:
            self._ceiling = max(1, self._ceiling // 2)


def _average(mean: float | None, value: float) -> float:
    return value if mean is None else mean + SMOOTHING * (value - mean)
