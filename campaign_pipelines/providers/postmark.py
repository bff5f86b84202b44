"""Postmark: `POST {url}/email` (one message) or `POST {url}/email/batch` (several), with `url` the
API base (https://api.postmarkapp.com); header `X-Postmark-Server-Token`; JSON, PascalCase.

Batch form: `/email/batch` takes an array of complete messages, so each recipient's fully rendered
subject, bodies and headers go as they are; nothing is factored. Postmark answers 200 with one
result per message in input order, each with its own `ErrorCode` (0 = accepted, with its own
`MessageID`), so failures are per recipient. Limits: 500 messages and 50 MB per batch call (we
budget 40 MB), 10 MB per message. (`/email/bulk` merges templates server-side but must be enabled
by Postmark support and its response shape is undocumented; not used.)

Correlation: `Metadata: {"send_id": …}`, echoed in every webhook. Campaign mail goes to the
server's broadcast message stream (`broadcast`, the id Postmark gives the default one), as
Postmark's policy wants for marketing; pass another stream id to `Postmark(message_stream=…)`.

Webhooks (providers.md §5.7): one record per request, its `RecordType` saying which; Postmark
signs nothing and sends the basic auth configured on the webhook (POSTMARK_WEBHOOK_USER and
POSTMARK_WEBHOOK_PASSWORD). No time is signed and records have no event id, so copies are stored
once by a derived id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.utils import formataddr
from typing import Any, NamedTuple

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
    ServerError,
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
    BasicAuthWebhook,
    DeliveryEvent,
    Parsed,
)

SEND_ID_METADATA = "send_id"
DEFAULT_STREAM = "broadcast"
# Postmark's API ErrorCodes (developer/api/overview#error-codes).
_BAD_TOKEN = 10
_INVALID_REQUEST = 300
_SENDER_CODES = {400: "sender signature not found", 401: "sender signature not confirmed"}
_NOT_ALLOWED_TO_SEND = 405
_INACTIVE_RECIPIENT = 406
_TOO_MANY_BATCH_MESSAGES = 410
_ACCOUNT_CODES = {412, 413}

USER_ENV = "POSTMARK_WEBHOOK_USER"
PASSWORD_ENV = "POSTMARK_WEBHOOK_PASSWORD"
# Bounces by their `Type` name (Postmark's TypeCode table is inconsistent between sources).
# Transient is a delay Postmark retries itself; Blocked, AutoResponder and the like say nothing
# about the address.
_BOUNCES = {
    "HardBounce": HARD_BOUNCE,
    "BadEmailAddress": HARD_BOUNCE,
    "SoftBounce": SOFT_BOUNCE,
    "DnsError": SOFT_BOUNCE,
    "SpamComplaint": COMPLAINT,
    "Unsubscribe": UNSUBSCRIBE,
}
# A SubscriptionChange for this reason is the recipient unsubscribing; Postmark's HardBounce and
# SpamComplaint suppressions arrive as their own Bounce and SpamComplaint records.
_UNSUBSCRIBED = "ManualSuppression"


class PostmarkWebhook(BasicAuthWebhook):
    secrets = (USER_ENV, PASSWORD_ENV)

    def events(self, body: bytes, now: datetime) -> Parsed:
        return events(body, now)


class Postmark(Provider):
    name = "postmark"
    default_url = "https://api.postmarkapp.com"
    webhook = PostmarkWebhook()
    max_batch = 500
    max_call_bytes = 40 * 1024 * 1024

    def __init__(self, message_stream: str = DEFAULT_STREAM) -> None:
        self.message_stream = message_stream

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
            "x-postmark-server-token": api_key,
            "content-type": "application/json",
            "accept": "application/json",
        }
        base = url.rstrip("/")
        if len(messages) == 1:
            body = orjson.dumps(self._message(sender, messages[0]))
            response = _http.post(client, self.name, f"{base}/email", content=body, headers=headers)
        else:
            body = orjson.dumps([self._message(sender, message) for message in messages])
            response = _http.post(client, self.name, f"{base}/email/batch", content=body, headers=headers)
        return _verdicts(response, sender, messages)

    def _message(self, sender: Sender, message: OutgoingMessage) -> dict[str, Any]:
        body: dict[str, Any] = {
            "From": formataddr((sender.name, sender.email)) if sender.name else sender.email,
            "To": message.to_email,
            "Subject": message.subject,
            "HtmlBody": message.html,
            "MessageStream": self.message_stream,
            "Metadata": {SEND_ID_METADATA: message.send_id},
        }
        if message.text:
            body["TextBody"] = message.text
        if message.headers:
            body["Headers"] = [{"Name": name, "Value": value} for name, value in message.headers.items()]
        return body


def _verdicts(response: httpx.Response, sender: Sender, messages: Sequence[OutgoingMessage]) -> list[Delivery]:
    status = response.status_code
    if status == 200:
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise _http.not_its_answer(Postmark.name, response) from None
        results = payload if isinstance(payload, list) else [payload]
        if len(results) != len(messages) or not all(isinstance(result, dict) for result in results):
            raise ServerError(
                f"postmark: {len(results)} results for {len(messages)} messages; cannot tell which was sent",
                status=status,
            )
        deliveries = [_item(message, result) for message, result in zip(messages, results, strict=True)]
        codes = {result.get("ErrorCode") for result in results}
        if len(codes) == 1 and codes.pop() in _SENDER_CODES:
            raise Rejected(f"postmark: refused the sender {sender.email}: {_words(results[0], status)}", status=status)
        return deliveries
    payload = _http.json_object(response)
    code = payload.get("ErrorCode")
    if payload:
        words = _words(payload, status)
    else:
        words = _http.error_words(_http.quote(response.text or response.reason_phrase), status)
    _http.raise_if_busy(Postmark.name, response, words)
    if status == 401 or code == _BAD_TOKEN or code in _ACCOUNT_CODES:
        raise AuthFailed(f"postmark: the server token or account was refused: {words}", status=status)
    if code == _NOT_ALLOWED_TO_SEND:
        raise QuotaExhausted(f"postmark: the account may not send now: {words}", status=status)
    if code in _SENDER_CODES:
        raise Rejected(f"postmark: refused the sender {sender.email}: {words}", status=status)
    if status == 413 or code in (_TOO_MANY_BATCH_MESSAGES, _INACTIVE_RECIPIENT) or _about_recipient(payload):
        return _http.refused_for_a_message(
            Postmark.name, status, words, messages, too_big=status == 413 or code == _TOO_MANY_BATCH_MESSAGES
        )
    raise Rejected(f"postmark: refused the request: {words}", status=status)


def _item(message: OutgoingMessage, result: dict[str, Any]) -> Delivery:
    if result.get("ErrorCode") == 0:
        return Delivery.accepted(message.send_id, result.get("MessageID"))
    return Delivery.refused(message.send_id, f"postmark refused {message.to_email}: {_words(result, None)}")


def _about_recipient(payload: dict[str, Any]) -> bool:
    # django-anymail reads ErrorCode 300 naming 'To' as a rejected recipient.
    return payload.get("ErrorCode") == _INVALID_REQUEST and "'to'" in str(payload.get("Message", "")).lower()


def _words(payload: dict[str, Any], status: int | None) -> str:
    said = _http.quote(str(payload.get("Message") or "no message"))
    where = f"ErrorCode {payload.get('ErrorCode')}" + (f", HTTP {status}" if status else "")
    return f"{said} ({where})"


def events(body: bytes, now: datetime) -> Parsed:
    """Postmark posts one record per request; its RecordType says which."""
    parsed = Parsed()
    records = _payload.kept_events(parsed, _payload.objects(_payload.load(body)), "RecordType", _record, noun="record")
    for item, where, kind, (ours, recipient_key, time_key, detail) in records:
        metadata = _payload.obj(item, "Metadata", where)
        stamp = item.get(time_key)
        # Postmark gives no event id (a bounce's `ID` is one, other records have none).
        event_id = _payload.derived_id(
            kind, item.get("ID"), item.get("MessageID"), item.get("Type"), item.get(recipient_key), stamp
        )
        parsed.events.append(
            DeliveryEvent(
                provider=Postmark.name,
                event_id=event_id,
                event=ours,
                email=_payload.recipient(item, recipient_key, where),
                send_id=_payload.send_id(metadata.get(SEND_ID_METADATA)),
                detail=detail,
                occurred_at=now if stamp is None else _payload.iso(stamp, time_key, where),
            )
        )
    return parsed


class _Record(NamedTuple):
    """What a record's kind says: our event, and where the record keeps its recipient and time."""

    event: str
    recipient_key: str
    time_key: str
    detail: str | None


def _record(kind: str, item: dict[str, Any], where: str) -> _Record | None:
    if kind == "Delivery":
        return _Record(DELIVERED, "Recipient", "DeliveredAt", None)
    if kind in ("Bounce", "SpamComplaint"):
        bounce_type = "SpamComplaint" if kind == "SpamComplaint" else _payload.text(item, "Type", where)
        ours = _BOUNCES.get(bounce_type or "")
        detail = _payload.words(item.get("Details"), item.get("Description"), bounce_type)
        return None if ours is None else _Record(ours, "Email", "BouncedAt", detail)
    if kind == "SubscriptionChange":
        unsubscribed = item.get("SuppressSending") is True and item.get("SuppressionReason") == _UNSUBSCRIBED
        if not unsubscribed:
            return None
        return _Record(UNSUBSCRIBE, "Recipient", "ChangedAt", _payload.words(item.get("SuppressionReason")))
    return None


PROVIDER = Postmark()
