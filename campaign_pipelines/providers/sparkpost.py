"""SparkPost Transmissions API: `POST {url}/transmissions` with `url` the API base
(https://api.sparkpost.com/api/v1; EU accounts https://api.eu.sparkpost.com/api/v1, Enterprise
accounts their own host); `Authorization: <API key>`, the raw key with no scheme; JSON.

One call is one transmission, one message or many: every recipient carries its own
`substitution_data` (its rendered subject, bodies and header values) and `metadata` (our send
id), and the shared `content` only places them: `{{cp_subject}}`, `{{{cp_html}}}` (triple braces:
SparkPost HTML-escapes double-brace values in the html part), `{{cp_text}}`, one `{{cp_header_N}}`
per header. Why not factor the bodies into a shared template as SendGrid and Mailgun do: SparkPost
runs its template language over the content, so any `{{` of a rendered body would be read as an
expression, whereas a substitution value is inserted as it is, never evaluated (Substitutions
Reference, "Dynamic Content"). Why not one transmission per message: SparkPost's best practices
ask for multi-recipient transmissions for bulk mail, and a call per recipient would cost a
request each. The sender's name goes through the transmission's `substitution_data` for the same
reason (substitution applies to `from` too). Links inside values are not click-tracked by
SparkPost; the tracking app tracks ours.

Limits: SparkPost recommends 2,000 to 10,000 recipients per transmission for bulk mailings and a
request of at most 50 MB (the hard cap is 300 MB); substitution data counts, so we take 2,000
and budget 40 MB. One call's messages share their header names (content.headers names them
once): split() groups them.

Answers: 200 `{"results": {"total_accepted_recipients", "total_rejected_recipients", "id"}}`, the
id naming the transmission (every message of the call gets it). Recipients refused at submission
are counted in `total_rejected_recipients` and described in `results.rcpt_to_errors`, whose
description names the address ("invalid recipient address.email: …"): those recipients are
refused, the others accepted. A count that the descriptions do not account for leaves the call
`unknown` (SparkPost sent some of it, which ones it does not say). Errors are
`{"errors": [{"message", "description", "code"}]}`: 401/403 auth, 420 "Exceed Sending Limit"
(quota), 429 rate limiting, 5xx transient, 400 code 7000/7001 the sending domain, 400 code 5002
no valid recipient.

Webhooks (docs/providers.md, SparkPost): batches of events, a JSON array of
`{"msys": {"<class>": {...}}}`, authenticated with the basic auth configured on the webhook
(SPARKPOST_WEBHOOK_USER, SPARKPOST_WEBHOOK_PASSWORD); nothing is signed, so there is no replay
window, and each event's `event_id` stores its copies once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import httpx
import orjson

from campaign_pipelines.providers import _http, _payload
from campaign_pipelines.providers.base import (
    Ambiguous,
    AuthFailed,
    BatchRefused,
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
    BasicAuthWebhook,
    DeliveryEvent,
    MalformedPayload,
    Parsed,
)

SEND_ID_METADATA = "send_id"
# Substitution keys: ASCII letters, digits and underscores, none of SparkPost's reserved words.
SUBJECT_KEY, HTML_KEY, TEXT_KEY, FROM_NAME_KEY = "cp_subject", "cp_html", "cp_text", "cp_from_name"
HEADER_KEY = "cp_header_{}"
# SparkPost's extended error codes (support.sparkpost.com, Extended Error Codes).
_SENDING_DOMAIN_CODES = {"7000", "7001"}
_NO_VALID_RECIPIENT = "5002"
_SUBSTITUTION_DATA_TOO_LARGE = "2002"
# How rcpt_to_errors name a refused address: "invalid recipient address.email: <address>".
_ADDRESS_MARK = ":"

USER_ENV = "SPARKPOST_WEBHOOK_USER"
PASSWORD_ENV = "SPARKPOST_WEBHOOK_PASSWORD"
_EVENTS = {
    "delivery": DELIVERED,
    "spam_complaint": COMPLAINT,
    "list_unsubscribe": UNSUBSCRIBE,
    "link_unsubscribe": UNSUBSCRIBE,
}
# An out_of_band event is a bounce that came back after SparkPost had delivered.
_BOUNCES = {"bounce", "out_of_band"}
# Bounce classes (support.sparkpost.com, Bounce Classification Codes) of category Hard (10, 30,
# 90) or Admin (25: failed by SparkPost's policies, a suppressed address): the address is done.
_HARD_CLASSES = {"10", "25", "30", "90"}
# Auto-reply (60), subscribe request (80), challenge-response (100): replies from the mailbox's
# software, which say nothing of whether the address takes mail. Every other class is soft.
_NOT_BOUNCES = {"60", "80", "100"}


class SparkPostWebhook(BasicAuthWebhook):
    secrets = (USER_ENV, PASSWORD_ENV)

    def events(self, body: bytes, now: datetime) -> Parsed:
        return events(body, now)


class SparkPost(Provider):
    name = "sparkpost"
    default_url = "https://api.sparkpost.com/api/v1"
    webhook = SparkPostWebhook()
    max_batch = 2000
    max_call_bytes = 40 * 1024 * 1024

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
        headers = {"authorization": api_key, "content-type": "application/json", "accept": "application/json"}
        endpoint = f"{url.rstrip('/')}/transmissions"
        body = orjson.dumps(transmission(sender, messages))
        response = _http.post(client, self.name, endpoint, content=body, headers=headers)
        return _verdicts(response, sender, messages)

    def split(self, messages: Sequence[OutgoingMessage]) -> list[list[OutgoingMessage]]:
        # content.headers names one call's headers; a text part is placed for all or for none.
        shapes = dict.fromkeys(map(_shape, messages))
        return [
            call
            for shape in shapes
            for call in Provider.split(self, [message for message in messages if _shape(message) == shape])
        ]


def _shape(message: OutgoingMessage) -> tuple[bool, tuple[str, ...]]:
    return bool(message.text), tuple(message.headers)


def transmission(sender: Sender, messages: Sequence[OutgoingMessage]) -> dict[str, Any]:
    """The request body: each recipient's rendered parts in its substitution_data."""
    names = tuple(messages[0].headers)
    if any(tuple(message.headers) != names for message in messages):
        raise ValueError("sparkpost: these messages have different header names and cannot share a call; use split()")
    content: dict[str, Any] = {
        "from": {"email": sender.email, "name": _value(FROM_NAME_KEY)} if sender.name else sender.email,
        "subject": _value(SUBJECT_KEY),
        # Triple braces: a double-brace value is HTML-escaped in the html part.
        "html": "{" + _value(HTML_KEY) + "}",
    }
    if any(message.text for message in messages):
        content["text"] = _value(TEXT_KEY)
    if names:
        content["headers"] = {name: _value(HEADER_KEY.format(index)) for index, name in enumerate(names)}
    body: dict[str, Any] = {"recipients": [_recipient(message) for message in messages], "content": content}
    if sender.name:
        body["substitution_data"] = {FROM_NAME_KEY: sender.name}
    return body


