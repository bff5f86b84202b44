"""Fake SparkPost: `POST /api/v1/transmissions` with inline recipients and content rendered with
each recipient's substitution data, `Authorization: <API key>`; its event webhooks posted as
batches of `msys` wrappers with basic auth.

A recipient the fake refuses is counted in `total_rejected_recipients` and described in
`rcpt_to_errors` as SparkPost's best-practices page shows it; the others are sent. When no
recipient is left the fake still answers 200 with nothing accepted (the shape of the docs'
scheduled-transmission sample); SparkPost may answer 400 code 5002 instead (seen in issue
threads), which tests script with answer_next. The 401 and 429 bodies and the wording for a
missing field or an oversized metadata are UNCONFIRMED: plausible choices in its error format.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from tests.fakes.providers.base import (
    Auth,
    Fake,
    Handled,
    Refusal,
    Reply,
    SentMessage,
    basic_auth,
    json_reply,
    load_json,
    number,
    valid_email,
    words_for,
)

if TYPE_CHECKING:
    from tests.fakes.providers import FakeProviders

BASE = "/api/v1"
PATH = f"{BASE}/transmissions"
USER, PASSWORD = f"hooks-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
# A merged metadata (transmission + recipient) of more than this is refused (Transmissions API).
MAX_METADATA_BYTES = 1000
# `{{{ key }}}` (inserted as it is) or `{{ key }}` (HTML-escaped in the html part); values are
# never evaluated again. Only plain keys: statements and paths are not needed by our adapter.
_EXPRESSION = re.compile(r"\{\{\{\s*(\w+)\s*\}\}\}|\{\{\s*(\w+)\s*\}\}")
# Our event kinds as SparkPost posts them: (event class, type, extra fields).
_KINDS: dict[str, tuple[str, str, dict[str, str]]] = {
    "delivered": ("message_event", "delivery", {}),
    "hard_bounce": (
        "message_event",
        "bounce",
        {"bounce_class": "10", "error_code": "550", "raw_reason": "550 5.1.1 <{email}>: User unknown"},
    ),
    "soft_bounce": (
        "message_event",
        "bounce",
        {"bounce_class": "22", "error_code": "452", "raw_reason": "452 4.2.2 Mailbox full"},
    ),
    "complaint": ("message_event", "spam_complaint", {"fbtype": "abuse"}),
    "unsubscribe": ("unsubscribe_event", "list_unsubscribe", {}),
}


def _error(status: int, message: str, code: str, description: str | None = None) -> Reply:
    error = {"message": message, "code": code}
    if description is not None:
        error["description"] = description
    return json_reply(status, {"errors": [error]})


def _bad(message: str, code: str, description: str | None = None, status: int = 422) -> Refusal:
    return Refusal(_error(status, message, code, description))


class FakeSparkPost(Fake):
    name = "sparkpost"
    api_key = "fake-sparkpost-key"
    refused_recipient_words = "invalid recipient address.email"
    partial_batches = True

    def url(self, base: str) -> str:
        return base.rstrip("/") + BASE

    def route(self, path: str) -> str | None:
        # "/something is equivalent to /something/" (API conventions).
        return "" if path.rstrip("/") == PATH else None

    def authenticate(self, headers: Mapping[str, str], api_key: str) -> Reply | None:
        # The raw key, or basic auth with the key as user name and an empty password.
        given = headers.get("authorization")
        basic = "Basic " + base64.b64encode(f"{api_key}:".encode()).decode()
        return None if given in (api_key, basic) else json_reply(401, {"errors": [{"message": "Unauthorized."}]})

    def fault(self, status: int, retry_after_s: float | None) -> Reply:
        if status == 429:
            headers = {} if retry_after_s is None else {"retry-after": number(retry_after_s)}
            return json_reply(429, {"errors": [{"message": "Too many requests"}]}, headers)
        if status == 401:
            return json_reply(401, {"errors": [{"message": "Unauthorized."}]})
        if status == 403:
            return _error(403, "permission denied", "1100")
        if status == 420:
            return _error(420, "Exceed Sending Limit (hourly)", "2101")
        if status == 503:
            return _error(503, "Message generation module not available", "1900")
        return json_reply(status, {"errors": [{"message": words_for(status)}]})

    def handle(self, state: FakeProviders, route: str, headers: Mapping[str, str], body: bytes) -> Handled:
        if "application/json" not in headers.get("content-type", ""):
            raise _bad("Unsupported Content-Type header", "1700", status=415)
        payload = load_json(body, _bad("invalid data format/type/length", "1300", "the body is not JSON"))
        if not isinstance(payload, dict):
            raise _bad("invalid data format/type/length", "1300", "the body is not a JSON object")
        content = payload.get("content")
        recipients = payload.get("recipients")
        if not isinstance(content, dict):
            raise _bad("required field is missing", "1400", "content is a required field")
        if not isinstance(recipients, list) or not recipients:
            raise _bad("required field is missing", "1400", "recipients is a required field")
        sender = content.get("from")
        sender_email = sender.get("email") if isinstance(sender, dict) else sender
        if not isinstance(sender_email, str) or not valid_email(sender_email):
            raise _bad("required field is missing", "1400", "content.from.email is a required field")
        if sender_email.lower() in state.rejected_senders:
            raise _bad("Invalid domain", "7001", "Unconfigured or unverified sending domain.", status=400)
        if not content.get("subject"):
            raise _bad("required field is missing", "1400", "content.subject is a required field")
        if not content.get("html") and not content.get("text"):
            raise _bad("required field is missing", "1400", "At least one of text or html needs to exist in content")
        shared = payload.get("substitution_data") or {}
        metadata = payload.get("metadata") or {}
        transmission_id = str(10**16 + state.next_number())
        accepted: list[SentMessage] = []
        errors: list[dict[str, str]] = []
        for recipient in recipients:
            address = recipient.get("address") if isinstance(recipient, dict) else None
            email = address.get("email") if isinstance(address, dict) else None
            if not isinstance(email, str) or not valid_email(email) or email.lower() in state.rejected_recipients:
                errors.append(
                    {
                        "message": "invalid data format/type",
                        "description": f"invalid recipient address.email: {email}",
                        "code": "1300",
                    }
                )
                continue
            merged = {**metadata, **(recipient.get("metadata") or {})}
            if len(orjson.dumps(merged)) > MAX_METADATA_BYTES:
                raise _bad("invalid data format/type/length", "1300", f"metadata is over {MAX_METADATA_BYTES} bytes")
            values = {**merged, **shared, **(recipient.get("substitution_data") or {})}
            accepted.append(
                SentMessage(
                    self.name,
                    sender_email,
                    email,
                    render(content["subject"], values),
                    render(content.get("html") or "", values, escape=True),
                    render(content.get("text") or "", values),
                    {name: render(value, values) for name, value in (content.get("headers") or {}).items()},
                    merged.get("send_id"),
                    transmission_id,
                    None,
                )
            )
        results: dict[str, Any] = {
            "total_rejected_recipients": len(errors),
            "total_accepted_recipients": len(accepted),
            "id": transmission_id,
        }
        answer: dict[str, Any] = {"results": results}
        if errors:
            results["rcpt_to_errors"] = errors
            answer["errors"] = [{"message": "transmission created, but with validation errors", "code": "2000"}]
        return Handled(json_reply(200, answer), accepted)

    # -- webhooks ----------------------------------------------------------------------------

    def webhook_environment(self) -> dict[str, str]:
        return {"SPARKPOST_WEBHOOK_USER": USER, "SPARKPOST_WEBHOOK_PASSWORD": PASSWORD}

    def webhook_event(self, kind: str, email: str, send_id: str | None) -> Any:
        event_class, event_type, fields = _KINDS[kind]
        return [event(event_class, event_type, email, send_id, **{k: v.format(email=email) for k, v in fields.items()})]

    def webhook_request(self, body: bytes, *, auth: Auth = "good", age_s: float = 0.0) -> tuple[bytes, dict[str, str]]:
        given = {"good": basic_auth(USER, PASSWORD), "wrong": basic_auth(USER, "wrong-password"), "missing": {}}[auth]
        # SparkPost names each batch, the same on its retries.
        batch_id = hashlib.sha256(body).hexdigest()[:32]
        return body, {"content-type": "application/json", "x-messagesystems-batch-id": batch_id, **given}


def render(template: str, values: Mapping[str, Any], *, escape: bool = False) -> str:
    """SparkPost's substitution of plain keys; a missing key is an empty string."""

    def value(match: re.Match[str]) -> str:
        triple, double = match.groups()
        found = values.get(triple or double)
        text = "" if found is None else str(found)
        return html.escape(text) if escape and double else text

    return _EXPRESSION.sub(value, template)


def event(event_class: str, event_type: str, email: str, send_id: str | None, **fields: Any) -> dict[str, Any]:
    """One event as SparkPost posts it in a batch (docs/providers.md, SparkPost webhooks)."""
    item = {
        "type": event_type,
        "event_id": str(secrets.randbelow(10**17) + 10**17),
        "message_id": "0004e3724f57753a3561",
        "transmission_id": "84345317650824116",
        "campaign_id": "black-friday",
        "rcpt_to": email.lower(),
        "raw_rcpt_to": email,
        "rcpt_meta": {} if send_id is None else {"send_id": send_id},
        "timestamp": "1764318600",
        **fields,
    }
    return {"msys": {event_class: item}}


FAKE = FakeSparkPost()
