"""SendGrid v3 Mail Send: `POST {url}` with `url` the full endpoint
(https://api.sendgrid.com/v3/mail/send), `Authorization: Bearer <key>`, JSON body.

Batch form: one personalization per recipient, each with its own `to`, `headers`, `custom_args`
and (when subjects differ) `subject`. SendGrid has one shared `content` per call, so per-recipient
bodies go through legacy `substitutions`: `_merge.factor` recovers the template the bodies share
and each personalization carries only what differs (its greeting, its tokens). We avoid
`dynamic_template_data`, which needs a template stored at SendGrid.

Limits that shape the calls: 1000 personalizations and 1000 recipients per call, each address once
per call, under 30 MB; substitutions at most 10,000 bytes per personalization (and, in older docs,
100 keys — we use at most 98). A message whose differences do not fit the 10,000 bytes (a
per-recipient paragraph, a text with its own line count) goes alone in the single form, so SendGrid
batches only campaigns whose per-recipient parts are small — which is the common case.

Correlation: the send id in per-personalization `custom_args` as `send_id`; SendGrid merges it into
every webhook event. SendGrid returns no per-message id: the `X-Message-Id` header names the call
and prefixes each recipient's `sg_message_id`, so every message of a call gets that id.

Webhooks (providers.md §3.7): a JSON array of events, signed with ECDSA P-256 over the timestamp
header + the raw body; the verification key (SENDGRID_WEBHOOK_PUBLIC_KEY) is base64 DER as
SendGrid's settings show it. SendGrid retries a refused batch for 24 hours and does not say
whether a retry is signed anew, so a signature is good for 25 hours; each event has its own
`sg_event_id`, so copies within the window are stored once.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from campaign_pipelines.providers import _http, _payload
from campaign_pipelines.providers._merge import Merged, factor, values_per_message
from campaign_pipelines.providers.base import (
    AuthFailed,
    BatchRefused,
    Delivery,
    OutgoingMessage,
    Provider,
    Rejected,
    Sender,
    ensure_batch,
    ensure_header_safe,
    envelope_size,
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
    out_of_window,
    signed_recently,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

SEND_ID_ARG = "send_id"
MAX_SUBSTITUTION_BYTES = 10_000
_MAX_SLOTS_PER_PART = 49
# Substitution keys look like "[%cp:h3%]"; texts containing the marker go alone.
_MARKER = "[%cp:"

PUBLIC_KEY_ENV = "SENDGRID_WEBHOOK_PUBLIC_KEY"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# SendGrid retries a refused batch for 24 hours (providers.md §3.7): an hour's margin keeps its last retries in.
MAX_AGE_S = 25 * 3600.0
# `bounce` is split by its `type` in events(); a group unsubscribe is still the recipient saying no.
_EVENTS = {
    "delivered": DELIVERED,
    "spamreport": COMPLAINT,
    "unsubscribe": UNSUBSCRIBE,
    "group_unsubscribe": UNSUBSCRIBE,
}


class SendGridWebhook(Webhook):
    secrets = (PUBLIC_KEY_ENV,)
    max_age_s = MAX_AGE_S

    def configure(self, values: Mapping[str, str]) -> ec.EllipticCurvePublicKey:
        try:
            return load_public_key(values[PUBLIC_KEY_ENV])
        except ValueError as error:
            raise ValueError(f"{PUBLIC_KEY_ENV} cannot be used: {error}") from None

    def receive(
        self, secrets: ec.EllipticCurvePublicKey, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> Parsed:
        signature = headers.get(SIGNATURE_HEADER)
        timestamp = headers.get(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise Refused("the signature headers are missing")
        if not signature_ok(secrets, signature, timestamp, body):
            raise Refused("bad signature")
        if not signed_recently(timestamp, now.timestamp(), MAX_AGE_S):
            raise out_of_window(MAX_AGE_S)
        return events(body, now)


class SendGrid(Provider):
    name = "sendgrid"
    default_url = "https://api.sendgrid.com/v3/mail/send"
    webhook = SendGridWebhook()
    max_batch = 1000
    max_call_bytes = 20 * 1024 * 1024

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
        body = _single(sender, messages[0]) if len(messages) == 1 else _batch(sender, messages)
        headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
        response = _http.post(client, self.name, url, content=orjson.dumps(body), headers=headers)
        return _verdicts(response, sender, messages)

    def _costs(self, messages: Sequence[OutgoingMessage]) -> list[int | None]:
        costs: list[int | None] = []
        each = values_per_message(messages, alone=_has_marker, values=lambda group: _merge(group)[2])
        for message, substitutions in zip(messages, each, strict=True):
            size = None if substitutions is None else _substitution_bytes(substitutions)
            costs.append(None if size is None or size > MAX_SUBSTITUTION_BYTES else envelope_size(message) + size)
        return costs


def _single(sender: Sender, message: OutgoingMessage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "personalizations": [{"to": [{"email": message.to_email}], "custom_args": {SEND_ID_ARG: message.send_id}}],
        "from": _from(sender),
        "subject": message.subject,
        "content": _content(message.text, message.html),
    }
    if message.headers:
        body["headers"] = dict(message.headers)
    return body


def _batch(sender: Sender, messages: Sequence[OutgoingMessage]) -> dict[str, Any]:
    if any(_has_marker(message) for message in messages):
        raise ValueError(f"sendgrid: a message contains {_MARKER!r}; split() sends such messages alone")
    html, text, all_substitutions = _merge(messages)
    same_subject = all(message.subject == messages[0].subject for message in messages)
    personalizations = []
    for message, substitutions in zip(messages, all_substitutions, strict=True):
        if _substitution_bytes(substitutions) > MAX_SUBSTITUTION_BYTES:
            # Nothing has been sent: deliver() splits the call until this message goes alone.
            raise BatchRefused(
                f"sendgrid: the message to {message.to_email} differs from the others by more than "
                f"SendGrid's {MAX_SUBSTITUTION_BYTES} bytes of substitutions"
            )
        personalization: dict[str, Any] = {
            "to": [{"email": message.to_email}],
            "custom_args": {SEND_ID_ARG: message.send_id},
        }
        if not same_subject:
            personalization["subject"] = message.subject
        if message.headers:
            personalization["headers"] = dict(message.headers)
        if substitutions:
            personalization["substitutions"] = substitutions
        personalizations.append(personalization)
    return {
        "personalizations": personalizations,
        "from": _from(sender),
        "subject": messages[0].subject,
        "content": _content(_template(text, "t"), _template(html, "h")),
    }


def _merge(messages: Sequence[OutgoingMessage]) -> tuple[Merged, Merged, list[dict[str, str]]]:
    """The shared html and text templates and each message's substitutions."""
    html = factor([message.html for message in messages], max_slots=_MAX_SLOTS_PER_PART)
    text = factor([message.text for message in messages], max_slots=_MAX_SLOTS_PER_PART)
    return html, text, [_values(html, "h", index) | _values(text, "t", index) for index in range(len(messages))]


