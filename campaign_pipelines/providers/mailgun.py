"""Mailgun Messages API: `POST {url}/{domain}/messages` with `url` the API base
(https://api.mailgun.net/v3, or api.eu.mailgun.net for EU domains) and the domain taken from the
sender's address; HTTP Basic `api:<key>`; `multipart/form-data` fields (the documented encoding).

Batch form: one `to` field per recipient plus `recipient-variables`, a JSON object keyed by address.
With recipient-variables present Mailgun sends each `to` its own message and replaces
`%recipient.NAME%` in the subject, bodies, `h:` headers and `v:` variables. Our bodies come fully
rendered, so `_merge.factor` recovers the template they share and each recipient's variables carry
only what differs; the subject goes whole when subjects differ. Headers become `h:Name` =
`%recipient.xN%`, so one call holds messages with the same header names (split() groups them).
Each address appears once per call, since the variables are keyed by it.

Limits: 1000 recipients per call, 25 MB per request (we budget 20 MB). A message that itself
contains `%recipient.` goes alone in the single form, where Mailgun substitutes nothing.

Correlation: `v:send_id` (per recipient `%recipient.send_id%`); it comes back in webhooks as
`event-data.user-variables.send_id`. Mailgun returns one message id per call; every recipient's
events carry that same id, so every message of a call gets it.

Webhooks (providers.md §4.7): one JSON object per event, `{"signature": {...}, "event-data":
{...}}`, signed inside the body with HMAC-SHA256 of timestamp + token under the webhook signing
key (MAILGUN_WEBHOOK_SIGNING_KEY). Mailgun's docs ask for a timestamp close to the clock (5
minutes here) and a token used once: the token is spent with the events (a replay is answered
406, which Mailgun never retries). Its event `id` is unique within a day only, so the event id
is derived with the event's time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import formataddr
from typing import Any

import httpx
import orjson

from campaign_pipelines.providers import _http, _payload
from campaign_pipelines.providers._merge import Merged, factor, values_per_message
from campaign_pipelines.providers.base import (
    AuthFailed,
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
    MalformedPayload,
    Parsed,
    Refused,
    Webhook,
    out_of_window,
    signed_recently,
)

SEND_ID_VARIABLE = "send_id"
_MARKER = "%recipient."
_MAX_SLOTS = 100

SIGNING_KEY_ENV = "MAILGUN_WEBHOOK_SIGNING_KEY"
MAX_AGE_S = 300.0
_EVENTS = {"delivered": DELIVERED, "complained": COMPLAINT, "unsubscribed": UNSUBSCRIBE}
_FAILED = {"permanent": HARD_BOUNCE, "temporary": SOFT_BOUNCE}


@dataclass(frozen=True)
class Signature:
    timestamp: str
    token: str
    signature: str


class MailgunWebhook(Webhook):
    secrets = (SIGNING_KEY_ENV,)
    max_age_s = MAX_AGE_S

    def configure(self, values: Mapping[str, str]) -> bytes:
        return values[SIGNING_KEY_ENV].encode()

    def receive(self, secrets: bytes, headers: Mapping[str, str], body: bytes, now: datetime) -> Parsed:
        # Mailgun signs inside the body: it must be read as JSON before anything can be trusted.
        found = document(body)
        signed = signature(found)
        if signed is None:
            raise Refused("the signature block is missing")
        if not signature_ok(secrets, signed.timestamp, signed.token, signed.signature):
            raise Refused("bad signature")
        if not signed_recently(signed.timestamp, now.timestamp(), MAX_AGE_S):
            raise out_of_window(MAX_AGE_S)
        parsed = events(found, now)
        parsed.token = signed.token
        return parsed


class Mailgun(Provider):
    name = "mailgun"
    default_url = "https://api.mailgun.net/v3"
    webhook = MailgunWebhook()
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
        fields = _single(sender, messages[0]) if len(messages) == 1 else _batch(sender, messages)
        content, content_type = _multipart(fields)
        token = base64.b64encode(f"api:{api_key}".encode()).decode()
        headers = {"authorization": f"Basic {token}", "content-type": content_type}
        endpoint = f"{url.rstrip('/')}/{sender.domain}/messages"
        response = _http.post(client, self.name, endpoint, content=content, headers=headers)
        return _verdicts(response, sender, messages)

    def split(self, messages: Sequence[OutgoingMessage]) -> list[list[OutgoingMessage]]:
        groups: dict[Hashable, list[OutgoingMessage]] = {}
        for message in messages:
            groups.setdefault(tuple(message.headers), []).append(message)
        calls: list[list[OutgoingMessage]] = []
        for group in groups.values():
            calls += super().split(group)
        return calls

    def _costs(self, messages: Sequence[OutgoingMessage]) -> list[int | None]:
        costs: list[int | None] = []
        each = values_per_message(messages, alone=_has_marker, values=lambda group: _merge(group)[2])
        for message, variables in zip(messages, each, strict=True):
            if variables is None:
                costs.append(None)
            else:
                costs.append(envelope_size(message) + sum(len(k) + len(v.encode()) + 6 for k, v in variables.items()))
        return costs


def _single(sender: Sender, message: OutgoingMessage) -> list[tuple[str, str]]:
    fields = [("from", _from(sender)), ("to", message.to_email), ("subject", message.subject), ("html", message.html)]
    if message.text:
        fields.append(("text", message.text))
    fields += [(f"h:{name}", value) for name, value in message.headers.items()]
    fields.append((f"v:{SEND_ID_VARIABLE}", message.send_id))
    return fields


def _batch(sender: Sender, messages: Sequence[OutgoingMessage]) -> list[tuple[str, str]]:
    names = tuple(messages[0].headers)
    if any(tuple(message.headers) != names for message in messages) or any(map(_has_marker, messages)):
        raise ValueError("mailgun: these messages cannot share a call; use split()")
    html, text, variables = _merge(messages)
    recipient_variables = {message.to_email: each for message, each in zip(messages, variables, strict=True)}
    if len(recipient_variables) < len(messages):
        raise ValueError("mailgun: a recipient appears twice in one call; use split()")
    fields = [("from", _from(sender))]
    fields += [("to", message.to_email) for message in messages]
    fields.append(("subject", f"{_MARKER}subject%" if _subject_varies(messages) else messages[0].subject))
    fields.append(("html", _template(html, "h")))
    if text.literals != [""]:
        fields.append(("text", _template(text, "t")))
    fields += [(f"h:{name}", f"{_MARKER}x{index}%") for index, name in enumerate(names)]
    fields.append((f"v:{SEND_ID_VARIABLE}", f"{_MARKER}{SEND_ID_VARIABLE}%"))
    fields.append(("recipient-variables", orjson.dumps(recipient_variables).decode()))
    return fields


def _merge(messages: Sequence[OutgoingMessage]) -> tuple[Merged, Merged, list[dict[str, str]]]:
    """The shared html and text templates and each message's recipient variables."""
    html = factor([message.html for message in messages], max_slots=_MAX_SLOTS)
    text = factor([message.text for message in messages], max_slots=_MAX_SLOTS)
    vary = _subject_varies(messages)
    variables = []
    for index, message in enumerate(messages):
        each = {SEND_ID_VARIABLE: message.send_id}
        if vary:
            each["subject"] = message.subject
        each |= {f"h{slot}": value for slot, value in enumerate(html.values[index])}
        each |= {f"t{slot}": value for slot, value in enumerate(text.values[index])}
        each |= {f"x{slot}": value for slot, value in enumerate(message.headers.values())}
        variables.append(each)
    return html, text, variables


