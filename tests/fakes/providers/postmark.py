"""Fake Postmark: `POST /email` and `/email/batch` (per-message verdicts), header
`X-Postmark-Server-Token`; its webhooks authenticated with basic auth."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Mapping
from email.utils import parseaddr
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

USER, PASSWORD = f"hooks-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
_ROUTES = {"/email": "single", "/email/batch": "batch"}
_BAD_TOKEN = {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."}


def _bad(code: int, message: str) -> Refusal:
    return Refusal(json_reply(422, {"ErrorCode": code, "Message": message}))


class FakePostmark(Fake):
    name = "postmark"
    api_key = "fake-server-token"
    refused_recipient_words = "Invalid 'To' address"
    partial_batches = True

    def url(self, base: str) -> str:
        return base.rstrip("/")

    def route(self, path: str) -> str | None:
        return _ROUTES.get(path)

    def authenticate(self, headers: Mapping[str, str], api_key: str) -> Reply | None:
        return None if headers.get("x-postmark-server-token") == api_key else json_reply(401, _BAD_TOKEN)

    def fault(self, status: int, retry_after_s: float | None) -> Reply:
        if status == 429:
            headers = {} if retry_after_s is None else {"retry-after": number(retry_after_s)}
            return json_reply(429, {"ErrorCode": 429, "Message": "Rate limit exceeded."}, headers)
        if status == 401:
            return json_reply(401, _BAD_TOKEN)
        return json_reply(status, {"ErrorCode": 100 if status == 503 else status, "Message": words_for(status)})

    def handle(self, state: FakeProviders, route: str, headers: Mapping[str, str], body: bytes) -> Handled:
        if "application/json" not in headers.get("content-type", ""):
            raise _bad(409, "JSON data required.")
        payload = load_json(body, _bad(402, "Received invalid JSON input."))
        batch = route == "batch"
        items = payload if batch else [payload]
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise _bad(403, "Incompatible JSON input.")
        if batch and len(items) > 500:
            raise _bad(410, "Too many batch messages (more than 500).")
        results = []
        accepted: list[SentMessage] = []
        for item in items:
            error = _problem(state, item)
            if error is not None:
                if not batch:
                    raise _bad(*error)
                results.append({"ErrorCode": error[0], "Message": error[1]})
                continue
            message_id = str(uuid.uuid4())
            to = item["To"]
            custom_headers = {header["Name"]: header["Value"] for header in item.get("Headers") or []}
            accepted.append(
                SentMessage(
                    self.name,
                    parseaddr(item["From"])[1],
                    parseaddr(to)[1],
                    item.get("Subject") or "",
                    item.get("HtmlBody") or "",
                    item.get("TextBody") or "",
                    custom_headers,
                    (item.get("Metadata") or {}).get("send_id"),
                    message_id,
                    None,
                )
            )
            submitted = time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime())
            results.append(
                {"To": to, "SubmittedAt": submitted, "MessageID": message_id, "ErrorCode": 0, "Message": "OK"}
            )
        return Handled(json_reply(200, results if batch else results[0]), accepted)

    # -- webhooks ----------------------------------------------------------------------------

    def webhook_environment(self) -> dict[str, str]:
        return {"POSTMARK_WEBHOOK_USER": USER, "POSTMARK_WEBHOOK_PASSWORD": PASSWORD}

    def webhook_event(self, kind: str, email: str, send_id: str | None) -> Any:
        metadata = {} if send_id is None else {"send_id": send_id}
        if kind == "delivered":
            return {
                "RecordType": "Delivery",
                "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
                "Recipient": email,
                "DeliveredAt": "2025-11-28T08:30:00Z",
                "Details": "smtp;250 2.0.0 OK",
                "Metadata": metadata,
            }
        if kind == "unsubscribe":
            return {
                "RecordType": "SubscriptionChange",
                "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
                "ChangedAt": "2025-11-28T08:31:00Z",
                "Recipient": email,
                "SuppressSending": True,
                "SuppressionReason": "ManualSuppression",
                "Metadata": metadata,
            }
        if kind == "complaint":
            return {**bounce("SpamComplaint", email, send_id), "RecordType": "SpamComplaint"}
        return bounce("HardBounce" if kind == "hard_bounce" else "SoftBounce", email, send_id, "smtp;550 5.1.1")

    def webhook_request(self, body: bytes, *, auth: Auth = "good", age_s: float = 0.0) -> tuple[bytes, dict[str, str]]:
        given = {"good": basic_auth(USER, PASSWORD), "wrong": basic_auth(USER, "wrong-password"), "missing": {}}[auth]
        return body, {"content-type": "application/json", **given}


def bounce(bounce_type: str, email: str, send_id: str | None, details: str = "") -> dict[str, Any]:
    """A Bounce record as Postmark posts it (providers.md §5.7)."""
    return {
        "RecordType": "Bounce",
        "MessageStream": "broadcast",
        "ID": 4323372036854775807,
        "Type": bounce_type,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {} if send_id is None else {"send_id": send_id},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": details,
        "Email": email,
        "From": "offres@mondomaine.com",
        "BouncedAt": "2025-11-28T08:30:00.1234567Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Offres Exclusives",
    }


def _problem(state: FakeProviders, item: dict[str, Any]) -> tuple[int, str] | None:
    sender = parseaddr(str(item.get("From") or ""))[1]
    if not valid_email(sender):
        return 300, f"Invalid 'From' address: '{item.get('From') or ''}'."
    if sender.lower() in state.rejected_senders:
        return 400, (
            f"The 'From' address you supplied ({sender}) is not a Sender Signature on your account. Please add "
            "and confirm this address in order to be able to use it in the 'From' field of your messages."
        )
    to = [address for address in str(item.get("To") or "").split(",") if address.strip()]
    if not to:
        return 300, "Zero recipients specified"
    if len(to) > 50:
        return 300, "You may not have more than 50 total recipients in an email."
    for address in to:
        email = parseaddr(address)[1]
        if not valid_email(email) or email.lower() in state.rejected_recipients:
            return 300, f"Invalid 'To' address: '{address.strip()}'."
    if not item.get("HtmlBody") and not item.get("TextBody"):
        return 300, "Provide either email TextBody or HtmlBody or both."
    custom_headers = item.get("Headers") or []
    if not isinstance(custom_headers, list) or not all(
        isinstance(header, dict) and {"Name", "Value"} <= header.keys() for header in custom_headers
    ):
        return 300, "Headers must be a list of {Name, Value} objects."
    metadata = item.get("Metadata") or {}
    if not isinstance(metadata, dict) or not all(isinstance(value, str) for value in metadata.values()):
        return 300, "Metadata must be an object of string values."
    return None


FAKE = FakePostmark()
