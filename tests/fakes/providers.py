"""Fake Brevo, SendGrid, Mailgun and Postmark servers speaking each real wire format.

`FakeProviders` holds the state (accepted messages, calls, scripted faults) and answers a request
with `handle()`; it knows nothing of transports. Two ways to reach it:

- `create_app(state)`: one Starlette app with the four providers' routes, served on a real socket
  by tests.fakes.server.running_fakes() (tests, benchmark);
- `state.transport()`: an httpx.MockTransport on the same logic, for in-process tests (no socket).

Paths, auth headers, request validation, success bodies, message ids and error bodies follow
/work/shared/reference/providers.md; items it marks UNCONFIRMED (Brevo's 429 body, Mailgun's 401
vs 403, Brevo's wording for a bad recipient) are plausible choices, noted where made. Handling is
cheap and never sleeps unless a delay is scripted, so a benchmark can drive it.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from email.utils import parseaddr
from typing import Any
from urllib.parse import parse_qsl

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PROVIDERS = ("brevo", "sendgrid", "mailgun", "postmark")
DEFAULT_KEYS = {
    "brevo": "xkeysib-fake-key",
    "sendgrid": "SG.fake-key",
    "mailgun": "key-fake",
    "postmark": "fake-server-token",
}
BREVO_PATH = "/v3/smtp/email"
SENDGRID_PATH = "/v3/mail/send"
_MAILGUN_PATH = re.compile(r"/v3/(?P<domain>[^/]+)/messages")
_JSON = {"content-type": "application/json"}


def urls(base: str) -> dict[str, str]:
    """The server URL of each provider when the fakes answer at `base` (as servers.DEFAULT_URLS)."""
    base = base.rstrip("/")
    return {"brevo": base + BREVO_PATH, "sendgrid": base + SENDGRID_PATH, "mailgun": base + "/v3", "postmark": base}


@dataclass(frozen=True)
class SentMessage:
    """One message a fake accepted, as the recipient would get it (per-recipient data applied)."""

    provider: str
    sender: str
    to: str
    subject: str
    html: str
    text: str
    headers: dict[str, str]
    custom_id: str | None
    message_id: str
    idempotency_key: str | None


@dataclass(frozen=True)
class Call:
    provider: str
    path: str
    status: int
    messages: int
    idempotency_key: str | None
    replayed: bool


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class _Fault:
    status: int | None
    retry_after_s: float | None = None
    delay_s: float = 0.0


# A provider handler's answer: the reply, the idempotency key it saw, the messages it accepted, and
# whether the reply is the stored answer to an earlier call with the same key.
_Handled = tuple[Reply, str | None, list[SentMessage], bool]


class _Refused(Exception):
    """A validation failure: the reply to send back."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