def _value(key: str) -> str:
    """The expression SparkPost replaces with the substitution value `key`."""
    return "{{" + key + "}}"


def _recipient(message: OutgoingMessage) -> dict[str, Any]:
    values = {SUBJECT_KEY: message.subject, HTML_KEY: message.html, TEXT_KEY: message.text}
    values |= {HEADER_KEY.format(index): value for index, value in enumerate(message.headers.values())}
    return {
        "address": {"email": message.to_email},
        "metadata": {SEND_ID_METADATA: message.send_id},
        "substitution_data": values,
    }


def _verdicts(response: httpx.Response, sender: Sender, messages: Sequence[OutgoingMessage]) -> list[Delivery]:
    status = response.status_code
    payload = _http.json_object(response)
    errors = _dicts(payload.get("errors"))
    said = "; ".join(map(_describe, errors)) or _http.quote(response.text or response.reason_phrase)
    words = _http.error_words(_http.quote(said), status)
    if 200 <= status < 300:
        results = payload.get("results")
        if not isinstance(results, dict) or not _documented(results):
            raise _http.not_its_answer(SparkPost.name, response)
        return _accepted(results, messages, words)
    codes = {str(error.get("code")) for error in errors}
    _http.raise_if_busy(SparkPost.name, response, words)
    if status in (401, 403):
        raise AuthFailed(f"sparkpost: the API key was refused: {words}", status=status)
    if status == 420:
        raise QuotaExhausted(f"sparkpost: the account's sending limit is reached: {words}", status=status)
    if codes & _SENDING_DOMAIN_CODES:
        raise Rejected(f"sparkpost: refused the sender {sender.email}: {words}", status=status)
    if _NO_VALID_RECIPIENT in codes:
        return [
            Delivery.refused(message.send_id, f"sparkpost refused {message.to_email}: {words}") for message in messages
        ]
    if len(messages) > 1 and (status == 413 or _SUBSTITUTION_DATA_TOO_LARGE in codes):
        raise BatchRefused(f"sparkpost: refused the batch of {len(messages)} because of its size: {words}")
    raise Rejected(f"sparkpost: refused the request: {words}", status=status)


def _documented(results: dict[str, Any]) -> bool:
    counts = (results.get("total_accepted_recipients"), results.get("total_rejected_recipients"))
    counted = all(isinstance(count, int) and not isinstance(count, bool) and count >= 0 for count in counts)
    return counted and isinstance(results.get("id"), str) and bool(results["id"])


