"""Provider webhooks: `POST /webhooks/<provider>` for every provider of the registry that has a
webhook (campaign_pipelines.providers.registry), the Starlette `routes` of this module.

Only what every provider shares is here: the secrets read from the environment, the size limit,
and the recording. Each request is handed to its provider's `Webhook.receive`, which
authenticates it and reads its events; then the events and their blacklist effects are recorded
in one transaction (campaign_pipelines.blacklist). Answers:

- 200: recorded; events we do not keep (opens, clicks, deferrals, …) are ignored, still 200; an
  event already recorded (the provider's retry, a replay) is a duplicate, not recorded again but
  still 200, so the provider stops retrying it;
- 400: the body is not what the provider sends; nothing recorded;
- 401: bad signature or credentials, or a signature out of its provider's window; nothing recorded;
- 406: a one-time token already used (a replay; a provider that signs with tokens does not retry it);
- 413: a body over MAX_BODY_BYTES;
- 503: the provider's secret is not configured here (logged as an error): the providers retry
  on 503, so no event is lost while someone sets it.

Configuration comes from the environment at the first request (WebhookSettings.from_environment),
unless the app sets `app.state.webhook_settings` itself, as the tests do.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from campaign_pipelines import blacklist, settings
from campaign_pipelines.errors import ValidationError
from campaign_pipelines.providers import registry
from campaign_pipelines.providers.webhook import MalformedPayload, Parsed, Refused, Webhook
from campaign_pipelines.store import blacklist as blacklist_sql

__all__ = ["MAX_BODY_BYTES", "WebhookSettings", "routes"]

log = logging.getLogger(__name__)

# The providers with webhooks, each served at /webhooks/<name>.
PROVIDERS = tuple(registry.webhooks())
# Providers' batches of events stay far below this; anything beyond is not a provider.
MAX_BODY_BYTES = 10 * 1024 * 1024
# Each request records through its own short connection; at most this many at once per process,
# so a burst of webhooks cannot take every PostgreSQL connection (the others wait their turn).
MAX_CONCURRENT_RECORDS = 8
CONNECT_TIMEOUT_S = 5
# One-time tokens are kept this long, then forgotten (checked at most every TOKEN_PURGE_EVERY_S per
# process): a token is signed with its timestamp, so once that is older than its provider's
# window (far less than this) the request is refused on its timestamp alone.
TOKEN_RETENTION_S = 3600.0
TOKEN_PURGE_EVERY_S = 600.0

# Every provider's webhooks depend on this one.
_ALL = "*"


@dataclass(frozen=True)
class WebhookSettings:
    """The secrets each provider's webhooks are checked with, and where events are recorded.

    `secrets` holds, by provider, what its Webhook.configure made of its variables; a provider
    not in it is not served (503), and `problems` says why, by provider (or "*" for all).
    """

    connect: Callable[[], psycopg.Connection]
    secrets: Mapping[str, Any] = field(default_factory=dict)
    soft_bounce_limit: int = blacklist.DEFAULT_SOFT_BOUNCE_LIMIT
    problems: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] = os.environ, *, database_url: str | None = None
    ) -> WebhookSettings:
        problems: dict[str, str] = {}
        secrets: dict[str, Any] = {}
        for provider, webhook in registry.webhooks().items():
            values = {name: environ.get(name, "").strip() for name in webhook.secrets}
            missing = [name for name, value in values.items() if not value]
            if missing:
                problems[provider] = f"{' and '.join(missing)} not set"
                continue
            try:
                secrets[provider] = webhook.configure(values)
            except ValueError as error:
                problems[provider] = str(error)
        try:
            limit = blacklist.soft_bounce_limit(environ)
        except ValidationError as error:
            limit = blacklist.DEFAULT_SOFT_BOUNCE_LIMIT
            problems[_ALL] = " ".join(str(error).split())
        url = database_url or environ.get("DATABASE_URL") or settings.database_url()
        return cls(
            connect=lambda: psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S),
            secrets=secrets,
            soft_bounce_limit=limit,
            problems=problems,
        )

    def problem(self, provider: str) -> str | None:
        """Why this provider's webhooks cannot be served, or None."""
        if _ALL in self.problems:
            return self.problems[_ALL]
        if provider in self.problems:
            return self.problems[provider]
        return None if provider in self.secrets else "its secrets are not configured"


class _TooLarge(Exception):
    pass


