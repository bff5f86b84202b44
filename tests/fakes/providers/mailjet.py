"""Fake Mailjet: `POST /v3.1/send` (`Messages`, one result per message, HTTP 400 when some have
errors), basic auth with the API key and the secret key, `SandboxMode` honoured; its webhooks
authenticated with the basic auth of the callback URL.

The bodies of Mailjet's 401 and 429 and its wording of each error are UNCONFIRMED beyond the
codes and the shape of its documented errors (docs/providers.md § Mailjet): plausible choices
following them. Mailjet documents no rate-limit header: the 429 carries `Retry-After` only when
a test gives one.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

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

PATH = "/v3.1/send"
USER, PASSWORD = f"hooks-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
# Mailjet's MessageIDs are 64-bit integers, beyond the 53 bits a JSON double keeps exact.
_FIRST_MESSAGE_ID = 288230376151711744
_MAX_ITEMS = 50
# Headers that have a property of their own, or that Mailjet sets (send-0011); a selection.
_FORBIDDEN_HEADERS = {
    "from",
    "sender",
    "subject",
    "to",
    "cc",
    "bcc",
    "return-path",
    "date",
    "message-id",
    "x-mj-customid",
    "x-mj-eventpayload",
    "list-id",
}
_BAD_CREDENTIALS = {
    "ErrorIdentifier": "0f6b7ca0-5f0d-4d4a-9b4e-1d6c5cbe4d11",
    "ErrorCode": "mj-0015",
    "StatusCode": 401,
    "ErrorMessage": "API key authentication/authorization failure. You may be unauthorized to access the API or"
    " your API key may be expired. Visit API keys management section to check your keys.",
}
# Our event kinds as Mailjet names them; bounces differ by `hard_bounce`.
_KINDS = {
    "delivered": "sent",
    "hard_bounce": "bounce",
    "soft_bounce": "bounce",
    "complaint": "spam",
    "unsubscribe": "unsub",
}


def _error(code: str, message: str, status: int = 400, related: list[str] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "ErrorIdentifier": str(uuid.uuid4()),
        "ErrorCode": code,
        "StatusCode": status,
        "ErrorMessage": message,
    }
    if related is not None:
        error["ErrorRelatedTo"] = related
    return error


def _global(code: str, message: str, status: int = 400) -> Refusal:
    return Refusal(json_reply(status, _error(code, message, status)))


class FakeMailjet(Fake):
    name = "mailjet"
    api_key = "fake-mj-api-key:fake-mj-secret-key"
    refused_recipient_words = "is an invalid email address"
    partial_batches = True

    def url(self, base: str) -> str:
        return base.rstrip("/") + PATH

    def route(self, path: str) -> str | None:
        return "" if path == PATH else None

    def authenticate(self, headers: Mapping[str, str], api_key: str) -> Reply | None:
        public, _, secret = api_key.partition(":")
        if headers.get("authorization") != basic_auth(public, secret)["authorization"]:
            return json_reply(401, _BAD_CREDENTIALS)
        return None

    def fault(self, status: int, retry_after_s: float | None) -> Reply:
        if status == 429:
            headers = {} if retry_after_s is None else {"retry-after": number(retry_after_s)}
            return json_reply(429, {"ErrorMessage": "Too Many Requests", "StatusCode": 429}, headers)
        if status == 401:
            return json_reply(401, _BAD_CREDENTIALS)
        return json_reply(
            status, {"ErrorIdentifier": str(uuid.uuid4()), "ErrorMessage": words_for(status), "StatusCode": status}
        )

    def handle(self, state: FakeProviders, route: str, headers: Mapping[str, str], body: bytes) -> Handled:
        malformed = _global("mj-0002", "Malformed JSON, please review the syntax and properties types.")
        payload = load_json(body, malformed)
        if not isinstance(payload, dict):
            raise malformed
        items = payload.get("Messages")
        if items is None:
            raise _global("mj-0003", "Missing mandatory property.")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise _global("mj-0004", 'Type mismatch. Expected type "array of messages".')
        if not items:
            raise _global("mj-0007", "Messages array cannot be empty.")
        if len(items) > _MAX_ITEMS:
            raise _global("mj-0008", f"Messages array contains more than the maximum allowed {_MAX_ITEMS} items.")
        sandbox = payload.get("SandboxMode", False)
        if not isinstance(sandbox, bool):
            raise _global("mj-0004", 'Type mismatch. Expected type "bool".')
        results: list[dict[str, Any]] = []
        accepted: list[SentMessage] = []
        for item in items:
            errors = _problems(state, item)
            if errors:
                results.append({"Status": "error", "Errors": errors})
                continue
            custom_id = item.get("CustomID") or ""
            to = [
                {
                    "Email": recipient["Email"],
                    "MessageUUID": "" if sandbox else str(uuid.uuid4()),
                    "MessageID": 0 if sandbox else _FIRST_MESSAGE_ID + state.next_number(),
                }
                for recipient in item["To"]
            ]
            for recipient in to:
                recipient["MessageHref"] = f"https://api.mailjet.com/v3/REST/message/{recipient['MessageID']}"
                if not sandbox:
                    accepted.append(
                        SentMessage(
                            self.name,
                            item["From"]["Email"],
                            recipient["Email"],
                            item.get("Subject") or "",
                            item.get("HTMLPart") or "",
                            item.get("TextPart") or "",
                            dict(item.get("Headers") or {}),
                            custom_id or None,
                            str(recipient["MessageID"]),
                            None,
                        )
                    )
            results.append({"Status": "success", "CustomID": custom_id, "To": to, "Cc": [], "Bcc": []})
        status = 400 if any(result["Status"] == "error" for result in results) else 200
        return Handled(json_reply(status, {"Messages": results}), accepted)

    # -- webhooks ----------------------------------------------------------------------------

    def webhook_environment(self) -> dict[str, str]:
        return {"MAILJET_WEBHOOK_USER": USER, "MAILJET_WEBHOOK_PASSWORD": PASSWORD}

    def webhook_event(self, kind: str, email: str, send_id: str | None) -> Any:
        # A grouped callback (Version 2), as we recommend for volume: an array of events.
        return [
            event(
                _KINDS[kind],
                email,
                send_id,
                **({"hard_bounce": kind == "hard_bounce"} if kind.endswith("bounce") else {}),
            )
        ]

    def webhook_request(self, body: bytes, *, auth: Auth = "good", age_s: float = 0.0) -> tuple[bytes, dict[str, str]]:
        given = {"good": basic_auth(USER, PASSWORD), "wrong": basic_auth(USER, "wrong-password"), "missing": {}}[auth]
        return body, {"content-type": "application/json", **given}


def event(name: str, email: str, custom_id: str | None, **fields: Any) -> dict[str, Any]:
    """One event as Mailjet posts it (Event API), `name` in Mailjet's words."""
    item: dict[str, Any] = {
        "event": name,
        "time": 1764318600,
        "MessageID": 288230376151711800,
        "Message_GUID": "1ab23cd4-e567-4890-a345-6789f0ab1c2d",
        "email": email,
        "mj_campaign_id": 7257,
        "mj_contact_id": 4,
        "customcampaign": "",
        "CustomID": custom_id or "",
        "Payload": "",
    }
    if name == "sent":
        item["smtp_reply"] = "sent (250 2.0.0 OK 1764318600 fa5si855896wjc.199 - gsmtp)"
    elif name == "bounce":
        permanent = fields.get("hard_bounce", True)
        item.update(
            blocked=False,
            hard_bounce=permanent,
            error_related_to="recipient",
            error="user unknown" if permanent else "quota exceeded",
        )
    elif name == "spam":
        item["source"] = "JMRPP"
    elif name == "unsub":
        item.update(mj_list_id=1, ip="127.0.0.1", geo="FR", agent="Mozilla/5.0")
    return {**item, **fields}


