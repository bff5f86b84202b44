"""Mailjet Send API v3.1: `POST {url}` with `url` the full endpoint (https://api.mailjet.com/v3.1/send),
HTTP Basic with the API key as user name and the secret key as password; JSON, PascalCase.

Mailjet authenticates with two values where the other providers take one: the server's key
variable (or file) holds both, `<API key>:<secret key>`, as they go into the basic auth, so a
server still names one secret and neither value enters the database.

Batch form: `Messages`, one complete message per recipient (its own `To`, `Subject`, `HTMLPart`,
`TextPart`, `Headers`, `CustomID`). Per-message `Variables` exist for Mailjet's template language,
but our bodies come rendered, so nothing is factored. Mailjet checks each message on its own and
answers one result per message, in input order: `Status` "success" with each recipient's
`MessageID`, or "error" with its `Errors`; a call with errors answers HTTP 400 with that same list,
so refusals are per recipient. Limits: 50 messages per call (more is error mj-0008), 50 recipients
per `To`; no documented payload size (mj-0011 when over it): `max_call_bytes` is our own budget,
and an mj-0011 splits the call.

Correlation: the send id in `CustomID`, which Mailjet hands back as `CustomID` on every event.
`Mailjet(sandbox_mode=True)` sets the root `SandboxMode`: Mailjet validates every message and
delivers none, answering without message ids.

Webhooks (Event API, docs/providers.md § Mailjet): Mailjet signs nothing; its documented
protection is basic auth in the webhook's URL (MAILJET_WEBHOOK_USER, MAILJET_WEBHOOK_PASSWORD).
One event object per request, or a JSON array of them when grouping is on (the Version 2 of the
callback URL). No time is signed and events have no id, so copies are stored once by a derived id.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx
import orjson

from campaign_pipelines.providers import _http, _payload
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
    MalformedPayload,
    Parsed,
)

# Mailjet's Send API error codes (dev.mailjet.com, "Send API errors"): the sender is not allowed,
# or a whole call too big for one request (too many messages, payload over the limit).
_SENDER_CODES = {"send-0006", "send-0007", "send-0008"}
_SENDER_FIELDS = {"From", "Sender", "SenderID"}
_TOO_BIG_CODES = {"mj-0008", "mj-0011"}

USER_ENV = "MAILJET_WEBHOOK_USER"
PASSWORD_ENV = "MAILJET_WEBHOOK_PASSWORD"
# `bounce` is split by its `hard_bounce` in events(). `blocked` is Mailjet not even trying (an
# address it already holds as bad, a duplicate in a campaign): it says nothing new about the address.
_EVENTS = {"sent": DELIVERED, "spam": COMPLAINT, "unsub": UNSUBSCRIBE}


class MailjetWebhook(BasicAuthWebhook):
    secrets = (USER_ENV, PASSWORD_ENV)

    def events(self, body: bytes, now: datetime) -> Parsed:
        return events(body, now)


class Mailjet(Provider):
    name = "mailjet"
    default_url = "https://api.mailjet.com/v3.1/send"
    webhook = MailjetWebhook()
    max_batch = 50
    max_call_bytes = 10 * 1024 * 1024

    def __init__(self, *, sandbox_mode: bool = False) -> None:
        self.sandbox_mode = sandbox_mode

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
        body: dict[str, Any] = {"Messages": [_message(sender, message) for message in messages]}
        if self.sandbox_mode:
            body["SandboxMode"] = True
        headers = {
            "authorization": authorization(api_key),
            "content-type": "application/json",
            "accept": "application/json",
        }
        response = _http.post(client, self.name, url, content=orjson.dumps(body), headers=headers)
        return _verdicts(response, sender, messages)


def authorization(api_key: str) -> str:
    """The basic auth of the server's key, `<API key>:<secret key>`; AuthFailed, never quoting it,
    when it is not such a pair: no call could succeed with it."""
    public, colon, secret = api_key.strip().partition(":")
    if not colon or not public.strip() or not secret.strip():
        raise AuthFailed(
            "mailjet: the server's key must hold the API key and the secret key joined by ':'"
            " (<API key>:<secret key>); nothing was sent"
        )
    return "Basic " + base64.b64encode(f"{public.strip()}:{secret.strip()}".encode()).decode()


def _message(sender: Sender, message: OutgoingMessage) -> dict[str, Any]:
    item: dict[str, Any] = {
        "From": {"Email": sender.email, "Name": sender.name} if sender.name else {"Email": sender.email},
        "To": [{"Email": message.to_email}],
        "Subject": message.subject,
        "HTMLPart": message.html,
        "CustomID": message.send_id,
    }
    if message.text:
        item["TextPart"] = message.text
    if message.headers:
        item["Headers"] = dict(message.headers)
    return item


def _verdicts(response: httpx.Response, sender: Sender, messages: Sequence[OutgoingMessage]) -> list[Delivery]:
    status = response.status_code
    payload = _http.json_object(response)
    results = payload.get("Messages")
    # Per-message results come with a 200, or with a 400 when some message has errors; a success
    # without them is not Mailjet's answer.
    if 200 <= status < 300 or (isinstance(results, list) and status < 500 and status not in (401, 429)):
        return _per_message(response, results, sender, messages)
    code = str(payload.get("ErrorCode") or "")
    if payload:
        words = _http.error_words(_http.quote(str(payload.get("ErrorMessage") or "no message")), status, code)
    else:
        words = _http.error_words(_http.quote(response.text or response.reason_phrase), status)
    _http.raise_if_busy(Mailjet.name, response, words)
    if code in _SENDER_CODES:
        raise Rejected(f"mailjet: refused the sender {sender.email}: {words}", status=status)
    if status in (401, 403):
        raise AuthFailed(f"mailjet: the API key pair or account was refused: {words}", status=status)
    if status == 413 or code in _TOO_BIG_CODES:
        if len(messages) > 1:
            raise BatchRefused(f"mailjet: refused the batch of {len(messages)} as too big: {words}")
    raise Rejected(f"mailjet: refused the request: {words}", status=status)


def _per_message(
    response: httpx.Response, results: Any, sender: Sender, messages: Sequence[OutgoingMessage]
) -> list[Delivery]:
    if (
        not isinstance(results, list)
        or len(results) != len(messages)
        or not all(isinstance(result, dict) and result.get("Status") in ("success", "error") for result in results)
    ):
        # Some messages may have gone: which ones, this answer does not say.
        raise _http.not_its_answer(Mailjet.name, response)
    refused = [result for result in results if result["Status"] == "error"]
    if refused and len(refused) == len(results) and all(_about_sender(result) for result in refused):
        raise Rejected(
            f"mailjet: refused the sender {sender.email}: {_errors(refused[0])}", status=response.status_code
        )
    return [_item(message, result) for message, result in zip(messages, results, strict=True)]


def _item(message: OutgoingMessage, result: dict[str, Any]) -> Delivery:
    if result["Status"] == "error":
        return Delivery.refused(message.send_id, f"mailjet refused {message.to_email}: {_errors(result)}")
    recipients = result.get("To")
    first = recipients[0] if isinstance(recipients, list) and recipients and isinstance(recipients[0], dict) else {}
    # MessageID is a 64-bit integer, the id events carry; SandboxMode answers 0 and an empty UUID.
    message_id = first.get("MessageID") or first.get("MessageUUID") or None
    return Delivery.accepted(message.send_id, None if message_id is None else str(message_id))


def _errors(result: dict[str, Any]) -> str:
    errors = result.get("Errors")
    errors = [error for error in errors if isinstance(error, dict)] if isinstance(errors, list) else []
    described = []
    for error in errors:
        related = error.get("ErrorRelatedTo")
        where = ", ".join(str(field) for field in related) if isinstance(related, list) else ""
        detail = ", ".join(str(part) for part in (error.get("ErrorCode"), where) if part)
        said = str(error.get("ErrorMessage") or "error")
        described.append(f"{said} ({detail})" if detail else said)
    return _http.quote("; ".join(described) or "no error given")


def _about_sender(result: dict[str, Any]) -> bool:
    errors = result.get("Errors")
    if not isinstance(errors, list):
        return False
    for error in errors:
        if not isinstance(error, dict):
            continue
        related = error.get("ErrorRelatedTo")
        fields = {str(field).split(".")[0] for field in related} if isinstance(related, list) else set()
        if error.get("ErrorCode") in _SENDER_CODES or fields & _SENDER_FIELDS:
            return True
    return False


def events(body: bytes, now: datetime) -> Parsed:
    """One event object, or an array of them when the callback URL groups events."""
    parsed = Parsed()
    for item, where, name, ours in _payload.kept_events(parsed, _payload.objects(_payload.load(body)), "event", _kind):
        stamp = item.get("time")
        # Mailjet gives no event id; a message id names one recipient's message.
        event_id = _payload.derived_id(
            name, item.get("MessageID"), item.get("Message_GUID"), item.get("email"), stamp, item.get("hard_bounce")
        )
        if ours in (HARD_BOUNCE, SOFT_BOUNCE):
            detail = _payload.words(item.get("error"), item.get("comment"), item.get("error_related_to"))
        else:
            detail = _payload.words(item.get("source")) if ours == COMPLAINT else None
        parsed.events.append(
            DeliveryEvent(
                provider=Mailjet.name,
                event_id=event_id,
                event=ours,
                email=_payload.recipient(item, "email", where),
                send_id=_payload.send_id(item.get("CustomID")),
                detail=detail,
                occurred_at=now if stamp is None else _payload.epoch(stamp, "time", where),
            )
        )
    return parsed


def _kind(name: str, item: dict[str, Any], where: str) -> str | None:
    if name == "bounce":
        hard = item.get("hard_bounce")
        if not isinstance(hard, bool):
            raise MalformedPayload(f"{where}: hard_bounce is not true or false")
        return HARD_BOUNCE if hard else SOFT_BOUNCE
    return _EVENTS.get(name)


PROVIDER = Mailjet()
