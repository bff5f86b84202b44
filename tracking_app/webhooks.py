"""Provider webhooks: `POST /webhooks/brevo|sendgrid|mailgun|postmark`, the Starlette `routes` of this module.

Each request is authenticated (webhooks_auth), its body read as our delivery events
(webhooks_payloads), then the events and their blacklist effects are recorded in one
transaction (campaign_pipelines.blacklist). Answers:

- 200: recorded; events we do not keep (opens, clicks, deferrals, …) are ignored, still 200; an
  event already recorded (the provider's retry, a replay) is a duplicate, not recorded again but
  still 200, so the provider stops retrying it;
- 400: the body is not what the provider sends; nothing recorded;
- 401: bad signature or credentials, or a signature out of its provider's window (SendGrid: older
  than 25 hours, Mailgun: 5 minutes; either more than 5 minutes ahead); nothing recorded;
- 406: a Mailgun token already used (a replay); Mailgun never retries a 406;
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

import anyio.to_thread
import psycopg
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from campaign_pipelines import blacklist, settings
from campaign_pipelines.errors import ValidationError
from campaign_pipelines.store import blacklist as blacklist_sql
from tracking_app import webhooks_auth, webhooks_payloads
from tracking_app.webhooks_payloads import MalformedPayload, Parsed

__all__ = ["MAX_BODY_BYTES", "WebhookSettings", "routes"]

log = logging.getLogger(__name__)

PROVIDERS = ("brevo", "sendgrid", "mailgun", "postmark")
# SendGrid's batches are the largest bodies; anything far beyond is not a provider.
MAX_BODY_BYTES = 10 * 1024 * 1024
# Each request records through its own short connection; at most this many at once per process,
# so a burst of webhooks cannot take every PostgreSQL connection (the others wait their turn).
MAX_CONCURRENT_RECORDS = 8
CONNECT_TIMEOUT_S = 5
# Mailgun tokens are kept this long, then forgotten (checked at most every TOKEN_PURGE_EVERY_S per
# process): a token is signed with its timestamp, so once that is older than the 5-minute
# window the request is refused on its timestamp alone.
TOKEN_RETENTION_S = 3600.0
TOKEN_PURGE_EVERY_S = 600.0

BREVO_TOKEN_ENV = "BREVO_WEBHOOK_TOKEN"
SENDGRID_KEY_ENV = "SENDGRID_WEBHOOK_PUBLIC_KEY"
MAILGUN_KEY_ENV = "MAILGUN_WEBHOOK_SIGNING_KEY"
POSTMARK_USER_ENV = "POSTMARK_WEBHOOK_USER"
POSTMARK_PASSWORD_ENV = "POSTMARK_WEBHOOK_PASSWORD"
# Every provider's webhooks depend on this one.
_ALL = "*"


@dataclass(frozen=True)
class WebhookSettings:
    """The secrets each provider's webhooks are checked with, and where events are recorded.

    A provider whose secret is None is not served (503). `problems` holds, by provider (or
    "*" for all), why a configured value cannot be used.
    """

    connect: Callable[[], psycopg.Connection]
    brevo_token: str | None = None
    sendgrid_public_key: ec.EllipticCurvePublicKey | None = None
    mailgun_signing_key: bytes | None = None
    postmark_user: str | None = None
    postmark_password: str | None = None
    soft_bounce_limit: int = blacklist.DEFAULT_SOFT_BOUNCE_LIMIT
    problems: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] = os.environ, *, database_url: str | None = None
    ) -> WebhookSettings:
        problems: dict[str, str] = {}

        def secret(name: str) -> str | None:
            return environ.get(name, "").strip() or None

        sendgrid_key = None
        if (text := secret(SENDGRID_KEY_ENV)) is not None:
            try:
                sendgrid_key = webhooks_auth.load_sendgrid_public_key(text)
            except ValueError as error:
                problems["sendgrid"] = f"{SENDGRID_KEY_ENV} cannot be used: {error}"
        try:
            limit = blacklist.soft_bounce_limit(environ)
        except ValidationError as error:
            limit = blacklist.DEFAULT_SOFT_BOUNCE_LIMIT
            problems[_ALL] = " ".join(str(error).split())
        mailgun_key = secret(MAILGUN_KEY_ENV)
        url = database_url or environ.get("DATABASE_URL") or settings.database_url()
        return cls(
            connect=lambda: psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S),
            brevo_token=secret(BREVO_TOKEN_ENV),
            sendgrid_public_key=sendgrid_key,
            mailgun_signing_key=None if mailgun_key is None else mailgun_key.encode(),
            postmark_user=secret(POSTMARK_USER_ENV),
            postmark_password=secret(POSTMARK_PASSWORD_ENV),
            soft_bounce_limit=limit,
            problems=problems,
        )

    def problem(self, provider: str) -> str | None:
        """Why this provider's webhooks cannot be served, or None."""
        if _ALL in self.problems:
            return self.problems[_ALL]
        if provider in self.problems:
            return self.problems[provider]
        missing = {
            "brevo": [BREVO_TOKEN_ENV] if self.brevo_token is None else [],
            "sendgrid": [SENDGRID_KEY_ENV] if self.sendgrid_public_key is None else [],
            "mailgun": [MAILGUN_KEY_ENV] if self.mailgun_signing_key is None else [],
            "postmark": [
                name
                for name, value in (
                    (POSTMARK_USER_ENV, self.postmark_user),
                    (POSTMARK_PASSWORD_ENV, self.postmark_password),
                )
                if value is None
            ],
        }[provider]
        return f"{' and '.join(missing)} not set" if missing else None


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _TooLarge(Exception):
    pass


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:g} hours" if seconds >= 3600 else f"{seconds / 60:g} minutes"


