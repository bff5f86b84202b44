"""Fake Resend: `POST /emails/batch` (strict or permissive batch validation), `Authorization:
Bearer`, its `Idempotency-Key` honoured (a repeat answers the first answer, another body with the
same key 409); webhooks signed as Svix does, with a signing secret made here.

Resend's wording of a per-email validation error and its answer to a permissive batch in which
no email is valid are UNCONFIRMED (docs/providers.md, Resend): plausible choices following its
documented errors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

from campaign_pipelines.providers.resend import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
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

PATH = "/emails/batch"
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
INVALID_TO = (
    "Invalid `to` field. The email address needs to follow the `email@example.com` or"
    " `Name <email@example.com>` format."
)
_TAG = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Each body seen with an idempotency key, to tell a repeat from another request under the same key.
_BODIES: dict[str, bytes] = {}
_KINDS = {
    "delivered": ("email.delivered", None),
    "hard_bounce": ("email.bounced", {"type": "Permanent", "subType": "General", "message": "550 5.1.1 unknown user"}),
    "soft_bounce": ("email.bounced", {"type": "Transient", "subType": "MailboxFull", "message": "452 mailbox full"}),
    "complaint": ("email.complained", None),
}


def error(status: int, name: str, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    """An error as Resend answers it (api-reference/errors)."""
    return json_reply(status, {"statusCode": status, "message": message, "name": name}, headers)


def _bad(status: int, name: str, message: str) -> Refusal:
    return Refusal(error(status, name, message))


class FakeResend(Fake):
    name = "resend"
    api_key = "re_fake_key"
    refused_recipient_words = "Invalid `to` field"
    partial_batches = True
    # Resend's unsubscribes are its contacts' changes: they carry the address, no tag of the email.
    unmatched_kinds = frozenset({"unsubscribe"})

    def url(self, base: str) -> str:
        return base.rstrip("/") + PATH

    def route(self, path: str) -> str | None:
        return "" if path == PATH else None

    def authenticate(self, headers: Mapping[str, str], api_key: str) -> Reply | None:
        given = headers.get("authorization")
        if not given:
            return error(401, "missing_api_key", "Missing API key in the authorization header.")
        # The sending endpoints answer a key that does not exist this way (api-reference/errors).
        return None if given == f"Bearer {api_key}" else error(401, "validation_error", "API key is invalid")

    def fault(self, status: int, retry_after_s: float | None) -> Reply:
        if status == 429:
            wait = 1.0 if retry_after_s is None else retry_after_s
            headers = {
                "ratelimit-limit": "2",
                "ratelimit-remaining": "0",
                "ratelimit-reset": number(wait),
                "retry-after": number(wait),
            }
            message = "Too many requests. You can only make 2 requests per second."
            return error(429, "rate_limit_exceeded", message, headers)
        if status == 401:
            return error(401, "missing_api_key", "Missing API key in the authorization header.")
        if status >= 500:
            return error(status, "application_error", words_for(status))
        return error(status, "validation_error", words_for(status))

    def handle(self, state: FakeProviders, route: str, headers: Mapping[str, str], body: bytes) -> Handled:
        key = headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= 256:
            raise _bad(400, "invalid_idempotency_key", "The key must be between 1-256 chars.")
        if state.honour_idempotency and key is not None and key in state.replies:
            if _BODIES.get(key) != hashlib.sha256(body).digest():
                raise _bad(
                    409, "invalid_idempotent_request", "Same idempotency key used with a different request payload."
                )
            return Handled(state.replies[key], key=key, replayed=True)
        emails = load_json(body, _bad(422, "validation_error", "Invalid JSON body."))
        if not isinstance(emails, list) or not emails:
            raise _bad(422, "validation_error", "The request body must be an array of emails.")
        if len(emails) > 100:
            raise _bad(422, "validation_error", "Too many emails in the batch: the most is 100.")
        permissive = headers.get("x-batch-validation", "strict") == "permissive"
        accepted: list[SentMessage] = []
        ids: list[dict[str, str]] = []
        errors: list[dict[str, Any]] = []
        for index, email in enumerate(emails):
            sender = _sender(state, email)
            problem = _problem(state, email)
            if problem is not None and not permissive:
                raise _bad(422, "validation_error", problem)
            if problem is not None:
                errors.append({"index": index, "message": problem})
                continue
            message_id = str(uuid.uuid4())
            ids.append({"id": message_id})
            tags = {tag["name"]: tag["value"] for tag in email.get("tags") or []}
            html = email.get("html") or ""
            accepted.append(
                SentMessage(
                    self.name,
                    sender,
                    parseaddr(email["to"][0] if isinstance(email["to"], list) else email["to"])[1],
                    email["subject"],
                    html,
                    # Without `text`, Resend writes one from the HTML; "" opts out.
                    email["text"] if "text" in email else re.sub(r"<[^>]*>", "", html),
                    dict(email.get("headers") or {}),
                    tags.get("send_id"),
                    message_id,
                    key,
                )
            )
        reply = json_reply(200, {"data": ids, "errors": errors} if permissive else {"data": ids})
        if key is not None:
            state.replies[key] = reply
            _BODIES[key] = hashlib.sha256(body).digest()
        return Handled(reply, accepted, key)

    # -- webhooks ----------------------------------------------------------------------------

    def webhook_environment(self) -> dict[str, str]:
        return {"RESEND_WEBHOOK_SECRET": SECRET}

    def webhook_event(self, kind: str, email: str, send_id: str | None) -> Any:
        if kind == "unsubscribe":
            return contact_updated(email)
        event_type, bounce = _KINDS[kind]
        return event(event_type, email, send_id, **({"bounce": bounce} if bounce else {}))

    def webhook_request(self, body: bytes, *, auth: Auth = "good", age_s: float = 0.0) -> tuple[bytes, dict[str, str]]:
        if auth == "missing":
            return body, {"content-type": "application/json"}
        secret = SECRET if auth == "good" else "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        return body, headers(body, secret=secret, timestamp=str(int(time.time() - age_s)))


def headers(
    body: bytes, *, secret: str = SECRET, timestamp: str | None = None, event_id: str | None = None
) -> dict[str, str]:
    """The headers Svix signs a delivery of `body` with."""
    event_id = event_id or f"msg_{secrets.token_urlsafe(18)}"
    timestamp = timestamp or str(int(time.time()))
    return {
        "content-type": "application/json",
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: "v1," + signature(body, secret, event_id, timestamp),
    }


def signature(body: bytes, secret: str, event_id: str, timestamp: str) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return base64.b64encode(hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()).decode()


def event(event_type: str, email: str, send_id: str | None, **data: Any) -> dict[str, Any]:
    """One email event as Resend posts it (docs/providers.md, Resend), `event_type` in its words."""
    return {
        "type": event_type,
        "created_at": "2025-11-28T08:30:00.123Z",
        "data": {
            "created_at": "2025-11-28T08:29:58.456789+00:00",
            "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
            "from": "Acme News <news@example.com>",
            "to": [email],
            "subject": "Offres Exclusives",
            "headers": [{"name": "List-Unsubscribe", "value": "<https://t.example.com/u/tok1>"}],
            "tags": {} if send_id is None else {"send_id": send_id},
            **data,
        },
    }


def contact_updated(email: str, *, unsubscribed: bool = True) -> dict[str, Any]:
    """A contact's change, as Resend posts it when a recipient unsubscribes (changelog: new contact webhooks)."""
    return {
        "type": "contact.updated",
        "created_at": "2025-11-28T08:31:00.000Z",
        "data": {
            "id": "e169aa45-1ecf-4183-9955-b1499d5701d3",
            "audience_id": "78261eea-8f8b-4381-83c6-79fa7120f1cf",
            "created_at": "2025-07-10T15:11:04.110Z",
            "updated_at": "2025-11-28T08:31:00.000Z",
            "email": email,
            "first_name": "",
            "last_name": "",
            "unsubscribed": unsubscribed,
        },
    }


