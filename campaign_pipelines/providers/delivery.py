"""`deliver()`: send messages through a provider with the retry policy of the send step.

The send step calls it with the messages of a claimed batch (or one message when a line is paced)
and records each returned Delivery. The policy, per call:

- 429: wait what the provider says (no hint: backoff) and retry; a wait over `max_wait_s` is not
  slept here: RateLimited goes up so the caller saves its state and comes back later.
- 5xx, and connection failures before the request left (Unreachable): exponential backoff with
  full jitter, at most `max_attempts` tries.
- Ambiguous (the request left, no answer came): retried at most `AMBIGUOUS_RETRIES` time(s), and
  only when the provider documents an idempotency key (`Provider.idempotent`: a repeat within
  the key's lifetime is ignored) and one was given; otherwise raised, and the caller marks those
  recipients `unknown`, since a retry could send them twice. One retry, not `max_attempts`: a
  provider that does not deduplicate as documented then sends a recipient at most twice, and a
  provider that does so gives the answer the first attempt lost.
- AuthFailed, QuotaExhausted, Rejected: raised at once; retrying the same call cannot help.
- BatchRefused (a bad recipient or an oversize payload refused the whole batch, nothing sent): the
  call is split in halves, recursively, until each bad message gets its own verdict.

When several calls are needed and one fails, the exception's `done` lists the verdicts of the
calls that finished, so the caller records them and treats only the rest as failed or unknown.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence

from campaign_pipelines.providers.base import (
    Ambiguous,
    BatchRefused,
    Delivery,
    OutgoingMessage,
    Provider,
    ProviderError,
    RateLimited,
    Sender,
    ServerError,
    Unreachable,
)
from campaign_pipelines.providers.client import ProviderClient

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
MAX_WAIT_S = 60.0
# Retries of a call whose answer was lost, with the same idempotency key (see the module doc).
AMBIGUOUS_RETRIES = 1

OnWait = Callable[[float, ProviderError], None]


def deliver(
    client: ProviderClient,
    provider: Provider,
    *,
    url: str,
    api_key: str,
    sender: Sender,
    messages: Sequence[OutgoingMessage],
    idempotency_key: str | None = None,
    max_attempts: int = 5,
    max_wait_s: float = MAX_WAIT_S,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
    on_wait: OnWait | None = None,
) -> list[Delivery]:
    """Send `messages` in as few calls as the provider allows; one Delivery per message, in the
    order of `messages`.

    `idempotency_key` (a UUID) is used as is when one call suffices; calls beyond one, and halves
    of a refused batch, use keys derived from it, so a repeat of the same deliver() reuses them.
    `on_wait(seconds, error)` is told before each wait, for the caller's log.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    key = idempotency_key if provider.idempotent else None
    if key is not None:
        uuid.UUID(key)  # Providers' keys are UUIDs; fail here rather than at the provider.
    retry = _Retry(client, provider, url, api_key, sender, max_attempts, max_wait_s, sleep, rng, on_wait)
    calls = provider.split(messages)
    done: list[Delivery] = []
    for index, call in enumerate(calls):
        call_key = key if key is None or len(calls) == 1 else _derive(key, str(index))
        try:
            done += retry.call(call, call_key)
        except ProviderError as error:
            error.done = done + error.done
            raise
    if len(calls) > 1:
        # split() may send a message alone or move a repeated recipient to a later call.
        position = {message.send_id: index for index, message in enumerate(messages)}
        done.sort(key=lambda delivery: position[delivery.send_id])
    return done


def backoff_s(attempt: int, rng: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))) for the attempt that failed."""
    return rng() * min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1))


def _derive(key: str, suffix: str) -> str:
    return str(uuid.uuid5(uuid.UUID(key), suffix))


class _Retry:
    def __init__(
        self,
        client: ProviderClient,
        provider: Provider,
        url: str,
        api_key: str,
        sender: Sender,
        max_attempts: int,
        max_wait_s: float,
        sleep: Callable[[float], None],
        rng: Callable[[], float],
        on_wait: OnWait | None,
    ) -> None:
        self.client = client
        self.provider = provider
        self.url = url
        self.api_key = api_key
        self.sender = sender
        self.max_attempts = max_attempts
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self.rng = rng
        self.on_wait = on_wait

    def call(self, messages: list[OutgoingMessage], key: str | None) -> list[Delivery]:
        attempt = 0
        ambiguous = 0
        while True:
            attempt += 1
            try:
                return self.provider.send(
                    self.client,
                    url=self.url,
                    api_key=self.api_key,
                    sender=self.sender,
                    messages=messages,
                    idempotency_key=key,
                )
            except BatchRefused:
                if len(messages) < 2:
                    raise
                return self._halves(messages, key)
            except RateLimited as error:
                wait = error.retry_after_s if error.retry_after_s is not None else backoff_s(attempt, self.rng)
                if wait > self.max_wait_s or attempt >= self.max_attempts:
                    raise
                self._wait(wait, error)
            except ServerError as error:
                if attempt >= self.max_attempts:
                    raise
                self._wait(max(backoff_s(attempt, self.rng), min(error.retry_after_s or 0.0, self.max_wait_s)), error)
            except Unreachable as error:
                if attempt >= self.max_attempts:
                    raise
                self._wait(backoff_s(attempt, self.rng), error)
            except Ambiguous as error:
                ambiguous += 1
                if key is None or ambiguous > AMBIGUOUS_RETRIES or attempt >= self.max_attempts:
                    raise
                self._wait(backoff_s(attempt, self.rng), error)

    def _halves(self, messages: list[OutgoingMessage], key: str | None) -> list[Delivery]:
        middle = len(messages) // 2
        done: list[Delivery] = []
        for suffix, half in (("a", messages[:middle]), ("b", messages[middle:])):
            try:
                done += self.call(half, None if key is None else _derive(key, suffix))
            except ProviderError as error:
                error.done = done + error.done
                raise
        return done

    def _wait(self, seconds: float, error: ProviderError) -> None:
        if self.on_wait is not None:
            self.on_wait(seconds, error)
        self.sleep(seconds)
