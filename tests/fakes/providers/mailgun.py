"""Fake Mailgun: `POST /v3/<domain>/messages` as multipart (or urlencoded) fields with
`recipient-variables`, HTTP Basic `api:<key>`; its webhooks signed inside the body with a key
made here.

Mailgun documents 403 for bad credentials; live answers are also seen as 401 (UNCONFIRMED): 401 here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson

from tests.fakes.providers.base import (
    Auth,
    Fake,
    Handled,
    Refusal,
    Reply,
    SentMessage,
    json_reply,
    load_json,
    number,
    valid_email,
    words_for,
)

if TYPE_CHECKING:
    from tests.fakes.providers import FakeProviders

_PATH = re.compile(r"/v3/(?P<domain>[^/]+)/messages")
SIGNING_KEY = secrets.token_hex(32)
_FORBIDDEN = Reply(401, b"Forbidden", {"content-type": "text/plain"})


def _bad(message: str, status: int = 400) -> Refusal:
    return Refusal(json_reply(status, {"message": message}))


class FakeMailgun(Fake):
    name = "mailgun"
    api_key = "key-fake"
    refused_recipient_words = "'to' parameter is not a valid address"

    def url(self, base: str) -> str:
        return base.rstrip("/") + "/v3"

    def route(self, path: str) -> str | None:
        match = _PATH.fullmatch(path)
        return None if match is None else match["domain"]

    def authenticate(self, headers: Mapping[str, str], api_key: str) -> Reply | None:
        token = base64.b64encode(f"api:{api_key}".encode()).decode()
        return None if headers.get("authorization") == f"Basic {token}" else _FORBIDDEN

    def fault(self, status: int, retry_after_s: float | None) -> Reply:
        if status == 429:
            headers = {} if retry_after_s is None else {"retry-after": number(retry_after_s)}
            return json_reply(429, {"message": "Too many requests"}, headers)
        if status == 401:
            return _FORBIDDEN
        return json_reply(status, {"message": words_for(status)})

    def handle(self, state: FakeProviders, route: str, headers: Mapping[str, str], body: bytes) -> Handled:
        domain = route
        fields = form_fields(headers.get("content-type", ""), body)
        if fields is None:
            raise _bad("Bad request: multipart/form-data or application/x-www-form-urlencoded expected")
        values: dict[str, list[str]] = {}
        for name, value in fields:
            values.setdefault(name, []).append(value)

        def one(name: str) -> str:
            return values.get(name, [""])[-1]

        sender = parseaddr(one("from"))[1]
        if not one("from"):
            raise _bad("'from' parameter is missing")
        if not valid_email(sender) or sender.lower() in state.rejected_senders:
            raise _bad("'from' parameter is not a valid address. please check documentation")
        recipients = [address for value in values.get("to", []) for address in value.split(",") if address.strip()]
        if not recipients:
            raise _bad("'to' parameter is missing")
        if len(recipients) > 1000:
            raise _bad("Too many recipients: at most 1000 per request")
        if not one("text") and not one("html"):
            raise _bad("Need at least one of 'text' or 'html' parameters specified")
        variables: dict[str, Any] = {}
        if "recipient-variables" in values:
            variables = load_json(one("recipient-variables").encode(), _bad("recipient-variables must be valid JSON"))
            if not isinstance(variables, dict):
                raise _bad("recipient-variables must be a JSON object")
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        message_id = f"<{stamp}.{state.next_number()}.{uuid.uuid4().hex[:8]}@{domain}>"
        accepted: list[SentMessage] = []
        for recipient in recipients:
            email = parseaddr(recipient)[1]
            if not valid_email(email) or email.lower() in state.rejected_recipients:
                raise _bad("'to' parameter is not a valid address. please check documentation")
            mine = variables.get(email, {}) if variables else {}

            def merge(text: str, mine: dict[str, Any] = mine) -> str:
                return _substitute(text, mine) if variables else text

            custom_headers = {name[2:]: merge(one(name)) for name in values if name.startswith("h:")}
            user_variables = {name[2:]: merge(one(name)) for name in values if name.startswith("v:")}
            accepted.append(
                SentMessage(
                    self.name,
                    sender,
                    email,
                    merge(one("subject")),
                    merge(one("html")),
                    merge(one("text")),
                    custom_headers,
                    user_variables.get("send_id"),
                    message_id,
                    None,
                )
            )
        return Handled(json_reply(200, {"id": message_id, "message": "Queued. Thank you."}), accepted)

    # -- webhooks ----------------------------------------------------------------------------

    def webhook_environment(self) -> dict[str, str]:
        return {"MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}

    def webhook_event(self, kind: str, email: str, send_id: str | None) -> Any:
        if kind == "hard_bounce":
            return {"event-data": failure(email, send_id, "permanent", "550 5.1.1 unknown user")}
        if kind == "soft_bounce":
            return {"event-data": failure(email, send_id, "temporary", "452 mailbox full")}
        name = {"delivered": "delivered", "complaint": "complained", "unsubscribe": "unsubscribed"}[kind]
        return {"event-data": event(name, email, send_id)}

    def webhook_request(self, body: bytes, *, auth: Auth = "good", age_s: float = 0.0) -> tuple[bytes, dict[str, str]]:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            document = None
        headers = {"content-type": "application/json"}
        if not isinstance(document, dict) or auth == "missing":
            return body, headers
        key = SIGNING_KEY if auth == "good" else secrets.token_hex(32)
        return sign(document.get("event-data"), key=key, age_s=age_s), headers


def sign(event_data: Any, *, key: str = SIGNING_KEY, token: str | None = None, age_s: float = 0) -> bytes:
    """A webhook body as Mailgun posts it: the event and its signature block."""
    timestamp = str(int(time.time() - age_s))
    token = token or secrets.token_hex(25)
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": event_data}
    ).encode()


def event(event: str, recipient: str, send_id: str | None, **fields: Any) -> dict[str, Any]:
    """One event-data object (providers.md §4.7), `event` in Mailgun's words."""
    return {
        "event": event,
        "id": secrets.token_urlsafe(16),
        "timestamp": 1764318600.521,
        "recipient": recipient,
        "log-level": "info",
        "message": {"headers": {"message-id": "20251128083000.1.ABC@mg.mondomaine.com"}},
        "tags": [],
        "user-variables": {} if send_id is None else {"send_id": send_id},
        **fields,
    }


