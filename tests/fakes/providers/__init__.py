"""Fake providers speaking each real wire format: one module per provider
(tests/fakes/providers/<name>.py, defining `FAKE`, a tests.fakes.providers.base.Fake), found
through the registry: every provider of campaign_pipelines.providers.registry that sends over
the network has its fake under its own name.

`FakeProviders` holds the state they share (accepted messages, calls, scripted faults and
rejections) and answers a request with `handle()`; it knows nothing of transports. Two ways to
reach it:

- `create_app(state)`: one Starlette app with every fake's routes, served on a real socket by
  tests.fakes.server.running_fakes() (tests, benchmark);
- `state.transport()`: an httpx.MockTransport on the same logic, for in-process tests (no socket).

Paths, auth headers, request validation, success bodies, message ids and error bodies follow
/work/shared/reference/providers.md and docs/providers.md; items marked UNCONFIRMED there are
plausible choices, noted in each fake. Handling is cheap and never sleeps unless a delay is
scripted, so a benchmark can drive it.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from campaign_pipelines.providers import registry
from tests.fakes.providers.base import Call, Fake, Handled, Refusal, Reply, SentMessage, json_reply

__all__ = ["DEFAULT_KEYS", "FAKES", "PROVIDERS", "Call", "FakeProviders", "Reply", "SentMessage", "create_app", "urls"]


def _load(name: str) -> Fake:
    fake = importlib.import_module(f"tests.fakes.providers.{name}").FAKE
    if not isinstance(fake, Fake) or fake.name != name:
        raise TypeError(f"tests.fakes.providers.{name}.FAKE must be a Fake named {name!r}")
    return fake


# Every provider that sends over the network, by name.
FAKES: dict[str, Fake] = {name: _load(name) for name, provider in registry.PROVIDERS.items() if not provider.local}
PROVIDERS = tuple(FAKES)
DEFAULT_KEYS = {name: fake.api_key for name, fake in FAKES.items()}


def urls(base: str) -> dict[str, str]:
    """The server URL of each provider when the fakes answer at `base` (as its default_url)."""
    return {name: fake.url(base) for name, fake in FAKES.items()}


@dataclass
class _Fault:
    status: int | None
    retry_after_s: float | None = None
    delay_s: float = 0.0
    reply: Reply | None = None


class FakeProviders:
    """Thread-safe state of the fake providers. Script faults per provider, then inspect."""

    def __init__(
        self,
        api_keys: Mapping[str, str] | None = None,
        *,
        record_messages: bool = True,
        honour_idempotency: bool = True,
    ) -> None:
        """`honour_idempotency=False` makes a strict witness for fault tests: a repeated
        idempotency key is sent again and logged like any call, so a replay shows as a duplicate."""
        self.api_keys = {**DEFAULT_KEYS, **(api_keys or {})}
        self.record_messages = record_messages
        self.honour_idempotency = honour_idempotency
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.reset()

    # -- scripting ---------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._messages: list[SentMessage] = []
            self._calls: list[Call] = []
            self._counts = dict.fromkeys(PROVIDERS, 0)
            self._faults: dict[str, list[_Fault]] = {provider: [] for provider in PROVIDERS}
            # Answers already given, by idempotency key, for the fakes whose provider honours one.
            self.replies: dict[str, Reply] = {}
            self.rejected_recipients: set[str] = set()
            self.rejected_senders: set[str] = set()

    def fail_next(
        self, provider: str, status: int, *, times: int = 1, after: int = 0, retry_after_s: float | None = None
    ) -> None:
        """After `after` normal calls, the next `times` calls to `provider` answer `status` with that
        provider's own error body (429 with its rate-limit headers; `retry_after_s` sets the hint,
        default the provider's usual one where it always sends one, none where it sends one only
        when it has one)."""
        self._script(provider, after, [_Fault(status, retry_after_s) for _ in range(times)])

    def delay_next(self, provider: str, seconds: float, *, times: int = 1, after: int = 0) -> None:
        """The next `times` calls (after `after` normal ones) are processed — accepted, messages
        sent — and answered only after `seconds`: longer than the client's timeout, this is the
        ambiguous case. Through `transport()` the delay is not slept: the call raises
        httpx.ReadTimeout at once."""
        self._script(provider, after, [_Fault(None, delay_s=seconds) for _ in range(times)])

    def answer_next(self, provider: str, reply: Reply) -> None:
        """The next call to `provider` is answered `reply`, whatever it asked (a proxy's page, say)."""
        self._script(provider, 0, [_Fault(None, reply=reply)])

    def reject_recipient(self, email: str) -> None:
        """From now on every provider refuses this address, as its API does for an invalid one."""
        with self._lock:
            self.rejected_recipients.add(email.lower())

    def reject_sender(self, email: str) -> None:
        """From now on every provider refuses this sender (unverified identity / signature)."""
        with self._lock:
            self.rejected_senders.add(email.lower())

    def next_number(self) -> int:
        """A number no other message of these fakes had (for message ids); called under the lock."""
        return next(self._ids)

    def _script(self, provider: str, after: int, faults: list[_Fault]) -> None:
        if provider not in FAKES:
            raise ValueError(f"unknown fake provider {provider!r}")
        with self._lock:
            self._faults[provider].extend([_Fault(None) for _ in range(after)] + faults)

    # -- inspection --------------------------------------------------------------------------

    def messages(self, provider: str | None = None) -> list[SentMessage]:
        with self._lock:
            return [message for message in self._messages if provider in (None, message.provider)]

    def calls(self, provider: str | None = None) -> list[Call]:
        with self._lock:
            return [call for call in self._calls if provider in (None, call.provider)]

    def sent_count(self, provider: str | None = None) -> int:
        with self._lock:
            return sum(self._counts.values()) if provider is None else self._counts[provider]

    # -- serving -----------------------------------------------------------------------------

    def provider_of(self, path: str) -> str | None:
        """The provider whose send endpoint `path` is, or None."""
        return next((name for name, fake in FAKES.items() if fake.route(path) is not None), None)

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """The answer to one request. `headers` must look keys up case-insensitively (httpx and
        Starlette headers do)."""
        provider = self.provider_of(path)
        if provider is None:
            return json_reply(404, {"message": "Not Found"})
        if method != "POST":
            return json_reply(405, {"message": "Method Not Allowed"})
        fake = FAKES[provider]
        route = fake.route(path) or ""
        with self._lock:
            handled = Handled(Reply(500))
            refusal = fake.authenticate(headers, self.api_keys[provider])
            if refusal is not None:
                handled = Handled(refusal)
            else:
                fault = self._faults[provider].pop(0) if self._faults[provider] else None
                try:
                    if fault is not None and fault.reply is not None:
                        handled = Handled(fault.reply)
                    elif fault is not None and fault.status is not None:
                        handled = Handled(fake.fault(fault.status, fault.retry_after_s))
                    else:
                        handled = fake.handle(self, route, headers, body)
                        if fault is not None and fault.delay_s:
                            handled = replace(handled, reply=replace(handled.reply, delay_s=fault.delay_s))
                except Refusal as refused:
                    handled = Handled(refused.reply)
            for message in handled.accepted:
                self._counts[message.provider] += 1
            if self.record_messages:
                self._messages.extend(handled.accepted)
            reply = handled.reply
            self._calls.append(Call(provider, path, reply.status, len(handled.accepted), handled.key, handled.replayed))
            return reply

    def transport(self) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            reply = self.handle(request.method, request.url.path, request.headers, request.read())
            if reply.delay_s:
                raise httpx.ReadTimeout("fake provider: the answer comes after the client's timeout", request=request)
            return httpx.Response(reply.status, headers=reply.headers, content=reply.body)

        return httpx.MockTransport(handler)


def create_app(state: FakeProviders) -> Starlette:
    """One Starlette app answering every fake provider's send endpoints from `state`."""

    async def endpoint(request: Request) -> Response:
        reply = state.handle(request.method, request.url.path, request.headers, await request.body())
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST", "PUT", "DELETE"])])