def _accepted(results: dict[str, Any], messages: Sequence[OutgoingMessage], words: str) -> list[Delivery]:
    """Per-recipient verdicts from the counts and the addresses rcpt_to_errors name."""
    accepted, rejected = results["total_accepted_recipients"], results["total_rejected_recipients"]
    transmission_id = results["id"]
    if accepted == len(messages) and rejected == 0:
        return [Delivery.accepted(message.send_id, transmission_id) for message in messages]
    by_address = {message.to_email.lower(): message for message in messages}
    refused: dict[str, str] = {}
    for error in _dicts(results.get("rcpt_to_errors")):
        description = str(error.get("description") or "")
        named = by_address.get(description.rpartition(_ADDRESS_MARK)[2].strip().lower())
        if named is not None:
            refused[named.send_id] = f"sparkpost refused {named.to_email}: {_http.quote(_describe(error))}"
    if accepted == 0 and rejected == len(messages):
        general = _http.quote(_rcpt_errors(results) or words)
        return [
            Delivery.refused(
                message.send_id, refused.get(message.send_id, f"sparkpost refused {message.to_email}: {general}")
            )
            for message in messages
        ]
    if rejected == len(refused) and accepted + rejected == len(messages):
        return [
            Delivery.refused(message.send_id, refused[message.send_id])
            if message.send_id in refused
            else Delivery.accepted(message.send_id, transmission_id)
            for message in messages
        ]
    raise Ambiguous(
        f"sparkpost: accepted {accepted} and refused {rejected} of {len(messages)} recipients without saying which"
        f" ({_http.quote(_rcpt_errors(results) or words)}); the messages may have been sent"
    )


def _rcpt_errors(results: dict[str, Any]) -> str:
    return "; ".join(map(_describe, _dicts(results.get("rcpt_to_errors"))))


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _describe(error: dict[str, Any]) -> str:
    said = ": ".join(str(error[key]) for key in ("message", "description") if error.get(key)) or "error"
    return f"{said} (code {error['code']})" if error.get("code") is not None else said


def events(body: bytes, now: datetime) -> Parsed:
    """SparkPost posts a JSON array of `{"msys": {"<class>": event}}`; `{"msys": {}}` is its ping."""
    document = _payload.load(body)
    if not isinstance(document, list):
        raise MalformedPayload("the body is not a JSON array of events")
    parsed = Parsed()
    for event, where, kind, ours in _payload.kept_events(parsed, _unwrapped(_payload.objects(document)), "type", _kind):
        stamp = event.get("timestamp")
        event_id = _payload.text(event, "event_id", where) or _payload.derived_id(
            kind, event.get("message_id"), event.get("rcpt_to"), stamp
        )
        parsed.events.append(
            DeliveryEvent(
                provider=SparkPost.name,
                event_id=event_id,
                event=ours,
                email=_payload.recipient(event, "rcpt_to", where),
                send_id=_payload.send_id(_payload.obj(event, "rcpt_meta", where).get(SEND_ID_METADATA)),
                detail=None if ours == DELIVERED else _payload.words(event.get("raw_reason"), event.get("reason")),
                occurred_at=now if stamp is None else _time(stamp, where),
            )
        )
    return parsed


def _unwrapped(items: list[dict[str, Any]]) -> Iterator[dict[str, Any] | None]:
    """Each item's event, None for a ping; read one at a time, so that the errors come in the body's order."""
    for index, item in enumerate(items):
        where = f"event {index}"
        if "msys" not in item:
            raise MalformedPayload(f"{where}: msys is missing")
        wrapped = _payload.obj(item, "msys", where)
        if not wrapped:
            yield None
            continue
        if len(wrapped) != 1:
            raise MalformedPayload(f"{where}: msys holds {len(wrapped)} event classes, not one")
        [(event_class, event)] = wrapped.items()
        if not isinstance(event, dict):
            raise MalformedPayload(f"{where}: msys.{event_class} is not an object")
        yield event


def _kind(name: str, event: dict[str, Any], where: str) -> str | None:
    return _bounce(event, where) if name in _BOUNCES else _EVENTS.get(name)


def _bounce(event: dict[str, Any], where: str) -> str | None:
    bounce_class = event.get("bounce_class")
    if bounce_class is not None and not isinstance(bounce_class, str | int):
        raise MalformedPayload(f"{where}: bounce_class is not a number")
    found = str(bounce_class) if bounce_class is not None else None
    if found in _NOT_BOUNCES:
        return None
    return HARD_BOUNCE if found in _HARD_CLASSES else SOFT_BOUNCE


def _time(stamp: Any, where: str) -> datetime:
    # Unix seconds as text, as most events give it; generation events give an ISO 8601 time.
    if isinstance(stamp, str) and "T" in stamp:
        return _payload.iso(stamp, "timestamp", where)
    return _payload.epoch(stamp, "timestamp", where)


PROVIDER = SparkPost()