def failure(recipient: str, send_id: str | None, severity: str, message: str) -> dict[str, Any]:
    return event(
        "failed",
        recipient,
        send_id,
        severity=severity,
        reason="bounce" if severity == "permanent" else "generic",
        **{
            "log-level": "error",
            "delivery-status": {"code": 550, "message": message, "description": "", "attempt-no": 1},
        },
    )


_RECIPIENT_VARIABLE = re.compile(r"%recipient\.([A-Za-z0-9_\-]+)%")


def _substitute(text: str, variables: Mapping[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1]
        return str(variables[name]) if name in variables else match[0]

    return _RECIPIENT_VARIABLE.sub(value, text)


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_FIELD_NAME = re.compile(rb';\s*name="([^"]*)"')


def form_fields(content_type: str, body: bytes) -> list[tuple[str, str]] | None:
    """The fields of a multipart/form-data or urlencoded body, repeated names kept in order."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        return parse_qsl(body.decode(), keep_blank_values=True)
    boundary = _BOUNDARY.search(content_type)
    if not content_type.startswith("multipart/form-data") or boundary is None:
        return None
    fields = []
    for part in body.split(b"--" + boundary[1].encode())[1:]:
        if part.startswith(b"--"):
            break
        head, separator, value = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        name = _FIELD_NAME.search(head)
        if not separator or name is None:
            return None
        fields.append((name[1].decode(), value.removesuffix(b"\r\n").decode()))
    return fields


FAKE = FakeMailgun()