async def _settings(request: Request) -> WebhookSettings:
    config = getattr(request.app.state, "webhook_settings", None)
    if config is None:
        # Read once per process; without DATABASE_URL this may start the embedded PostgreSQL.
        config = await anyio.to_thread.run_sync(WebhookSettings.from_environment)
        request.app.state.webhook_settings = config
    return config


def _limiter(request: Request) -> anyio.CapacityLimiter:
    # Made inside the app's event loop, on its first use.
    limiter = getattr(request.app.state, "webhook_limiter", None)
    if limiter is None:
        limiter = request.app.state.webhook_limiter = anyio.CapacityLimiter(MAX_CONCURRENT_RECORDS)
    return limiter


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _record(
    config: WebhookSettings, parsed: Parsed, token: str | None, purge_tokens: bool
) -> blacklist.Recorded | None:
    """The token spent, the events and their blacklist effects, all in one transaction; None for a replay."""
    with config.connect() as conn:
        with conn.transaction():
            if token is not None and not blacklist_sql.claim_webhook_token(conn, token):
                return None
            recorded = blacklist.record_delivery_events(conn, parsed.events, soft_bounce_limit=config.soft_bounce_limit)
        if purge_tokens:
            blacklist_sql.forget_webhook_tokens(conn, TOKEN_RETENTION_S)
        return recorded


def _purge_due(request: Request, token: str | None) -> bool:
    if token is None:
        return False
    now = time.monotonic()
    last = getattr(request.app.state, "webhook_tokens_purged_at", None)
    if last is not None and now - last < TOKEN_PURGE_EVERY_S:
        return False
    request.app.state.webhook_tokens_purged_at = now
    return True


def _who(request: Request) -> str:
    return request.client.host if request.client else "an unknown client"


async def _receive(request: Request, provider: str, webhook: Webhook) -> Response:
    config = await _settings(request)
    problem = config.problem(provider)
    if problem is not None:
        log.error("webhook from %s answered 503, %s webhooks are not configured: %s", provider, provider, problem)
        return PlainTextResponse(f"{provider} webhooks are not configured on this server", status_code=503)
    try:
        body = await _read_body(request)
    except _TooLarge:
        log.warning(
            "webhook from %s refused with 413: body over %d bytes, from %s", provider, MAX_BODY_BYTES, _who(request)
        )
        return PlainTextResponse("body too large", status_code=413)
    try:
        # Off the event loop: a big batch takes a while to verify and parse, and tracking hits must not wait.
        parsed = await anyio.to_thread.run_sync(
            webhook.receive, config.secrets[provider], request.headers, body, datetime.now(UTC)
        )
    except Refused as refusal:
        log.warning(
            "webhook from %s refused with %d: %s, from %s", provider, refusal.status, refusal.message, _who(request)
        )
        return PlainTextResponse(refusal.message, status_code=refusal.status)
    except MalformedPayload as error:
        log.warning("webhook from %s refused with 400: %s", provider, error)
        return PlainTextResponse(f"malformed payload: {error}", status_code=400)
    token = parsed.token
    if not parsed.events and token is None:
        return JSONResponse({"recorded": 0, "duplicates": 0, "ignored": parsed.ignored})
    recorded = await anyio.to_thread.run_sync(
        _record, config, parsed, token, _purge_due(request, token), limiter=_limiter(request)
    )
    if recorded is None:
        log.warning("webhook from %s refused with 406: token already used (a replay), from %s", provider, _who(request))
        return PlainTextResponse("this webhook token was already used", status_code=406)
    kinds = Counter(event.event for event in parsed.events)
    log.info(
        "webhook from %s: %d event(s) (%s): %d recorded, %d already recorded, %d matched to a send, %d ignored",
        provider,
        len(parsed.events),
        ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "none",
        recorded.events,
        recorded.duplicates,
        recorded.matched,
        parsed.ignored,
    )
    for email, source in recorded.blacklisted:
        log.info("blacklisted %s (%s reported by %s)", email, source, provider)
    return JSONResponse({"recorded": recorded.events, "duplicates": recorded.duplicates, "ignored": parsed.ignored})


def _endpoint(provider: str, webhook: Webhook) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await _receive(request, provider, webhook)

    endpoint.__name__ = f"{provider}_webhook"
    return endpoint


routes: list[Route] = [
    Route(f"/webhooks/{provider}", _endpoint(provider, webhook), methods=["POST"], name=f"{provider}_webhook")
    for provider, webhook in registry.webhooks().items()
]
