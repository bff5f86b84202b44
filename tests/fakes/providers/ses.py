"""Fake Amazon SES v2: `POST /v2/email/outbound-emails` (SendEmail, simple content) and
`/v2/email/outbound-bulk-emails` (SendBulkEmail, inline template, one status per destination),
their SigV4 signature checked with botocore against the fake's key pair; REST-JSON errors with
`x-amzn-ErrorType` and `x-amzn-RequestId`. Its events are SNS notifications signed with a test
certificate, which a small HTTP server on loopback serves (with the subscription confirmations);
the webhook accepts that host because `webhook_environment()` names it in SES_SNS_TEST_CERT_HOST
(set in this process's environment, which the webhook reads when configured).

Plausible, UNCONFIRMED choices: an unverified recipient is refused per destination in a bulk call
(MESSAGE_REJECTED) and by a 400 MessageRejected alone; a scripted 429 carries `Retry-After` only
when the test gives a hint (SES documents none). Like SES, a destination whose template data lacks
a variable is accepted (the Rendering Failure comes later) and never delivered.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from campaign_pipelines.providers.ses.webhook import TEST_CERT_HOST_ENV, TOPICS_ENV
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
)

if TYPE_CHECKING:
    from tests.fakes.providers import FakeProviders

REGION = "us-east-1"
KEY_ID = "AKIAFAKE0000EXAMPLE1"
SECRET = "fake/Secret+Key/0000000000000000000000000"
PATHS = {"/v2/email/outbound-emails": "single", "/v2/email/outbound-bulk-emails": "bulk"}
TOPIC_ARN = f"arn:aws:sns:{REGION}:123456789012:ses-campaign-events"
CERT_PATH = "/SimpleNotificationService-fake.pem"
CONFIRM_PATH = "/confirm"
_TAG = re.compile(r"[A-Za-z0-9_-]{1,256}")
_VARIABLE = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")
_MAX_HEADERS = 15
_MAX_TEMPLATE_DATA = 262_144
_INVALID_TOKEN = "The security token included in the request is invalid."


def _key_and_certificate() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


KEY, CERTIFICATE = _key_and_certificate()
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class CertificateServer:
    """SNS's side of the webhook: the signing certificate and the SubscribeURL, on loopback."""

    def __init__(self) -> None:
        # The paths fetched, in order: certificates and confirmations.
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        """Its host:port, serving from the first use on (a daemon thread, for the session)."""
        with self._lock:
            if self._server is None:
                self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
                threading.Thread(target=self._server.serve_forever, name="fake-sns", daemon=True).start()
            return f"127.0.0.1:{self._server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                requests.append(self.path)
                if self.path == CERT_PATH:
                    self._answer(200, CERTIFICATE)
                elif self.path.startswith(CONFIRM_PATH + "?"):
                    self._answer(200, b"<ConfirmSubscriptionResponse/>")
                else:
                    self._answer(404, b"Not Found")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


SNS = CertificateServer()


