"""Fake Brevo: `POST /v3/smtp/email` (single and `messageVersions`), `api-key` header, its
idempotency key honoured for 30 minutes; webhooks authenticated with a bearer token.

Brevo's 429 body and its wording for a bad recipient are UNCONFIRMED (providers.md §2): plausible
choices following its other errors.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tests.fakes.providers.base import (
    Auth,
    Fake,
    Handled,
    Refusal,
    Reply,
    SentMessage,
    is_uuid,
    json_reply,
    load_json,
    number,
    valid_email,
    words_for,
)

if TYPE_CHECKING:
    from tests.fakes.providers import FakeProviders

PATH = "/v3/smtp/email"
TOKEN = secrets.token_urlsafe(24)
# Our event kinds as Brevo names them (it also sends "complaint" and "unsubscribe").
_KINDS = {
    "delivered": "delivered",
    "hard_bounce": "hard_bounce",
    "soft_bounce": "soft_bounce",
    "complaint": "spam",
    "unsubscribe": "unsubscribed",
}


def _bad(code: str, message: str) -> Refusal:
    return Refusal(json_reply(400, {"code": code, "message": message}))


class FakeBrevo(Fake):
    name = "brevo"
    api_key = "xkeysib-fake-key"
    refused_recipient_words = "email is not valid"

    def url(self, base: str) -> str:
        return base.rstrip("/") + PATH

    def route(self, path: str) -> str | None:
        return "" if path == PATH else None

    def authenticate(self, headers: Mapping[str, str], api_key: str) -> Reply | None:
        if headers.get("api-key") != api_key:
            return json_reply(401, {"code": "unauthorized", "message": "Key not found"})
        return None

    def fault(self, status: int, retry_after_s: float | None) -> Reply:
        if status == 429:
            reset = 2.0 if retry_after_s is None else retry_after_s
            headers = {
                "x-sib-ratelimit-limit": "1000",
                "x-sib-ratelimit-remaining": "0",
                "x-sib-ratelimit-reset": number(reset),
            }
            # Brevo's 429 body is UNCONFIRMED; this shape follows its other errors.
            return json_reply(429, {"code": "too_many_requests", "message": "Too many requests"}, headers)
        if status == 401:
            return json_reply(401, {"code": "unauthorized", "message": "Key not found"})
        if status == 402:
            return json_reply(402, {"code": "not_enough_credits", "message": "Not enough credits to send this email"})
        code = "internal_error" if status >= 500 else "bad_request"
        return json_reply(status, {"code": code, "message": words_for(status)})

    def handle(self, state: FakeProviders, route: str, headers: Mapping[str, str], body: bytes) -> Handled:
        payload = load_json(body, _bad("bad_request", "Input must be a valid JSON object"))
        if not isinstance(payload, dict):
            raise _bad("bad_request", "Input must be a valid JSON object")
        sender = payload.get("sender")
        sender_email = sender.get("email") if isinstance(sender, dict) else None
        if not sender_email:
            raise _bad("missing_parameter", "sender is missing")
        if not valid_email(sender_email) or sender_email.lower() in state.rejected_senders:
            raise _bad("invalid_parameter", "valid sender email required")
        top_headers = payload.get("headers") or {}
        if not isinstance(top_headers, dict) or not all(isinstance(v, str) for v in top_headers.values()):
            raise _bad("invalid_parameter", "headers must be an object of strings")
        top_headers = dict(top_headers)
        key = top_headers.pop("idempotencyKey", None) or top_headers.pop("Idempotency-Key", None)
        if key is not None and not is_uuid(key):
            raise _bad("invalid_parameter", "idempotencyKey must be a valid UUID")
        if state.honour_idempotency and key is not None and key in state.replies:
            return Handled(state.replies[key], key=key, replayed=True)
        if not payload.get("htmlContent") and not payload.get("templateId"):
            raise _bad("missing_parameter", "htmlContent is missing")
        versions = payload.get("messageVersions")
        if versions is None:
            if not payload.get("to"):
                raise _bad("missing_parameter", "to is missing")
            versions = [{"to": payload["to"]}]
        elif not isinstance(versions, list) or not versions:
            raise _bad("invalid_parameter", "messageVersions must be a non-empty array")
        if len(versions) > 1000:
            raise _bad("out_of_range", "messageVersions can contain at most 1000 versions")
        if sum(len(version.get("to") or []) for version in versions if isinstance(version, dict)) > 2000:
            raise _bad("out_of_range", "a request can have at most 2000 recipients")
        accepted: list[SentMessage] = []
        ids: list[str] = []
        for index, version in enumerate(versions):
            if not isinstance(version, dict) or not isinstance(version.get("to"), list) or not version["to"]:
                raise _bad("missing_parameter", f"messageVersions[{index}].to is missing")
            if len(version["to"]) > 99:
                raise _bad("out_of_range", f"messageVersions[{index}].to can have at most 99 recipients")
            subject = version.get("subject") or payload.get("subject")
            if not subject:
                raise _bad("missing_parameter", "subject is missing")
            version_headers = {**top_headers, **(version.get("headers") or {})}
            message_id = f"<{time.strftime('%Y%m%d%H%M%S', time.gmtime())}.{state.next_number()}@smtp-relay.mailin.fr>"
            ids.append(message_id)
            for recipient in version["to"]:
                email = recipient.get("email") if isinstance(recipient, dict) else None
                if not email or not valid_email(email) or email.lower() in state.rejected_recipients:
                    # Brevo's exact wording for a bad recipient is UNCONFIRMED.
                    raise _bad("invalid_parameter", f"email is not valid in to: {email}")
                accepted.append(
                    SentMessage(
                        self.name,
                        sender_email,
                        email,
                        subject,
                        version.get("htmlContent") or payload.get("htmlContent") or "",
                        version.get("textContent") or payload.get("textContent") or "",
                        version_headers,
                        version_headers.get("X-Mailin-custom"),
                        message_id,
                        key,
                    )
                )
        answer = {"messageIds": ids} if "messageVersions" in payload else {"messageId": ids[0]}
        reply = json_reply(201, answer)
        if key is not None:
            state.replies[key] = reply
        return Handled(reply, accepted, key)

    # -- webhooks ----------------------------------------------------------------------------

    def webhook_environment(self) -> dict[str, str]:
        return {"BREVO_WEBHOOK_TOKEN": TOKEN}

    def webhook_event(self, kind: str, email: str, send_id: str | None) -> Any:
        return event(_KINDS[kind], email, send_id)

    def webhook_request(self, body: bytes, *, auth: Auth = "good", age_s: float = 0.0) -> tuple[bytes, dict[str, str]]:
        given = {"good": headers(), "wrong": headers(secrets.token_urlsafe(24)), "missing": {}}[auth]
        return body, {"content-type": "application/json", **given}


def headers(token: str = TOKEN) -> dict[str, str]:
    """The bearer token Brevo sends, as configured on its webhook."""
    return {"authorization": f"Bearer {token}"}


def event(event: str, email: str, custom: str | None, **fields: Any) -> dict[str, Any]:
    """One event as Brevo posts it (providers.md §2.7), `event` in Brevo's words."""
    item = {
        "event": event,
        "email": email,
        "id": 901234,
        "date": "2025-11-28 09:30:00",
        "ts": 1764318600,
        "message-id": "<202511280830.12345678901@smtp-relay.mailin.fr>",
        "ts_event": 1764318600,
        "ts_epoch": 1764318600123,
        "subject": "Offres Exclusives",
        "tag": "",
        "sending_ip": "185.41.28.109",
        "tags": [],
        **fields,
    }
    if custom is not None:
        item["X-Mailin-custom"] = custom
    return item


FAKE = FakeBrevo()