def _key(part: str, slot: int) -> str:
    return f"{_MARKER}{part}{slot}%]"


def _values(merged: Merged, part: str, index: int) -> dict[str, str]:
    return {_key(part, slot): value for slot, value in enumerate(merged.values[index])}


def _template(merged: Merged, part: str) -> str:
    pieces = [merged.literals[0]]
    for slot, literal in enumerate(merged.literals[1:]):
        pieces += (_key(part, slot), literal)
    return "".join(pieces)


def _substitution_bytes(substitutions: dict[str, str]) -> int:
    return sum(len(key) + len(value.encode()) for key, value in substitutions.items())


def _has_marker(message: OutgoingMessage) -> bool:
    return _MARKER in message.html or _MARKER in message.text or _MARKER in message.subject


def _from(sender: Sender) -> dict[str, str]:
    return {"email": sender.email, "name": sender.name} if sender.name else {"email": sender.email}


def _content(text: str, html: str) -> list[dict[str, str]]:
    # SendGrid wants text/plain before text/html.
    content = [{"type": "text/plain", "value": text}] if text else []
    return [*content, {"type": "text/html", "value": html}]


def _verdicts(response: httpx.Response, sender: Sender, messages: Sequence[OutgoingMessage]) -> list[Delivery]:
    status = response.status_code
    if 200 <= status < 300:
        # The documented answer has no body (202), or a JSON one.
        if response.content.strip() and not _http.is_json(response):
            raise _http.not_its_answer(SendGrid.name, response)
        message_id = response.headers.get("x-message-id")
        return [Delivery.accepted(message.send_id, message_id) for message in messages]
    errors = _http.json_object(response).get("errors")
    errors = [error for error in errors if isinstance(error, dict)] if isinstance(errors, list) else []
    said = "; ".join(_describe(error) for error in errors) or _http.quote(response.text or response.reason_phrase)
    words = _http.error_words(_http.quote(said), status)
    fields = [str(error.get("field") or "") for error in errors]
    _http.raise_if_busy(SendGrid.name, response, words)
    about_sender = any(field.startswith("from") for field in fields) or "sender identity" in said.lower()
    if about_sender:
        raise Rejected(f"sendgrid: refused the sender {sender.email}: {words}", status=status)
    if status in (401, 403):
        raise AuthFailed(f"sendgrid: the API key was refused: {words}", status=status)
    about_recipient = any(field.startswith("personalizations") and ".to" in field for field in fields)
    if status == 413 or about_recipient:
        return _http.refused_for_a_message(SendGrid.name, status, words, messages, too_big=status == 413)
    raise Rejected(f"sendgrid: refused the request: {words}", status=status)