def _problems(state: FakeProviders, item: dict[str, Any]) -> list[dict[str, Any]]:
    """A message's validation errors, as Send API v3.1 reports them."""
    errors: list[dict[str, Any]] = []
    sender = item.get("From")
    sender_email = sender.get("Email") if isinstance(sender, dict) else None
    if not isinstance(sender_email, str) or not valid_email(sender_email):
        errors.append(_error("mj-0013", f'"{sender_email}" is an invalid email address.', related=["From.Email"]))
    elif sender_email.lower() in state.rejected_senders:
        errors.append(
            _error(
                "send-0008",
                f'"{sender_email}" is not an authorized sender email address for your account.',
                403,
                ["From"],
            )
        )
    to = item.get("To")
    if not isinstance(to, list) or not to:
        errors.append(_error("mj-0003", 'Missing mandatory property "To".', related=["To"]))
    elif len(to) > _MAX_ITEMS:
        errors.append(_error("send-0015", "Total number of recipients is over the limit.", related=["To"]))
    else:
        for index, recipient in enumerate(to):
            email = recipient.get("Email") if isinstance(recipient, dict) else None
            if not isinstance(email, str) or not valid_email(email) or email.lower() in state.rejected_recipients:
                errors.append(
                    _error("mj-0013", f'"{email}" is an invalid email address.', related=[f"To[{index}].Email"])
                )
    if not item.get("HTMLPart") and not item.get("TextPart"):
        errors.append(
            _error(
                "send-0003",
                'At least "HTMLPart", "TextPart" or "TemplateID" must be provided.',
                related=["HTMLPart", "TextPart"],
            )
        )
    custom_headers = item.get("Headers") or {}
    if not isinstance(custom_headers, dict) or not all(isinstance(value, str) for value in custom_headers.values()):
        errors.append(_error("mj-0004", 'Type mismatch. Expected type "object of strings".', related=["Headers"]))
    else:
        errors += [
            _error(
                "send-0011",
                f"The header {header!r} is forbidden; use its message property.",
                related=[f'Headers["{header}"]'],
            )
            for header in custom_headers
            if header.lower() in _FORBIDDEN_HEADERS
        ]
    for key in ("Subject", "CustomID"):
        if key in item and not isinstance(item[key], str):
            errors.append(_error("mj-0004", 'Type mismatch. Expected type "string".', related=[key]))
    return errors


FAKE = FakeMailjet()
