"""Brevo (ex-Sendinblue) transactional API: `POST {url}` with `url` the full send endpoint
(https://api.brevo.com/v3/smtp/email), header `api-key`, JSON body.

Batch form: `messageVersions`, one version per recipient carrying that recipient's own `subject`,
`htmlContent`, `textContent` and `headers` — Brevo takes N fully rendered messages in one call, so
nothing is factored. Per-version `subject`/`htmlContent`/`textContent` are in Brevo's published
model; per-version `headers` is not (django-anymail sends it and Brevo honours it: providers.md
§2.4 marks it observed, UNCONFIRMED). The top-level subject and html repeat the first message,
because Brevo requires `htmlContent` at the top unless a template is used; there is no top-level
`textContent`, so a version without text can never inherit another recipient's. Limits: 1000 versions per
call, 2000 recipients per call, 99 per version; we put one recipient per version, so 1000 per call.
No documented payload cap: `max_call_bytes` is our own guess, and a 413 splits the call.

Correlation: the send id goes in the `X-Mailin-custom` header as the plain string; Brevo echoes it
as the `X-Mailin-custom` field of every webhook event. Brevo answers with one message id per
version, in version order.

Idempotency: a UUID in the top-level JSON `headers` under `idempotencyKey` (the spelling of Brevo's
batch guide; its API reference shows `Idempotency-Key`); Brevo ignores a repeat within 30 minutes.

Webhooks (providers.md §2.7): Brevo signs nothing; it sends the credentials configured on the
webhook, a bearer token or basic auth with the token as the password (BREVO_WEBHOOK_TOKEN). One
event object, or an array of them in its batched mode; no time is signed and no event id given, so
copies are stored once by a derived id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
import orjson

from campaign_pipelines.providers import _http, _payload
from campaign_pipelines.providers.base import (
    AuthFailed,
    Delivery,
    OutgoingMessage,
    Provider,
    QuotaExhausted,
    Rejected,
    Sender,
    ensure_batch,
    ensure_header_safe,
)
from campaign_pipelines.providers.client import ProviderClient
from campaign_pipelines.providers.webhook import (
    COMPLAINT,
    DELIVERED,
    HARD_BOUNCE,
    SOFT_BOUNCE,
    UNSUBSCRIBE,
    DeliveryEvent,
    Parsed,
    Refused,
    Webhook,
    basic_credentials,
    bearer_token,
    same_secret,
)

CUSTOM_HEADER = "X-Mailin-custom"
IDEMPOTENCY_FIELD = "idempotencyKey"
# Brevo's own words when a message is about a recipient rather than the whole call.
_ABOUT_RECIPIENT = re.compile(
    r"\bin to\b|\bto\[|messageVersions|recipient|email is not valid|invalid email", re.IGNORECASE
)
_ABOUT_SENDER = re.compile(r"sender|\bfrom\b", re.IGNORECASE)
TOKEN_ENV = "BREVO_WEBHOOK_TOKEN"
# Both spellings of the unsubscribe event are documented; `spam` is its complaint.
_EVENTS = {
    "delivered": DELIVERED,
    "hard_bounce": HARD_BOUNCE,
    "soft_bounce": SOFT_BOUNCE,
    "spam": COMPLAINT,
    "complaint": COMPLAINT,
    "unsubscribe": UNSUBSCRIBE,
    "unsubscribed": UNSUBSCRIBE,
}


class BrevoWebhook(Webhook):
    secrets = (TOKEN_ENV,)

    def receive(self, secrets: Any, headers: Mapping[str, str], body: bytes, now: datetime) -> Parsed:
        if not authorized(headers.get("authorization"), secrets[TOKEN_ENV]):
            raise Refused("bad or missing credentials (the webhook's bearer token or basic auth)")
        return events(body, now)


class Brevo(Provider):
    name = "brevo"
    default_url = "https://api.brevo.com/v3/smtp/email"
    webhook = BrevoWebhook()
    max_batch = 1000
    max_call_bytes = 32 * 1024 * 1024
    idempotent = True
    # 1,000 requests/s documented on the general tier.
    max_in_flight = 8

    def send(
        self,
        client: ProviderClient,
        *,
        url: str,
        api_key: str,
        sender: Sender,
        messages: Sequence[OutgoingMessage],
        idempotency_key: str | None,
    ) -> list[Delivery]:
        ensure_batch(self, messages)
        ensure_header_safe(self, sender, messages)
        body = _body(sender, messages, idempotency_key)
        headers = {"api-key": api_key, "content-type": "application/json", "accept": "application/json"}
        response = _http.post(client, self.name, url, content=orjson.dumps(body), headers=headers)
        return _verdicts(response, sender, messages)


def _body(sender: Sender, messages: Sequence[OutgoingMessage], idempotency_key: str | None) -> dict[str, Any]:
    first = messages[0]
    body: dict[str, Any] = {
        "sender": {"name": sender.name, "email": sender.email} if sender.name else {"email": sender.email},
        "subject": first.subject,
        "htmlContent": first.html,
    }
    if len(messages) == 1:
        body["to"] = [{"email": first.to_email}]
        body["headers"] = _headers(first)
        if first.text:
            body["textContent"] = first.text
    else:
        body["messageVersions"] = [_version(message) for message in messages]
    if idempotency_key:
        body.setdefault("headers", {})[IDEMPOTENCY_FIELD] = idempotency_key
    return body


def _headers(message: OutgoingMessage) -> dict[str, str]:
    return {**message.headers, CUSTOM_HEADER: message.send_id}


def _version(message: OutgoingMessage) -> dict[str, Any]:
    version: dict[str, Any] = {
        "to": [{"email": message.to_email}],
        "subject": message.subject,
        "htmlContent": message.html,
        "headers": _headers(message),
    }
    if message.text:
        version["textContent"] = message.text
    return version


def _verdicts(response: httpx.Response, sender: Sender, messages: Sequence[OutgoingMessage]) -> list[Delivery]:
    status = response.status_code
    if status in (200, 201, 202):
        if not _http.is_json(response):
            raise _http.not_its_answer(Brevo.name, response)
        payload = _http.json_object(response)
        ids = payload.get("messageIds") or ([payload["messageId"]] if payload.get("messageId") else [])
        return [
            Delivery.accepted(message.send_id, ids[index] if index < len(ids) else None)
            for index, message in enumerate(messages)
        ]
    payload = _http.json_object(response)
    code = str(payload.get("code") or "")
    said = _http.quote(str(payload.get("message") or response.text or response.reason_phrase))
    words = _http.error_words(said, status, code)
    _http.raise_if_busy(Brevo.name, response, words, _reset)
    if code == "duplicate_request":
        # The idempotency key was already used: that call went through. Brevo's exact answer to a
        # repeat is undocumented; we read this code as "already sent", without message ids.
        return [Delivery.accepted(message.send_id, None) for message in messages]
    if status == 402:
        raise QuotaExhausted(f"brevo: the account cannot send: {words}", status=status)
    if status in (401, 403) or code in ("unauthorized", "permission_denied", "account_under_validation"):
        raise AuthFailed(f"brevo: the API key or account was refused: {words}", status=status)
    if _ABOUT_SENDER.search(said):
        raise Rejected(f"brevo: refused the sender {sender.email}: {words}", status=status)
    if status == 413 or _ABOUT_RECIPIENT.search(said):
        return _http.refused_for_a_message(Brevo.name, status, words, messages, too_big=status == 413)
    raise Rejected(f"brevo: refused the request: {words}", status=status)


def _reset(response: httpx.Response) -> float | None:
    value = response.headers.get("x-sib-ratelimit-reset")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
    return _http.retry_after(response.headers)


def authorized(authorization: str | None, token: str) -> bool:
    """The bearer token configured on the webhook, or basic auth with it as the password (any user name)."""
    bearer = bearer_token(authorization)
    if bearer is not None:
        return same_secret(bearer, token)
    basic = basic_credentials(authorization)
    return basic is not None and same_secret(basic[1], token)


def events(body: bytes, now: datetime) -> Parsed:
    """One event object, or an array of them in Brevo's batched mode."""
    parsed = Parsed()
    for item, where, _name, ours in _payload.kept_events(
        parsed, _payload.objects(_payload.load(body)), "event", _EVENTS
    ):
        # ts_epoch (milliseconds) is Brevo's only timestamp documented as UTC; `date` is in the account's zone.
        if item.get("ts_epoch") is not None:
            occurred_at = _payload.epoch(item["ts_epoch"], "ts_epoch", where, per_second=1000)
        elif item.get("ts_event") is not None:
            occurred_at = _payload.epoch(item["ts_event"], "ts_event", where)
        elif item.get("ts") is not None:
            occurred_at = _payload.epoch(item["ts"], "ts", where)
        else:
            occurred_at = now
        custom = next((value for key, value in item.items() if key.lower() == CUSTOM_HEADER.lower()), None)
        # Brevo gives no event id (its `id` is the webhook's). One message-id may cover several
        # recipients, so the address is part of it too.
        event_id = _payload.derived_id(
            item.get("message-id"),
            item["event"],
            item.get("email"),
            item.get("ts_epoch"),
            item.get("ts_event"),
            item.get("ts"),
        )
        parsed.events.append(
            DeliveryEvent(
                provider=Brevo.name,
                event_id=event_id,
                event=ours,
                email=_payload.recipient(item, "email", where),
                send_id=_payload.send_id(custom),
                detail=None if ours == DELIVERED else _payload.words(item.get("reason")),
                occurred_at=occurred_at,
            )
        )
    return parsed


PROVIDER = Brevo()