class FakeProviders:
    """Thread-safe state of the four fake providers. Script faults per provider, then inspect."""

    def __init__(
        self,
        api_keys: Mapping[str, str] | None = None,
        *,
        record_messages: bool = True,
        honour_idempotency: bool = True,
    ) -> None:
        """`honour_idempotency=False` makes a strict witness for fault tests: a repeated Brevo
        idempotency key is sent again and logged like any call, so a replay shows as a duplicate."""
        self.api_keys = {**DEFAULT_KEYS, **(api_keys or {})}
        self.record_messages = record_messages
        self.honour_idempotency = honour_idempotency
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.reset()

    # -- scripting ---------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._messages: list[SentMessage] = []
            self._calls: list[Call] = []
            self._counts = dict.fromkeys(PROVIDERS, 0)
            self._faults: dict[str, list[_Fault]] = {provider: [] for provider in PROVIDERS}
            self._replies: dict[str, Reply] = {}
            self.rejected_recipients: set[str] = set()
            self.rejected_senders: set[str] = set()

    def fail_next(
        self, provider: str, status: int, *, times: int = 1, after: int = 0, retry_after_s: float | None = None
    ) -> None:
        """After `after` normal calls, the next `times` calls to `provider` answer `status` with that
        provider's own error body (429 with its rate-limit headers; `retry_after_s` sets the hint,
        default 2 s where the provider always sends one; Mailgun and Postmark send `Retry-After`
        only when given)."""
        self._script(provider, after, [_Fault(status, retry_after_s) for _ in range(times)])

    def delay_next(self, provider: str, seconds: float, *, times: int = 1, after: int = 0) -> None:
        """The next `times` calls (after `after` normal ones) are processed — accepted, messages
        sent — and answered only after `seconds`: longer than the client's timeout, this is the
        ambiguous case. Through `transport()` the delay is not slept: the call raises
        httpx.ReadTimeout at once."""
        self._script(provider, after, [_Fault(None, delay_s=seconds) for _ in range(times)])

    def reject_recipient(self, email: str) -> None:
        """From now on every provider refuses this address, as its API does for an invalid one."""
        with self._lock:
            self.rejected_recipients.add(email.lower())

    def reject_sender(self, email: str) -> None:
        """From now on every provider refuses this sender (unverified identity / signature)."""
        with self._lock:
            self.rejected_senders.add(email.lower())

    def _script(self, provider: str, after: int, faults: list[_Fault]) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown fake provider {provider!r}")
        with self._lock:
            self._faults[provider].extend([_Fault(None) for _ in range(after)] + faults)

    # -- inspection --------------------------------------------------------------------------

    def messages(self, provider: str | None = None) -> list[SentMessage]:
        with self._lock:
            return [message for message in self._messages if provider in (None, message.provider)]

    def calls(self, provider: str | None = None) -> list[Call]:
        with self._lock:
            return [call for call in self._calls if provider in (None, call.provider)]

    def sent_count(self, provider: str | None = None) -> int:
        with self._lock:
            return sum(self._counts.values()) if provider is None else self._counts[provider]

    # -- serving -----------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """The answer to one request. `headers` must look keys up case-insensitively (httpx and
        Starlette headers do)."""
        provider, route = _route(path)
        if provider is None:
            return Reply(404, b'{"message": "Not Found"}', dict(_JSON))
        if method != "POST":
            return Reply(405, b'{"message": "Method Not Allowed"}', dict(_JSON))
        handler = getattr(self, f"_{provider}")
        with self._lock:
            key, accepted, replayed = None, [], False
            try:
                self._authenticate(provider, headers)
                fault = self._faults[provider].pop(0) if self._faults[provider] else None
                if fault is not None and fault.status is not None:
                    reply = _fault_reply(provider, fault)
                else:
                    reply, key, accepted, replayed = handler(route, headers, body)
                    if fault is not None and fault.delay_s:
                        reply = replace(reply, delay_s=fault.delay_s)
            except _Refused as refused:
                reply = refused.reply
            for message in accepted:
                self._counts[message.provider] += 1
            if self.record_messages:
                self._messages.extend(accepted)
            self._calls.append(Call(provider, path, reply.status, len(accepted), key, replayed))
            return reply

    def transport(self) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            reply = self.handle(request.method, request.url.path, request.headers, request.read())
            if reply.delay_s:
                raise httpx.ReadTimeout("fake provider: the answer comes after the client's timeout", request=request)
            return httpx.Response(reply.status, headers=reply.headers, content=reply.body)

        return httpx.MockTransport(handler)

    def _authenticate(self, provider: str, headers: Mapping[str, str]) -> None:
        expected = self.api_keys[provider]
        if provider == "brevo" and headers.get("api-key") != expected:
            raise _Refused(_json(401, {"code": "unauthorized", "message": "Key not found"}))
        if provider == "sendgrid" and headers.get("authorization") != f"Bearer {expected}":
            message = "The provided authorization grant is invalid, expired, or revoked"
            raise _Refused(_json(401, {"errors": [{"field": None, "message": message, "help": None}]}))
        if provider == "mailgun":
            token = base64.b64encode(f"api:{expected}".encode()).decode()
            if headers.get("authorization") != f"Basic {token}":
                # Mailgun documents 403 for bad credentials; live answers are also seen as 401 (UNCONFIRMED).
                raise _Refused(Reply(401, b"Forbidden", {"content-type": "text/plain"}))
        if provider == "postmark" and headers.get("x-postmark-server-token") != expected:
            message = "Request does not contain a valid Server token."
            raise _Refused(_json(401, {"ErrorCode": 10, "Message": message}))

    def _message_id(self, provider: str, domain: str = "fake.test") -> str:
        number = next(self._ids)
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        if provider == "brevo":
            return f"<{stamp}.{number}@smtp-relay.mailin.fr>"
        if provider == "sendgrid":
            return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")[:22]
        if provider == "mailgun":
            return f"<{stamp}.{number}.{uuid.uuid4().hex[:8]}@{domain}>"
        return str(uuid.uuid4())

    # -- Brevo -------------------------------------------------------------------------------

    def _brevo(self, route: str, headers: Mapping[str, str], body: bytes) -> _Handled:
        def bad(code: str, message: str) -> _Refused:
            return _Refused(_json(400, {"code": code, "message": message}))

        payload = _load_json(body, bad("bad_request", "Input must be a valid JSON object"))
        if not isinstance(payload, dict):
            raise bad("bad_request", "Input must be a valid JSON object")
        sender = payload.get("sender")
        sender_email = sender.get("email") if isinstance(sender, dict) else None
        if not sender_email:
            raise bad("missing_parameter", "sender is missing")
        if not _valid_email(sender_email) or sender_email.lower() in self.rejected_senders:
            raise bad("invalid_parameter", "valid sender email required")
        top_headers = payload.get("headers") or {}
        if not isinstance(top_headers, dict) or not all(isinstance(v, str) for v in top_headers.values()):
            raise bad("invalid_parameter", "headers must be an object of strings")
        top_headers = dict(top_headers)
        key = top_headers.pop("idempotencyKey", None) or top_headers.pop("Idempotency-Key", None)
        if key is not None and not _is_uuid(key):
            raise bad("invalid_parameter", "idempotencyKey must be a valid UUID")
        if self.honour_idempotency and key is not None and key in self._replies:
            return self._replies[key], key, [], True
        if not payload.get("htmlContent") and not payload.get("templateId"):
            raise bad("missing_parameter", "htmlContent is missing")
        versions = payload.get("messageVersions")
        if versions is None:
            if not payload.get("to"):
                raise bad("missing_parameter", "to is missing")
            versions = [{"to": payload["to"]}]
        elif not isinstance(versions, list) or not versions:
            raise bad("invalid_parameter", "messageVersions must be a non-empty array")
        if len(versions) > 1000:
            raise bad("out_of_range", "messageVersions can contain at most 1000 versions")
        if sum(len(version.get("to") or []) for version in versions if isinstance(version, dict)) > 2000:
            raise bad("out_of_range", "a request can have at most 2000 recipients")
        accepted: list[SentMessage] = []
        ids: list[str] = []
        for index, version in enumerate(versions):
            if not isinstance(version, dict) or not isinstance(version.get("to"), list) or not version["to"]:
                raise bad("missing_parameter", f"messageVersions[{index}].to is missing")
            if len(version["to"]) > 99:
                raise bad("out_of_range", f"messageVersions[{index}].to can have at most 99 recipients")
            subject = version.get("subject") or payload.get("subject")
            if not subject:
                raise bad("missing_parameter", "subject is missing")
            version_headers = {**top_headers, **(version.get("headers") or {})}
            message_id = self._message_id("brevo")
            ids.append(message_id)
            for recipient in version["to"]:
                email = recipient.get("email") if isinstance(recipient, dict) else None
                if not email or not _valid_email(email) or email.lower() in self.rejected_recipients:
                    # Brevo's exact wording for a bad recipient is UNCONFIRMED.
                    raise bad("invalid_parameter", f"email is not valid in to: {email}")
                accepted.append(
                    SentMessage(
                        "brevo",
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
        reply = _json(201, answer)
        if key is not None:
            self._replies[key] = reply
        return reply, key, accepted, False

    # -- SendGrid ----------------------------------------------------------------------------

    def _sendgrid(self, route: str, headers: Mapping[str, str], body: bytes) -> _Handled:
        def bad(message: str, field_name: str | None, status: int = 400) -> _Refused:
            return _Refused(_json(status, {"errors": [{"message": message, "field": field_name, "help": None}]}))

        payload = _load_json(body, bad("Bad Request", None))
        if not isinstance(payload, dict):
            raise bad("Bad Request", None)
        sender = payload.get("from")
        sender_email = sender.get("email") if isinstance(sender, dict) else None
        if not sender_email or not _valid_email(sender_email):
            raise bad(
                "The from object must be provided for every email send. It is an object that requires the email "
                "parameter, but may also contain a name parameter.",
                "from.email",
            )
        if sender_email.lower() in self.rejected_senders:
            raise bad(
                "The from address does not match a verified Sender Identity. Mail cannot be sent until this error "
                "is resolved.",
                "from",
                403,
            )
        personalizations = payload.get("personalizations")
        if not isinstance(personalizations, list) or not personalizations:
            raise bad("You must have at least one personalization.", "personalizations")
        if len(personalizations) > 1000:
            raise bad(
                "The personalization block is limited to 1000 personalizations per API request. You have provided "
                f"{len(personalizations)} personalizations. Please consider splitting this into multiple requests "
                "and resending your request.",
                "personalizations",
            )
        content = payload.get("content")
        if not isinstance(content, list) or not content:
            raise bad(
                "Unless a valid template_id is provided, the content parameter is required. There must be at least "
                "one defined content block.",
                "content",
            )
        types = [part.get("type") for part in content if isinstance(part, dict)]
        if "text/plain" in types and types.index("text/plain") != 0:
            raise bad(
                "If present, text/plain content must be first, followed by text/html, followed by any other content.",
                "content",
            )
        bodies = {part["type"]: str(part.get("value", "")) for part in content if isinstance(part, dict)}
        top_custom = payload.get("custom_args") or {}
        seen: set[str] = set()
        recipients = 0
        accepted: list[SentMessage] = []
        message_id = self._message_id("sendgrid")
        for index, each in enumerate(personalizations):
            to = each.get("to") if isinstance(each, dict) else None
            if not isinstance(to, list) or not to:
                raise bad(
                    "The to array is required for all personalization objects, and must have at least one "
                    "email object with a valid email address.",
                    f"personalizations.{index}.to",
                )
            subject = each.get("subject") or payload.get("subject")
            if not subject:
                raise bad(
                    "The subject is required. You can get around this requirement if you use a template with a "
                    "subject defined or if every personalization has a subject defined.",
                    "subject",
                )
            substitutions = each.get("substitutions") or {}
            if sum(len(k.encode()) + len(str(v).encode()) for k, v in substitutions.items()) > 10_000:
                raise bad(
                    "The total collective size of your substitutions may not exceed 10,000 bytes per "
                    "personalization object.",
                    f"personalizations.{index}.substitutions",
                )
            custom = {**top_custom, **(each.get("custom_args") or {})}
            if not all(isinstance(value, str) for value in custom.values()):
                raise bad("Invalid type. Expected: string, given: other.", f"personalizations.{index}.custom_args")
            for position, recipient in enumerate(to):
                email = recipient.get("email") if isinstance(recipient, dict) else None
                recipients += 1
                if not email or not _valid_email(email) or email.lower() in self.rejected_recipients:
                    raise bad("Does not contain a valid address.", f"personalizations.{index}.to.{position}.email")
                if email.lower() in seen:
                    raise bad(
                        "Each unique email address in the personalizations array should only be included once. "
                        f"You have included {email} more than once.",
                        f"personalizations.{index}.to.{position}.email",
                    )
                seen.add(email.lower())
                accepted.append(
                    SentMessage(
                        "sendgrid",
                        sender_email,
                        email,
                        _substitute(subject, substitutions),
                        _substitute(bodies.get("text/html", ""), substitutions),
                        _substitute(bodies.get("text/plain", ""), substitutions),
                        {**(payload.get("headers") or {}), **(each.get("headers") or {})},
                        custom.get("send_id"),
                        message_id,
                        None,
                    )
                )
        if recipients > 1000:
            raise bad("There is a limit of 1000 total recipients (to + cc + bcc) per request.", "personalizations")
        return Reply(202, b"", {"x-message-id": message_id}), None, accepted, False

    # -- Mailgun -----------------------------------------------------------------------------

    def _mailgun(self, route: str, headers: Mapping[str, str], body: bytes) -> _Handled:
        def bad(message: str, status: int = 400) -> _Refused:
            return _Refused(_json(status, {"message": message}))

        domain = route
        fields = form_fields(headers.get("content-type", ""), body)
        if fields is None:
            raise bad("Bad request: multipart/form-data or application/x-www-form-urlencoded expected")
        values: dict[str, list[str]] = {}
        for name, value in fields:
            values.setdefault(name, []).append(value)

        def one(name: str) -> str:
            return values.get(name, [""])[-1]

        sender = parseaddr(one("from"))[1]
        if not one("from"):
            raise bad("'from' parameter is missing")
        if not _valid_email(sender) or sender.lower() in self.rejected_senders:
            raise bad("'from' parameter is not a valid address. please check documentation")
        recipients = [address for value in values.get("to", []) for address in value.split(",") if address.strip()]
        if not recipients:
            raise bad("'to' parameter is missing")
        if len(recipients) > 1000:
            raise bad("Too many recipients: at most 1000 per request")
        if not one("text") and not one("html"):
            raise bad("Need at least one of 'text' or 'html' parameters specified")
        variables: dict[str, Any] = {}
        if "recipient-variables" in values:
            variables = _load_json(one("recipient-variables").encode(), bad("recipient-variables must be valid JSON"))
            if not isinstance(variables, dict):
                raise bad("recipient-variables must be a JSON object")
        message_id = self._message_id("mailgun", domain)
        accepted: list[SentMessage] = []
        for recipient in recipients:
            email = parseaddr(recipient)[1]
            if not _valid_email(email) or email.lower() in self.rejected_recipients:
                raise bad("'to' parameter is not a valid address. please check documentation")
            mine = variables.get(email, {}) if variables else {}

            def merge(text: str, mine: dict[str, Any] = mine) -> str:
                return _mailgun_substitute(text, mine) if variables else text

            custom_headers = {name[2:]: merge(one(name)) for name in values if name.startswith("h:")}
            user_variables = {name[2:]: merge(one(name)) for name in values if name.startswith("v:")}
            accepted.append(
                SentMessage(
                    "mailgun",
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
        return _json(200, {"id": message_id, "message": "Queued. Thank you."}), None, accepted, False

    # -- Postmark ----------------------------------------------------------------------------

    def _postmark(self, route: str, headers: Mapping[str, str], body: bytes) -> _Handled:
        def bad(code: int, message: str) -> _Refused:
            return _Refused(_json(422, {"ErrorCode": code, "Message": message}))

        if "application/json" not in headers.get("content-type", ""):
            raise bad(409, "JSON data required.")
        payload = _load_json(body, bad(402, "Received invalid JSON input."))
        batch = route == "batch"
        items = payload if batch else [payload]
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise bad(403, "Incompatible JSON input.")
        if batch and len(items) > 500:
            raise bad(410, "Too many batch messages (more than 500).")
        results = []
        accepted: list[SentMessage] = []
        for item in items:
            error = self._postmark_problem(item)
            if error is not None:
                if not batch:
                    raise bad(*error)
                results.append({"ErrorCode": error[0], "Message": error[1]})
                continue
            message_id = self._message_id("postmark")
            to = item["To"]
            custom_headers = {header["Name"]: header["Value"] for header in item.get("Headers") or []}
            accepted.append(
                SentMessage(
                    "postmark",
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
        return _json(200, results if batch else results[0]), None, accepted, False

    def _postmark_problem(self, item: dict[str, Any]) -> tuple[int, str] | None:
        sender = parseaddr(str(item.get("From") or ""))[1]
        if not _valid_email(sender):
            return 300, f"Invalid 'From' address: '{item.get('From') or ''}'."
        if sender.lower() in self.rejected_senders:
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
            if not _valid_email(email) or email.lower() in self.rejected_recipients:
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


def create_app(state: FakeProviders) -> Starlette:
    """One Starlette app answering the four providers' send endpoints from `state`."""

    async def endpoint(request: Request) -> Response:
        reply = state.handle(request.method, request.url.path, request.headers, await request.body())
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST", "PUT", "DELETE"])])