def _subject_varies(messages: Sequence[OutgoingMessage]) -> bool:
    return any(message.subject != messages[0].subject for message in messages)


def _template(merged: Merged, prefix: str) -> str:
    pieces = [merged.literals[0]]
    for slot, literal in enumerate(merged.literals[1:]):
        pieces += (f"{_MARKER}{prefix}{slot}%", literal)
    return "".join(pieces)


def _has_marker(message: OutgoingMessage) -> bool:
    texts = (message.html, message.text, message.subject, *message.headers.values())
    return any(_MARKER in text for text in texts)


def _from(sender: Sender) -> str:
    return formataddr((sender.name, sender.email)) if sender.name else sender.email


def _multipart(fields: list[tuple[str, str]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields:
        safe = name.replace('"', "%22").replace("\r", "").replace("\n", "")
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{safe}"\r\n\r\n'.encode() + value.encode() + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _verdicts(response: httpx.Response, sender: Sender, messages: Sequence[OutgoingMessage]) -> list[Delivery]:
    status = response.status_code
    payload: dict[str, Any] = _http.json_object(response)
    if status == 200:
        if not _http.is_json(response):
            raise _http.not_its_answer(
                Mailgun.name, response, " (is the server URL the API base, like https://api.mailgun.net/v3?)"
            )
        message_id = payload.get("id")
        if not message_id:
            # Mailgun's JSON without a message id: not its answer to a send, nothing was sent.
            raise Rejected(
                f"mailgun: the server URL answered without a message id ({_http.quote(response.text)}); "
                "is it the API base, like https://api.mailgun.net/v3?",
                status=status,
            )
        return [Delivery.accepted(message.send_id, str(message_id)) for message in messages]
    said = _http.quote(str(payload.get("message") or response.text or response.reason_phrase))
    words = _http.error_words(said, status)
    _http.raise_if_busy(Mailgun.name, response, words)
    if status in (401, 403):
        raise AuthFailed(f"mailgun: the API key was refused: {words}", status=status)
    if status == 404:
        raise Rejected(
            f"mailgun: the sending domain {sender.domain} was not found: {words} "
            "(is it a domain of this account, in this region?)",
            status=status,
        )
    lowered = said.lower()
    if "'from'" in lowered or "from parameter" in lowered:
        raise Rejected(f"mailgun: refused the sender {sender.email}: {words}", status=status)
    if status == 413 or "'to'" in lowered or "to parameter" in lowered:
        return _http.refused_for_a_message(Mailgun.name, status, words, messages, too_big=status == 413)
    raise Rejected(f"mailgun: refused the request: {words}", status=status)


def signature_ok(signing_key: bytes, timestamp: str, token: str, signature: str) -> bool:
    expected = hmac.new(signing_key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def document(body: bytes) -> dict[str, Any]:
    """Mailgun posts one JSON object: {"signature": {...}, "event-data": {...}}."""
    found = _payload.load(body)
    if not isinstance(found, dict):
        raise MalformedPayload("the body is not a JSON object")
    return found


def signature(found: dict[str, Any]) -> Signature | None:
    """The signature block, or None when it is missing or incomplete (the request is then refused)."""
    block = found.get("signature")
    if not isinstance(block, dict):
        return None
    timestamp, token, signed = block.get("timestamp"), block.get("token"), block.get("signature")
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        timestamp = str(timestamp)
    if not all(isinstance(value, str) and value for value in (timestamp, token, signed)):
        return None
    return Signature(timestamp=timestamp, token=token, signature=signed)


def events(found: dict[str, Any], now: datetime) -> Parsed:
    parsed = Parsed()
    where = "event-data"
    data = found.get("event-data")
    if not isinstance(data, dict):
        raise MalformedPayload("event-data is missing or not an object")
    name = _payload.event_name(data, "event", where)
    if name == "failed":
        ours = _FAILED.get(_payload.text(data, "severity", where) or "")
    else:
        ours = _EVENTS.get(name)
    if ours is None:
        parsed.ignored += 1
        return parsed
    status = _payload.obj(data, "delivery-status", where)
    variables = _payload.obj(data, "user-variables", where)
    stamp = data.get("timestamp")
    # Mailgun's event `id` is unique within a day only; with the event's own time it is unique.
    event_id = _payload.derived_id(data.get("id"), stamp, name, data.get("severity"), data.get("recipient"))
    parsed.events.append(
        DeliveryEvent(
            provider=Mailgun.name,
            event_id=event_id,
            event=ours,
            email=_payload.recipient(data, "recipient", where),
            send_id=_payload.send_id(variables.get(SEND_ID_VARIABLE)),
            detail=None
            if ours == DELIVERED
            else _payload.words(status.get("message"), status.get("description"), data.get("reason")),
            occurred_at=now if stamp is None else _payload.epoch(stamp, "timestamp", where),
        )
    )
    return parsed


PROVIDER = Mailgun()