def _sender(state: FakeProviders, email: Any) -> str:
    """The sender's address; an unverified domain refuses the whole call, as Resend's 403 does."""
    sender = parseaddr(str(email.get("from") or "")) if isinstance(email, dict) else ("", "")
    address = sender[1]
    if valid_email(address) and address.lower() in state.rejected_senders:
        domain = address.rpartition("@")[2]
        raise _bad(
            403,
            "validation_error",
            f"The {domain} domain is not verified. Please, add and verify your domain on https://resend.com/domains",
        )
    return address


def _problem(state: FakeProviders, email: Any) -> str | None:
    """Why Resend could not create this email, or None."""
    if not isinstance(email, dict):
        return "The email must be an object."
    if not valid_email(parseaddr(str(email.get("from") or ""))[1]):
        return INVALID_TO.replace("`to`", "`from`")
    to = email.get("to")
    recipients = to if isinstance(to, list) else [to]
    if not recipients or len(recipients) > 50:
        return "The `to` field must have between 1 and 50 recipients."
    for recipient in recipients:
        address = parseaddr(str(recipient or ""))[1]
        if not valid_email(address) or address.lower() in state.rejected_recipients:
            return INVALID_TO
    if not isinstance(email.get("subject"), str) or not email["subject"]:
        return "Missing `subject` field."
    if not email.get("html") and not email.get("text"):
        return "Missing `html` or `text` field."
    custom = email.get("headers") or {}
    if not isinstance(custom, dict) or not all(isinstance(value, str) for value in custom.values()):
        return "The `headers` field must be an object of strings."
    tags = email.get("tags") or []
    if not isinstance(tags, list) or not all(
        isinstance(tag, dict) and all(_TAG.fullmatch(str(tag.get(part) or "")) for part in ("name", "value"))
        for tag in tags
    ):
        return "Tags should only contain ASCII letters, numbers, underscores, or dashes."
    return None


FAKE = FakeResend()