def _route(path: str) -> tuple[str | None, str]:
    if path == BREVO_PATH:
        return "brevo", ""
    if path == SENDGRID_PATH:
        return "sendgrid", ""
    if path == "/email":
        return "postmark", "single"
    if path == "/email/batch":
        return "postmark", "batch"
    match = _MAILGUN_PATH.fullmatch(path)
    if match:
        return "mailgun", match["domain"]
    return None, ""


def _fault_reply(provider: str, fault: _Fault) -> Reply:
    status = fault.status or 500
    if status == 429:
        return _rate_limited(provider, fault.retry_after_s)
    if status == 401:
        return {
            "brevo": _json(401, {"code": "unauthorized", "message": "Key not found"}),
            "sendgrid": _json(401, {"errors": [{"field": None, "message": "authorization required", "help": None}]}),
            "mailgun": Reply(401, b"Forbidden", {"content-type": "text/plain"}),
            "postmark": _json(401, {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."}),
        }[provider]
    if provider == "brevo" and status == 402:
        return _json(402, {"code": "not_enough_credits", "message": "Not enough credits to send this email"})
    words = "Internal Server Error" if status == 500 else "Service Unavailable" if status == 503 else f"HTTP {status}"
    if provider == "brevo":
        return _json(status, {"code": "internal_error" if status >= 500 else "bad_request", "message": words})
    if provider == "sendgrid":
        return _json(status, {"errors": [{"field": None, "message": words.lower(), "help": None}]})
    if provider == "mailgun":
        return _json(status, {"message": words})
    return _json(status, {"ErrorCode": 100 if status == 503 else status, "Message": words})


def _rate_limited(provider: str, retry_after_s: float | None) -> Reply:
    if provider == "brevo":
        reset = 2.0 if retry_after_s is None else retry_after_s
        headers = {
            "x-sib-ratelimit-limit": "1000",
            "x-sib-ratelimit-remaining": "0",
            "x-sib-ratelimit-reset": _num(reset),
        }
        # Brevo's 429 body is UNCONFIRMED; this shape follows its other errors.
        return _json(429, {"code": "too_many_requests", "message": "Too many requests"}, headers)
    if provider == "sendgrid":
        reset = 2.0 if retry_after_s is None else retry_after_s
        headers = {
            "x-ratelimit-limit": "600",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(int(time.time() + reset)),
        }
        return _json(429, {"errors": [{"field": None, "message": "too many requests"}]}, headers)
    headers = {} if retry_after_s is None else {"retry-after": _num(retry_after_s)}
    if provider == "mailgun":
        return _json(429, {"message": "Too many requests"}, headers)
    return _json(429, {"ErrorCode": 429, "Message": "Rate limit exceeded."}, headers)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps(payload), {**_JSON, **(headers or {})})


def _load_json(body: bytes, error: _Refused) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise error from None


_EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+")


def _valid_email(email: object) -> bool:
    return isinstance(email, str) and _EMAIL.fullmatch(email) is not None


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _substitute(text: str, substitutions: Mapping[str, Any]) -> str:
    for key, value in substitutions.items():
        text = text.replace(key, str(value))
    return text


_RECIPIENT_VARIABLE = re.compile(r"%recipient\.([A-Za-z0-9_\-]+)%")


def _mailgun_substitute(text: str, variables: Mapping[str, Any]) -> str:
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