def _error(status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    # REST-JSON: the type in x-amzn-ErrorType, the words in the body's message.
    given = {"x-amzn-errortype": f"{kind}:", "x-amzn-requestid": str(uuid.uuid4()), **(headers or {})}
    return json_reply(status, {"message": message}, given)


def _bad(kind: str, message: str, status: int = 400) -> Refusal:
    return Refusal(_error(status, kind, message))


def _not_verified(address: str) -> Refusal:
    return _bad("MessageRejected", _unverified_words(address))


def _unverified_words(address: str) -> str:
    return f"Email address is not verified. The following identities failed the check in region US-EAST-1: {address}"


class FakeSes(Fake):
    name = "ses"
    api_key = f"{KEY_ID}:{SECRET}"
    refused_recipient_words = "Email address is not verified."
    partial_batches = True

    def url(self, base: str) -> str:
        return base.rstrip("/") + f"?region={REGION}"

    def route(self, path: str) -> str | None:
        return path if path in PATHS else None

    def authenticate(self, headers: Mapping[str, str], api_key: str) -> Reply | None:
        authorization = headers.get("authorization", "")
        if not authorization.startswith("AWS4-HMAC-SHA256 Credential="):
            return _error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        key_id = authorization.removeprefix("AWS4-HMAC-SHA256 Credential=").partition("/")[0]
        if key_id != api_key.partition(":")[0]:
            return _error(403, "UnrecognizedClientException", _INVALID_TOKEN)
        return None

    def fault(self, status: int, retry_after_s: float | None) -> Reply:
        if status == 429:
            hint = {} if retry_after_s is None else {"retry-after": number(retry_after_s)}
            return _error(429, "TooManyRequestsException", "Maximum sending rate exceeded.", hint)
        if status in (401, 403):
            return _error(
                status, "UnrecognizedClientException", "The security token included in the request is invalid."
            )
        if status >= 500:
            kind = "ServiceUnavailable" if status == 503 else "InternalFailure"
            return _error(status, kind, "Service Unavailable" if status == 503 else "An internal error occurred.")
        return _error(status, "BadRequestException", f"HTTP {status}")

    def handle(self, state: FakeProviders, route: str, headers: Mapping[str, str], body: bytes) -> Handled:
        _check_signature(route, headers, body, state.api_keys[self.name])
        payload = load_json(body, _bad("SerializationException", "Start of structure or map found where not expected."))
        if not isinstance(payload, dict):
            raise _bad("SerializationException", "Start of structure or map found where not expected.")
        sender = parseaddr(str(payload.get("FromEmailAddress") or ""))[1]
        if not valid_email(sender):
            raise _bad("BadRequestException", "Missing final '@domain'")
        if sender.lower() in state.rejected_senders:
            raise _not_verified(sender)
        if PATHS[route] == "single":
            return self._single(state, sender, payload)
        return self._bulk(state, sender, payload)

    def _single(self, state: FakeProviders, sender: str, payload: dict[str, Any]) -> Handled:
        [to] = _destination(payload.get("Destination"))
        if to.lower() in state.rejected_recipients:
            raise _not_verified(to)
        simple = (payload.get("Content") or {}).get("Simple")
        if not isinstance(simple, dict) or not (simple.get("Subject") or {}).get("Data"):
            raise _bad("BadRequestException", "Content.Simple with a Subject is required.")
        parts = simple.get("Body") or {}
        html, text = (parts.get("Html") or {}).get("Data", ""), (parts.get("Text") or {}).get("Data", "")
        message_id = _message_id(state)
        sent = SentMessage(
            self.name,
            sender,
            to,
            simple["Subject"]["Data"],
            html,
            text,
            _headers(simple.get("Headers")),
            _tags(payload.get("EmailTags")).get("send_id"),
            message_id,
            None,
        )
        return Handled(_ok({"MessageId": message_id}), [sent])

    def _bulk(self, state: FakeProviders, sender: str, payload: dict[str, Any]) -> Handled:
        template = ((payload.get("DefaultContent") or {}).get("Template")) or {}
        content = template.get("TemplateContent")
        if not isinstance(content, dict) or not content.get("Subject"):
            raise _bad("BadRequestException", "Template content with a Subject is required.")
        entries = payload.get("BulkEmailEntries")
        if not isinstance(entries, list) or not 1 <= len(entries) <= 50:
            raise _bad("BadRequestException", "BulkEmailEntries must hold 1 to 50 entries.")
        defaults = _data(template.get("TemplateData") or "{}")
        default_tags = _tags(payload.get("DefaultEmailTags"))
        results: list[dict[str, str]] = []
        accepted: list[SentMessage] = []
        for entry in entries:
            [to] = _destination(entry.get("Destination"))
            if to.lower() in state.rejected_recipients:
                results.append({"Status": "MESSAGE_REJECTED", "Error": _unverified_words(to)})
                continue
            replacement = ((entry.get("ReplacementEmailContent") or {}).get("ReplacementTemplate")) or {}
            values = {**defaults, **_data(replacement.get("ReplacementTemplateData") or "{}")}
            message_id = _message_id(state)
            results.append({"Status": "SUCCESS", "MessageId": message_id})
            rendered = [_render(content.get(part) or "", values) for part in ("Subject", "Html", "Text")]
            if None in rendered:
                continue  # accepted, then SES's Rendering Failure: never delivered
            subject, html, text = rendered
            accepted.append(
                SentMessage(
                    self.name,
                    sender,
                    to,
                    subject,
                    html,
                    text,
                    {**_headers(template.get("Headers")), **_headers(entry.get("ReplacementHeaders"))},
                    {**default_tags, **_tags(entry.get("ReplacementTags"))}.get("send_id"),
                    message_id,
                    None,
                )
            )
        return Handled(_ok({"BulkEmailEntryResults": results}), accepted)

    # -- webhooks ----------------------------------------------------------------------------

    def webhook_environment(self) -> dict[str, str]:
        os.environ[TEST_CERT_HOST_ENV] = SNS.host
        return {TOPICS_ENV: TOPIC_ARN}

    def webhook_event(self, kind: str, email: str, send_id: str | None) -> Any:
        return notification(ses_event(kind, email, send_id))

    def webhook_request(self, body: bytes, *, auth: Auth = "good", age_s: float = 0.0) -> tuple[bytes, dict[str, str]]:
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            return body, {"content-type": "text/plain; charset=UTF-8"}
        signed = sign(message, {"good": KEY, "wrong": OTHER_KEY, "missing": None}[auth], age_s=age_s)
        return orjson.dumps(signed), sns_headers(signed)


def notification(event: dict[str, Any], topic: str = TOPIC_ARN) -> dict[str, Any]:
    """An SNS Notification carrying an SES event, unsigned."""
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic,
        "Message": orjson.dumps(event).decode(),
        "UnsubscribeURL": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic}:1",
    }


