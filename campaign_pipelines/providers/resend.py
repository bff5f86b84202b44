"""Resend: `POST {url}` with `url` the batch endpoint (https://api.resend.com/emails/batch),
`Authorization: Bearer <key>`, a JSON array of up to 100 complete emails.

Every call goes through the batch endpoint, one message or a hundred: each email carries its own
recipient, subject, bodies and headers, so nothing is factored, and the answer is the same shape
for one as for many. The call asks for Resend's permissive validation (`x-batch-validation:
permissive`): an email Resend cannot create comes back in `errors` with its index while the others
are sent, so a bad address fails alone instead of condemning the batch. `text` is always given,
"" included: without it Resend writes a text part from the HTML, which the recipient did not get
from any other provider.

Idempotency: the `Idempotency-Key` header (our UUID); Resend keeps a key 24 hours and answers a
repeat with the first answer without sending again, so a lost answer may be retried.

Correlation: the send id as the tag `send_id` (tag values take ASCII letters, digits, `_` and `-`,
as our ids do); Resend echoes tags in `data.tags` of every email event, with the message id
(`data.email_id`) it gave in `data[].id`.

Webhooks (docs/providers.md, Resend): one event per request, signed by Svix: HMAC-SHA256 of
"<svix-id>.<svix-timestamp>.<raw body>" under the base64 key after `whsec_` of the endpoint's
signing secret (RESEND_WEBHOOK_SECRET), sent as `v1,<base64>` entries, space-separated, in
`svix-signature`. Svix retries a failed delivery with the same `svix-id` and a fresh timestamp and
signature, so the window is Svix's five minutes and `svix-id` names the event. Resend has no
unsubscribe event for the emails it sends: a recipient who unsubscribes through Resend is one of
its contacts updated with `unsubscribed: true`, which carries the address and no tag.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.utils import formataddr, parseaddr
from typing import Any

import httpx
import orjson

from campaign_pipelines.providers import _http, _payload
from campaign_pipelines.providers.base import (
    Ambiguous,
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
    MalformedPayload,
    Parsed,
    Refused,
    Webhook,
    out_of_window,
    signed_recently,
)

SEND_ID_TAG = "send_id"
VALIDATION_HEADER = "x-batch-validation"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Resend's error names (api-reference/errors) that say the key or account may not send.
_AUTH_NAMES = {"missing_api_key", "restricted_api_key", "invalid_api_key", "suspended_api_key", "invalid_permission"}
_QUOTA_NAMES = {"daily_quota_exceeded", "monthly_quota_exceeded"}
# A lost answer's first call is still running, or its key named another request: either may have sent.
_KEY_IN_USE = {"concurrent_idempotent_requests", "invalid_idempotent_request"}
_ABOUT_SENDER = re.compile(r"`from`|\bfrom\b|domain is not verified|testing emails", re.IGNORECASE)
_ABOUT_RECIPIENT = re.compile(r"`to`|recipient", re.IGNORECASE)

SECRET_ENV = "RESEND_WEBHOOK_SECRET"
_SECRET_PREFIX = "whsec_"
ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "svix-id", "svix-timestamp", "svix-signature"
# Svix's tolerance: a delivery, first or retried, is signed when it is sent.
MAX_AGE_S = 300.0
_EVENTS = {"email.delivered": DELIVERED, "email.complained": COMPLAINT}
# A bounce's `type` as Resend gives it from its mail servers; the event itself says "permanently
# rejected", so only a Transient bounce is a soft one.
_TRANSIENT = "Transient"


class ResendWebhook(Webhook):
    secrets = (SECRET_ENV,)
    max_age_s = MAX_AGE_S

    def configure(self, values: Mapping[str, str]) -> bytes:
        try:
            return signing_key(values[SECRET_ENV])
        except ValueError as error:
            raise ValueError(f"{SECRET_ENV} cannot be used: {error}") from None

    def receive(self, secrets: bytes, headers: Mapping[str, str], body: bytes, now: datetime) -> Parsed:
        event_id, timestamp, signatures = (
            headers.get(name) for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
        )
        if not event_id or not timestamp or not signatures:
            raise Refused("the svix signature headers are missing")
        if not signature_ok(secrets, event_id, timestamp, signatures, body):
            raise Refused("bad signature")
        if not signed_recently(timestamp, now.timestamp(), MAX_AGE_S):
            raise out_of_window(MAX_AGE_S)
        return events(body, event_id, now)


class Resend(Provider):
    name = "resend"
    default_url = "https://api.resend.com/emails/batch"
    webhook = ResendWebhook()
    max_batch = 100
    # 2 requests/s per team by default: one call at a time.
    max_in_flight = 1
    # No request size is documented (40 MB per email with attachments): ours; a 413 splits the call.
    max_call_bytes = 32 * 1024 * 1024
    idempotent = True

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
        headers = {
            "authorization": f"Bearer {api_key}",
            "content-type": "application/json",
            VALIDATION_HEADER: "permissive",
        }
        if idempotency_key:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        body = orjson.dumps([_email(sender, message) for message in messages])
        response = _http.post(client, self.name, url, content=body, headers=headers)
        return _verdicts(response, sender, messages)


def _email(sender: Sender, message: OutgoingMessage) -> dict[str, Any]:
    email: dict[str, Any] = {
        "from": formataddr((sender.name, sender.email)) if sender.name else sender.email,
        "to": [message.to_email],
        "subject": message.subject,
        "html": message.html,
        "text": message.text,
        "tags": [{"name": SEND_ID_TAG, "value": message.send_id}],
    }
    if message.headers:
        email["headers"] = dict(message.headers)
    return email


def _verdicts(response: httpx.Response, sender: Sender, messages: Sequence[OutgoingMessage]) -> list[Delivery]:
    status = response.status_code
    if status == 200:
        return _accepted(response, sender, messages)
    payload = _http.json_object(response)
    name = str(payload.get("name") or "")
    said = _http.quote(str(payload.get("message") or response.text or response.reason_phrase))
    words = _http.error_words(said, status, name)
    if status == 429 and name in _QUOTA_NAMES:
        raise QuotaExhausted(f"resend: the account's sending quota is used up: {words}", status=status)
    _http.raise_if_busy(Resend.name, response, words, _wait)
    if name in _KEY_IN_USE:
        raise Ambiguous(
            f"resend: the idempotency key is still in use or named another request: {words};"
            " the messages may have been sent"
        )
    if status == 401 or name in _AUTH_NAMES:
        raise AuthFailed(f"resend: the API key or account was refused: {words}", status=status)
    if status == 403 or _ABOUT_SENDER.search(said):
        # Resend's 403 validation_error: an unverified domain, or its testing sender.
        raise Rejected(f"resend: refused the sender {sender.email}: {words}", status=status)
    if status == 413 or _ABOUT_RECIPIENT.search(said):
        return _http.refused_for_a_message(Resend.name, status, words, messages, too_big=status == 413)
    raise Rejected(f"resend: refused the request: {words}", status=status)


def _accepted(response: httpx.Response, sender: Sender, messages: Sequence[OutgoingMessage]) -> list[Delivery]:
    """`data` holds the ids of the emails created, in the order of the request; `errors` the index
    and reason of each one that was not (permissive mode)."""
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise _http.not_its_answer(Resend.name, response) from None
    if not isinstance(payload, dict):
        raise _http.not_its_answer(Resend.name, response)
    data = payload.get("data")
    refused = _refusals(payload.get("errors", []), len(messages))
    if (
        not isinstance(data, list)
        or refused is None
        or len(data) != len(messages) - len(refused)
        or not all(isinstance(item, dict) and isinstance(item.get("id"), str) for item in data)
    ):
        raise _http.not_its_answer(Resend.name, response, "; cannot tell which were sent")
    if refused and len(refused) == len(messages) and all(_ABOUT_SENDER.search(why) for why in refused.values()):
        raise Rejected(f"resend: refused the sender {sender.email}: {_http.quote(next(iter(refused.values())))}")
    ids = iter(item["id"] for item in data)
    return [
        Delivery.refused(message.send_id, f"resend refused {message.to_email}: {refused[index]} (email {index})")
        if index in refused
        else Delivery.accepted(message.send_id, next(ids))
        for index, message in enumerate(messages)
    ]


def _refusals(errors: Any, count: int) -> dict[int, str] | None:
    """The reasons by index, or None when `errors` is not Resend's list of {index, message}."""
    if not isinstance(errors, list):
        return None
    refused: dict[int, str] = {}
    for error in errors:
        index = error.get("index") if isinstance(error, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count or index in refused:
            return None
        refused[index] = _http.quote(str(error.get("message") or "no reason given"))
    return refused


def _wait(response: httpx.Response) -> float | None:
    """`retry-after` (seconds), else `ratelimit-reset` (seconds until the window resets)."""
    waited = _http.retry_after(response.headers)
    if waited is not None:
        return waited
    try:
        return max(0.0, float(response.headers.get("ratelimit-reset", "")))
    except ValueError:
        return None


def signing_key(secret: str) -> bytes:
    """The HMAC key of a Svix signing secret, "whsec_<base64>"."""
    if not secret.startswith(_SECRET_PREFIX):
        raise ValueError(f"it does not start with {_SECRET_PREFIX!r}, as Resend's signing secrets do")
    try:
        key = base64.b64decode(secret[len(_SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError(f"what follows {_SECRET_PREFIX!r} is not base64") from None
    if not key:
        raise ValueError(f"nothing follows {_SECRET_PREFIX!r}")
    return key


def signature_ok(key: bytes, event_id: str, timestamp: str, signatures: str, body: bytes) -> bool:
    """One of the space-separated `v1,<base64>` entries is the HMAC of id.timestamp.body (several
    while a secret is rotated)."""
    expected = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    for entry in signatures.split():
        version, _, signature = entry.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(signature, validate=True)
        except binascii.Error:
            continue
        if hmac.compare_digest(given, expected):
            return True
    return False


def events(body: bytes, event_id: str, now: datetime) -> Parsed:
    """Resend posts one event object; `event_id` is its svix-id, shared by its retries."""
    document = _payload.load(body)
    if not isinstance(document, dict):
        raise MalformedPayload("the body is not one event object")
    where = "the event"
    kind = _payload.event_name(document, "type", where)
    data = _payload.obj(document, "data", where)
    parsed = Parsed()
    if kind == "contact.updated":
        if data.get("unsubscribed") is not True:
            parsed.ignored += 1
            return parsed
        ours, email, send_id, detail = UNSUBSCRIBE, _payload.recipient(data, "email", where), None, None
    elif kind == "email.bounced":
        bounce = _payload.obj(data, "bounce", where)
        bounce_type = _payload.text(bounce, "type", where)
        ours = SOFT_BOUNCE if bounce_type == _TRANSIENT else HARD_BOUNCE
        email, send_id = _recipient(data, where), _send_id(data, where)
        detail = _payload.words(bounce.get("message"), bounce.get("subType"), bounce_type)
    elif kind in _EVENTS:
        ours, email, send_id, detail = _EVENTS[kind], _recipient(data, where), _send_id(data, where), None
    else:
        parsed.ignored += 1
        return parsed
    stamp = document.get("created_at")
    parsed.events.append(
        DeliveryEvent(
            provider=Resend.name,
            event_id=event_id,
            event=ours,
            email=email,
            send_id=send_id,
            detail=detail,
            occurred_at=now if stamp is None else _payload.iso(stamp, "created_at", where),
        )
    )
    return parsed


def _recipient(data: dict[str, Any], where: str) -> str:
    """Our emails have one recipient: the first of `to`, which may be written "Name <address>"."""
    to = data.get("to")
    first = to[0] if isinstance(to, list) and to else to
    if not isinstance(first, str) or not parseaddr(first)[1]:
        raise MalformedPayload(f"{where}: the recipient (data.to) is missing")
    return parseaddr(first)[1]


def _send_id(data: dict[str, Any], where: str) -> str | None:
    # Events give tags as an object, name to value; the request's [{name, value}] form is read too.
    tags = data.get("tags")
    if isinstance(tags, list):
        tags = {tag.get("name"): tag.get("value") for tag in tags if isinstance(tag, dict)}
    elif tags is not None and not isinstance(tags, dict):
        raise MalformedPayload(f"{where}: data.tags is not an object")
    return _payload.send_id((tags or {}).get(SEND_ID_TAG))


PROVIDER = Resend()
