"""Fake SendGrid v3: `POST /v3/mail/send` with personalizations and legacy substitutions,
`Authorization: Bearer`; its event webhook signed with an ECDSA P-256 key made here."""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from campaign_pipelines.providers.sendgrid import SIGNATURE_HEADER, TIMESTAMP_HEADER
from tests.fakes.providers.base import (
    Auth,
    Fake,
    Handled,
    Refusal,
    Reply,
    SentMessage,
    json_reply,
    load_json,
    substitute,
    valid_email,
    words_for,
)

if TYPE_CHECKING:
    from tests.fakes.providers import FakeProviders

PATH = "/v3/mail/send"
KEY = ec.generate_private_key(ec.SECP256R1())
_KINDS = {
    "delivered": {"event": "delivered"},
    "hard_bounce": {"event": "bounce", "type": "bounce", "reason": "550 5.1.1 unknown user"},
    "soft_bounce": {"event": "bounce", "type": "blocked", "reason": "452 mailbox full"},
    "complaint": {"event": "spamreport"},
    "unsubscribe": {"event": "unsubscribe"},
}


def _bad(message: str, field_name: str | None, status: int = 400) -> Refusal:
    return Refusal(json_reply(status, {"errors": [{"message": message, "field": field_name, "help": None}]}))


class FakeSendGrid(Fake):
    name = "sendgrid"
    api_key = "SG.fake-key"
    refused_recipient_words = "Does not contain a valid address."

    def url(self, base: str) -> str:
        return base.rstrip("/") + PATH

    def route(self, path: str) -> str | None:
        return "" if path == PATH else None

    def authenticate(self, headers: Mapping[str, str], api_key: str) -> Reply | None:
        if headers.get("authorization") != f"Bearer {api_key}":
            message = "The provided authorization grant is invalid, expired, or revoked"
            return json_reply(401, {"errors": [{"field": None, "message": message, "help": None}]})
        return None

    def fault(self, status: int, retry_after_s: float | None) -> Reply:
        if status == 429:
            reset = 2.0 if retry_after_s is None else retry_after_s
            headers = {
                "x-ratelimit-limit": "600",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(int(time.time() + reset)),
            }
            return json_reply(429, {"errors": [{"field": None, "message": "too many requests"}]}, headers)
        if status == 401:
            return json_reply(401, {"errors": [{"field": None, "message": "authorization required", "help": None}]})
        return json_reply(status, {"errors": [{"field": None, "message": words_for(status).lower(), "help": None}]})

    def handle(self, state: FakeProviders, route: str, headers: Mapping[str, str], body: bytes) -> Handled:
        payload = load_json(body, _bad("Bad Request", None))
        if not isinstance(payload, dict):
            raise _bad("Bad Request", None)
        sender = payload.get("from")
        sender_email = sender.get("email") if isinstance(sender, dict) else None
        if not sender_email or not valid_email(sender_email):
            raise _bad(
                "The from object must be provided for every email send. It is an object that requires the email "
                "parameter, but may also contain a name parameter.",
                "from.email",
            )
        if sender_email.lower() in state.rejected_senders:
            raise _bad(
                "The from address does not match a verified Sender Identity. Mail cannot be sent until this error "
                "is resolved.",
                "from",
                403,
            )
        personalizations = payload.get("personalizations")
        if not isinstance(personalizations, list) or not personalizations:
            raise _bad("You must have at least one personalization.", "personalizations")
        if len(personalizations) > 1000:
            raise _bad(
                "The personalization block is limited to 1000 personalizations per API request. You have provided "
                f"{len(personalizations)} personalizations. Please consider splitting this into multiple requests "
                "and resending your request.",
                "personalizations",
            )
        content = payload.get("content")
        if not isinstance(content, list) or not content:
            raise _bad(
                "Unless a valid template_id is provided, the content parameter is required. There must be at least "
                "one defined content block.",
                "content",
            )
        types = [part.get("type") for part in content if isinstance(part, dict)]
        if "text/plain" in types and types.index("text/plain") != 0:
            raise _bad(
                "If present, text/plain content must be first, followed by text/html, followed by any other content.",
                "content",
            )
        bodies = {part["type"]: str(part.get("value", "")) for part in content if isinstance(part, dict)}
        top_custom = payload.get("custom_args") or {}
        seen: set[str] = set()
        recipients = 0
        accepted: list[SentMessage] = []
        message_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")[:22]
        for index, each in enumerate(personalizations):
            to = each.get("to") if isinstance(each, dict) else None
            if not isinstance(to, list) or not to:
                raise _bad(
                    "The to array is required for all personalization objects, and must have at least one "
                    "email object with a valid email address.",
                    f"personalizations.{index}.to",
                )
            subject = each.get("subject") or payload.get("subject")
            if not subject:
                raise _bad(
                    "The subject is required. You can get around this requirement if you use a template with a "
                    "subject defined or if every personalization has a subject defined.",
                    "subject",
                )
            substitutions = each.get("substitutions") or {}
            if sum(len(k.encode()) + len(str(v).encode()) for k, v in substitutions.items()) > 10_000:
                raise _bad(
                    "The total collective size of your substitutions may not exceed 10,000 bytes per "
                    "personalization object.",
                    f"personalizations.{index}.substitutions",
                )
            custom = {**top_custom, **(each.get("custom_args") or {})}
            if not all(isinstance(value, str) for value in custom.values()):
                raise _bad("Invalid type. Expected: string, given: other.", f"personalizations.{index}.custom_args")
            for position, recipient in enumerate(to):
                email = recipient.get("email") if isinstance(recipient, dict) else None
                recipients += 1
                if not email or not valid_email(email) or email.lower() in state.rejected_recipients:
                    raise _bad("Does not contain a valid address.", f"personalizations.{index}.to.{position}.email")
                if email.lower() in seen:
                    raise _bad(
                        "Each unique email address in the personalizations array should only be included once. "
                        f"You have included {email} more than once.",
                        f"personalizations.{index}.to.{position}.email",
                    )
                seen.add(email.lower())
                accepted.append(
                    SentMessage(
                        self.name,
                        sender_email,
                        email,
                        substitute(subject, substitutions),
                        substitute(bodies.get("text/html", ""), substitutions),
                        substitute(bodies.get("text/plain", ""), substitutions),
                        {**(payload.get("headers") or {}), **(each.get("headers") or {})},
                        custom.get("send_id"),
                        message_id,
                        None,
                    )
                )
        if recipients > 1000:
            raise _bad("There is a limit of 1000 total recipients (to + cc + bcc) per request.", "personalizations")
        return Handled(Reply(202, b"", {"x-message-id": message_id}), accepted)

    # -- webhooks ----------------------------------------------------------------------------

    def webhook_environment(self) -> dict[str, str]:
        return {"SENDGRID_WEBHOOK_PUBLIC_KEY": der_base64(KEY)}

    def webhook_event(self, kind: str, email: str, send_id: str | None) -> Any:
        fields = dict(_KINDS[kind])
        return [event(fields.pop("event"), email, send_id, **fields)]

    def webhook_request(self, body: bytes, *, auth: Auth = "good", age_s: float = 0.0) -> tuple[bytes, dict[str, str]]:
        timestamp = str(int(time.time() - age_s))
        if auth == "missing":
            return body, {"content-type": "application/json"}
        key = KEY if auth == "good" else ec.generate_private_key(ec.SECP256R1())
        return body, headers(body, key, timestamp)


def der_base64(key: ec.EllipticCurvePrivateKey) -> str:
    """The verification key as SendGrid's settings show it."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def headers(body: bytes, key: ec.EllipticCurvePrivateKey = KEY, timestamp: str | None = None) -> dict[str, str]:
    """The headers SendGrid signs a webhook body with."""
    timestamp = timestamp or str(int(time.time()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "content-type": "application/json",
        SIGNATURE_HEADER: base64.b64encode(signature).decode(),
        TIMESTAMP_HEADER: timestamp,
    }


def event(event: str, email: str, send_id: str | None, **fields: Any) -> dict[str, Any]:
    """One event as SendGrid posts it in its batches (providers.md §3.7), `event` in its words."""
    item = {
        "email": email,
        "timestamp": 1764318600,
        "event": event,
        "sg_event_id": secrets.token_urlsafe(16),
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "category": ["black-friday"],
        **fields,
    }
    if send_id is not None:
        item["send_id"] = send_id  # custom_args come back merged at the top level
    return item


FAKE = FakeSendGrid()