def confirmation(topic: str = TOPIC_ARN) -> dict[str, Any]:
    """An SNS SubscriptionConfirmation whose SubscribeURL is the fake's, unsigned."""
    token = uuid.uuid4().hex
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": str(uuid.uuid4()),
        "Token": token,
        "TopicArn": topic,
        "Message": (
            f"You have chosen to subscribe to the topic {topic}.\n"
            "To confirm the subscription, visit the SubscribeURL included in this message."
        ),
        "SubscribeURL": f"http://{SNS.host}{CONFIRM_PATH}?Action=ConfirmSubscription&Token={token}",
    }


def sign(
    message: dict[str, Any],
    key: rsa.RSAPrivateKey | None = KEY,
    *,
    age_s: float = 0.0,
    version: str = "1",
    cert_url: str | None = None,
) -> dict[str, Any]:
    """`message` stamped `age_s` ago and signed as SNS signs (no signature when `key` is None)."""
    stamp = datetime.fromtimestamp(time.time() - age_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    signed = {**message, "Timestamp": stamp}
    if key is None:
        return signed
    fields = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
    if signed["Type"] != "Notification":
        fields = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
    text = "".join(f"{field}\n{signed[field]}\n" for field in fields if field in signed)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(text.encode(), padding.PKCS1v15(), algorithm)
    return {
        **signed,
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode(),
        "SigningCertURL": cert_url or f"http://{SNS.host}{CERT_PATH}",
    }


def sns_headers(message: dict[str, Any]) -> dict[str, str]:
    return {
        "content-type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": message["Type"],
        "x-amz-sns-message-id": message["MessageId"],
        "x-amz-sns-topic-arn": message["TopicArn"],
    }


def ses_event(kind: str, email: str, send_id: str | None) -> dict[str, Any]:
    """An SES event as event publishing sends it (providers.md §6.7), for our `kind`."""
    tags = {"ses:configuration-set": ["campaigns"], "ses:from-domain": ["example.com"]}
    if send_id is not None:
        tags["send_id"] = [send_id]
    mail = {
        "timestamp": "2025-11-28T08:30:00.000Z",
        "source": "Acme News <news@example.com>",
        "messageId": f"0100018c{uuid.uuid4().hex[:8]}-{uuid.uuid4()}-000000",
        "destination": [email],
        "headersTruncated": False,
        "tags": tags,
    }
    at = "2025-11-28T08:31:00.000Z"
    if kind == "delivered":
        return {"eventType": "Delivery", "mail": mail, "delivery": {"timestamp": at, "recipients": [email]}}
    if kind in ("hard_bounce", "soft_bounce"):
        permanent = kind == "hard_bounce"
        bounce = {
            "bounceType": "Permanent" if permanent else "Transient",
            "bounceSubType": "General" if permanent else "MailboxFull",
            "bouncedRecipients": [
                {
                    "emailAddress": email,
                    "action": "failed",
                    "status": "5.1.1" if permanent else "4.2.2",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown" if permanent else "smtp; 452 4.2.2 mailbox full",
                }
            ],
            "timestamp": at,
            "feedbackId": f"01000157c44f053b-{uuid.uuid4()}-000000",
        }
        return {"eventType": "Bounce", "bounce": bounce, "mail": mail}
    if kind == "complaint":
        complaint = {
            "complainedRecipients": [{"emailAddress": email}],
            "timestamp": at,
            "complaintFeedbackType": "abuse",
        }
        return {"eventType": "Complaint", "complaint": complaint, "mail": mail}
    subscription = {
        "contactList": "campaigns",
        "timestamp": at,
        "source": "UnsubscribeHeader",
        "newTopicPreferences": {"unsubscribeAll": True},
        "oldTopicPreferences": {"unsubscribeAll": False},
    }
    return {"eventType": "Subscription", "mail": mail, "subscription": subscription}


def _check_signature(path: str, headers: Mapping[str, str], body: bytes, api_key: str) -> None:
    """Recompute the SigV4 signature over what arrived, with the secret of the fake's key pair."""
    authorization = headers["authorization"].removeprefix("AWS4-HMAC-SHA256 ")
    fields = dict(part.strip().partition("=")[::2] for part in authorization.split(","))
    scope = fields.get("Credential", "").split("/")
    signed = fields.get("SignedHeaders", "").split(";")
    if len(scope) != 5 or scope[3] != "ses" or scope[4] != "aws4_request" or "x-amz-date" not in signed:
        raise _bad("InvalidSignatureException", "Credential should be scoped to correct service: 'ses'.", 403)
    request = AWSRequest(
        method="POST",
        url=f"http://{headers['host']}{path}",
        data=body,
        headers={name: headers.get(name, "") for name in signed if name != "host"},
    )
    request.context["timestamp"] = headers["x-amz-date"]
    key_id, _, region, service, _ = scope
    auth = SigV4Auth(Credentials(key_id, api_key.partition(":")[2]), service, region)
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    if fields.get("Signature") != expected:
        raise _bad(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
            "Access Key and signing method. Consult the service documentation for details.",
            403,
        )


def _destination(destination: Any) -> list[str]:
    to = destination.get("ToAddresses") if isinstance(destination, dict) else None
    if not isinstance(to, list) or not to:
        raise _bad("BadRequestException", "Destination.ToAddresses is required.")
    if len(to) > 50:
        raise _bad("MessageRejected", "Recipient count exceeds 50.")
    for address in to:
        if not valid_email(parseaddr(str(address))[1]):
            raise _bad("BadRequestException", "Missing final '@domain'")
    return [parseaddr(address)[1] for address in to]


def _headers(headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, list) or len(headers) > _MAX_HEADERS:
        raise _bad("BadRequestException", f"At most {_MAX_HEADERS} headers, each a {{Name, Value}} object.")
    if not all(isinstance(header, dict) and {"Name", "Value"} <= header.keys() for header in headers):
        raise _bad("BadRequestException", "Each header is a {Name, Value} object.")
    return {header["Name"]: header["Value"] for header in headers}


def _tags(tags: Any) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, list) or not all(isinstance(tag, dict) for tag in tags):
        raise _bad("BadRequestException", "Tags are {Name, Value} objects.")
    for tag in tags:
        if not all(isinstance(tag.get(field), str) and _TAG.fullmatch(tag[field]) for field in ("Name", "Value")):
            raise _bad("BadRequestException", "Tag names and values may hold only ASCII letters, digits, _ and -.")
    return {tag["Name"]: tag["Value"] for tag in tags}


def _data(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or len(text) > _MAX_TEMPLATE_DATA:
        raise _bad(
            "BadRequestException", f"Template data must be a JSON string of at most {_MAX_TEMPLATE_DATA} characters."
        )
    try:
        values = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise _bad("BadRequestException", "Template data is not valid JSON.") from None
    if not isinstance(values, dict):
        raise _bad("BadRequestException", "Template data must be a JSON object.")
    return values


def _render(template: str, values: dict[str, Any]) -> str | None:
    """SES's simple substitution, values as they are (SES does not escape them); None when a
    variable has no value, which SES reports as a Rendering Failure."""
    missing = [name for name in _VARIABLE.findall(template) if name not in values]
    if missing:
        return None
    return _VARIABLE.sub(lambda match: str(values[match[1]]), template)


def _message_id(state: FakeProviders) -> str:
    return f"0100018c{state.next_number():08x}-{uuid.uuid4()}-000000"


def _ok(payload: Any) -> Reply:
    return json_reply(200, payload, {"x-amzn-requestid": str(uuid.uuid4())})


FAKE = FakeSes()