def _describe(error: dict[str, Any]) -> str:
    message = str(error.get("message") or "error")
    field = error.get("field")
    return f"{message} [{field}]" if field else message


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid's settings show it: base64 DER (SubjectPublicKeyInfo), P-256."""
    # cryptography is imported only to check webhooks (the tracking app): run workers load every provider.
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (binascii.Error, ValueError):
        raise ValueError("it is not a base64 DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("it is not an ECDSA P-256 public key")
    return key


def signature_ok(key: ec.EllipticCurvePublicKey, signature: str, timestamp: str, body: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        der_signature = base64.b64decode(signature, validate=True)
        key.verify(der_signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def events(body: bytes, now: datetime) -> Parsed:
    """SendGrid posts a JSON array of events."""
    parsed = Parsed()
    for item, where, name, ours in _payload.kept_events(parsed, _payload.objects(_payload.load(body)), "event", _kind):
        stamp = item.get("timestamp")
        event_id = _payload.text(item, "sg_event_id", where) or _payload.derived_id(
            item.get("sg_message_id"), name, item.get("type"), item.get("email"), stamp
        )
        parsed.events.append(
            DeliveryEvent(
                provider=SendGrid.name,
                event_id=event_id,
                event=ours,
                email=_payload.recipient(item, "email", where),
                # custom_args come back merged at the top level of each event.
                send_id=_payload.send_id(item.get(SEND_ID_ARG)),
                detail=None if ours == DELIVERED else _payload.words(item.get("reason"), item.get("status")),
                occurred_at=now if stamp is None else _payload.epoch(stamp, "timestamp", where),
            )
        )
    return parsed


def _kind(name: str, item: dict[str, Any], where: str) -> str | None:
    if name == "bounce":
        # type "bounce" is a hard bounce, "blocked" a soft one.
        return SOFT_BOUNCE if _payload.text(item, "type", where) == "blocked" else HARD_BOUNCE
    return _EVENTS.get(name)


PROVIDER = SendGrid()