def _out_of_window(max_age_s: float) -> _Refused:
    return _Refused(
        401,
        f"the signature's timestamp is older than {_duration(max_age_s)}"
        f" or more than {_duration(webhooks_auth.MAX_CLOCK_AHEAD_S)} ahead",
    )


# A provider's check: (settings, headers, raw body, arrival time) → its events and a token to spend
# (Mailgun's), or _Refused / MalformedPayload.
_Check = Callable[[WebhookSettings, Headers, bytes, datetime], tuple[Parsed, str | None]]


def _brevo(config: WebhookSettings, headers: Headers, body: bytes, now: datetime) -> tuple[Parsed, str | None]:
    assert config.brevo_token is not None
    if not webhooks_auth.brevo_authorized(headers.get("authorization"), config.brevo_token):
        raise _Refused(401, "bad or missing credentials (the webhook's bearer token or basic auth)")
    return webhooks_payloads.brevo_events(body, now), None


def _sendgrid(config: WebhookSettings, headers: Headers, body: bytes, now: datetime) -> tuple[Parsed, str | None]:
    assert config.sendgrid_public_key is not None
    signature = headers.get(webhooks_auth.SENDGRID_SIGNATURE_HEADER)
    timestamp = headers.get(webhooks_auth.SENDGRID_TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise _Refused(401, "the signature headers are missing")
    if not webhooks_auth.sendgrid_signature_ok(config.sendgrid_public_key, signature, timestamp, body):
        raise _Refused(401, "bad signature")
    if not webhooks_auth.signed_recently(timestamp, now.timestamp(), webhooks_auth.SENDGRID_MAX_AGE_S):
        raise _out_of_window(webhooks_auth.SENDGRID_MAX_AGE_S)
    return webhooks_payloads.sendgrid_events(body, now), None


def _mailgun(config: WebhookSettings, headers: Headers, body: bytes, now: datetime) -> tuple[Parsed, str | None]:
    assert config.mailgun_signing_key is not None
    # Mailgun signs inside the body: it must be read as JSON before anything can be trusted.
    document = webhooks_payloads.mailgun_document(body)
    signature = webhooks_payloads.mailgun_signature(document)
    if signature is None:
        raise _Refused(401, "the signature block is missing")
    if not webhooks_auth.mailgun_signature_ok(
        config.mailgun_signing_key, signature.timestamp, signature.token, signature.signature
    ):
        raise _Refused(401, "bad signature")
    if not webhooks_auth.signed_recently(signature.timestamp, now.timestamp(), webhooks_auth.MAILGUN_MAX_AGE_S):
        raise _out_of_window(webhooks_auth.MAILGUN_MAX_AGE_S)
    return webhooks_payloads.mailgun_events(document, now), signature.token


def _postmark(config: WebhookSettings, headers: Headers, body: bytes, now: datetime) -> tuple[Parsed, str | None]:
    assert config.postmark_user is not None and config.postmark_password is not None
    if not webhooks_auth.postmark_authorized(
        headers.get("authorization"), config.postmark_user, config.postmark_password
    ):
        raise _Refused(401, "bad or missing basic auth")
    return webhooks_payloads.postmark_events(body, now), None


_CHECKS: dict[str, _Check] = {"brevo": _brevo, "sendgrid": _sendgrid, "mailgun": _mailgun, "postmark": _postmark}


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


async def _receive(request: Request, provider: str) -> Response:
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
        parsed, token = await anyio.to_thread.run_sync(
            _CHECKS[provider], config, request.headers, body, datetime.now(UTC)
        )
    except _Refused as refusal:
        log.warning(
            "webhook from %s refused with %d: %s, from %s", provider, refusal.status, refusal.message, _who(request)
        )
        return PlainTextResponse(refusal.message, status_code=refusal.status)
    except MalformedPayload as error:
        log.warning("webhook from %s refused with 400: %s", provider, error)
        return PlainTextResponse(f"malformed payload: {error}", status_code=400)
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


def _endpoint(provider: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await _receive(request, provider)

    endpoint.__name__ = f"{provider}_webhook"
    return endpoint


routes: list[Route] = [
    Route(f"/webhooks/{provider}", _endpoint(provider), methods=["POST"], name=f"{provider}_webhook")
    for provider in PROVIDERS
]
