"""The SES v2 requests (`SendEmail` for one message, `SendBulkEmail` for several), their SigV4
signature, and SES's answers mapped to our error family. Called by the `Ses` provider
(providers.ses); the choice of these forms is explained there.

botocore (with urllib3 and dateutil, some 50 ms) is imported only to sign a call: every run and
run worker imports the providers, and most never send through SES.

SES's errors (REST-JSON): the type in the `x-amzn-ErrorType` header (or `__type` in the body),
the words in the body's `message`, the call named by `x-amzn-RequestId`, quoted in our messages
so that AWS support can find the call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.utils import formataddr
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson

from campaign_pipelines.providers import _http
from campaign_pipelines.providers.base import (
    Ambiguous,
    AuthFailed,
    Delivery,
    OutgoingMessage,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Rejected,
    Sender,
    ServerError,
)

if TYPE_CHECKING:
    from botocore.credentials import Credentials

NAME = "ses"
SINGLE_PATH = "/v2/email/outbound-emails"
BULK_PATH = "/v2/email/outbound-bulk-emails"
SIGNING_NAME = "ses"
SEND_ID_TAG = "send_id"
MAX_DESTINATIONS = 50
# ReplacementTemplateData, one destination's rendered message, is at most this many characters.
MAX_TEMPLATE_DATA = 262_144
# The inline template of every bulk call: placeholders only, each destination's data being its
# whole rendered message. A text part only when some message of the call has one.
_SUBJECT, _HTML, _TEXT = "subject", "html", "text"

# email.<region>.amazonaws.com, its FIPS twin, or the dual-stack email.<region>.api.aws.
_ENDPOINT_HOST = re.compile(r"email(?:-fips)?\.([a-z]{2}(?:-[a-z]+)+-\d+)\.(?:amazonaws\.com|api\.aws)")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d+")
# AWS access key ids are 16 to 128 word characters; a secret has no colon or whitespace.
_KEY_ID = re.compile(r"\w{16,128}")
_SECRET = re.compile(r"[^\s:]+")

_THROTTLED = {"TooManyRequestsException", "ThrottlingException", "Throttling", "LimitExceededException"}
_ACCOUNT_CANNOT_SEND = {"AccountSuspendedException", "SendingPausedException"}
_DAILY_QUOTA = "daily message quota"

# SendBulkEmail's per-destination statuses (BulkEmailStatus).
_SUCCESS = "SUCCESS"
_REFUSED = {"MESSAGE_REJECTED", "INVALID_PARAMETER", "FAILED"}
_QUOTA = {
    "ACCOUNT_SUSPENDED",
    "ACCOUNT_SENDING_PAUSED",
    "CONFIGURATION_SET_SENDING_PAUSED",
    "ACCOUNT_DAILY_QUOTA_EXCEEDED",
}
_CALL_REFUSED = {
    "MAIL_FROM_DOMAIN_NOT_VERIFIED",
    "CONFIGURATION_SET_NOT_FOUND",
    "TEMPLATE_NOT_FOUND",
    "INVALID_SENDING_POOL_NAME",
}
_THROTTLED_ENTRY = "ACCOUNT_THROTTLED"
_TRANSIENT_ENTRY = "TRANSIENT_FAILURE"


def endpoint(url: str) -> tuple[str, str]:
    """The base the API paths go after, and the region the calls are signed for."""
    parts = urlsplit(url)
    given = parse_qs(parts.query).get("region", [""])[0].strip()
    match = _ENDPOINT_HOST.fullmatch(parts.hostname or "")
    region = given or (match[1] if match else "")
    if not _REGION.fullmatch(region):
        raise Rejected(
            f"ses: the server URL {url!r} names no AWS region: use https://email.<region>.amazonaws.com"
            " (or add ?region=<region> to another endpoint); nothing was sent"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}", region


def credentials(api_key: str) -> Credentials:
    from botocore.credentials import Credentials

    key_id, colon, secret = api_key.strip().partition(":")
    if not colon or not _KEY_ID.fullmatch(key_id) or not _SECRET.fullmatch(secret):
        # Never quoted: a mangled pair is still mostly a secret.
        raise AuthFailed(
            "ses: the server's API key must be an AWS access key pair written ACCESS_KEY_ID:SECRET_ACCESS_KEY;"
            " nothing was sent"
        )
    return Credentials(key_id, secret)


def signed_headers(url: str, body: bytes, keys: Credentials, region: str) -> dict[str, str]:
    """The headers of the POST, with its SigV4 Authorization (botocore signs host, date and type)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(keys, SIGNING_NAME, region).add_auth(request)
    return dict(request.headers.items())


def template_data(message: OutgoingMessage) -> str:
    """One destination's ReplacementTemplateData: its rendered message, for the placeholders."""
    return orjson.dumps({_SUBJECT: message.subject, _HTML: message.html, _TEXT: message.text}).decode()


def single_body(sender: Sender, message: OutgoingMessage) -> bytes:
    body: dict[str, Any] = {"Subject": _content(message.subject), "Body": {"Html": _content(message.html)}}
    if message.text:
        body["Body"]["Text"] = _content(message.text)
    if message.headers:
        body["Headers"] = _headers(message)
    return orjson.dumps(
        {
            "FromEmailAddress": _from(sender),
            "Destination": {"ToAddresses": [message.to_email]},
            "Content": {"Simple": body},
            "EmailTags": [_tag(message)],
        }
    )


def bulk_body(sender: Sender, messages: Sequence[OutgoingMessage]) -> bytes:
    template = {"Subject": _placeholder(_SUBJECT), "Html": _placeholder(_HTML)}
    if any(message.text for message in messages):
        template["Text"] = _placeholder(_TEXT)
    entries = []
    for message in messages:
        entry: dict[str, Any] = {
            "Destination": {"ToAddresses": [message.to_email]},
            "ReplacementEmailContent": {"ReplacementTemplate": {"ReplacementTemplateData": template_data(message)}},
            "ReplacementTags": [_tag(message)],
        }
        if message.headers:
            entry["ReplacementHeaders"] = _headers(message)
        entries.append(entry)
    return orjson.dumps(
        {
            "FromEmailAddress": _from(sender),
            "DefaultContent": {"Template": {"TemplateContent": template, "TemplateData": "{}"}},
            "BulkEmailEntries": entries,
        }
    )


def _placeholder(name: str) -> str:
    return "{{" + name + "}}"


def _from(sender: Sender) -> str:
    # formataddr encodes a non-ASCII name as a MIME encoded-word, as SES requires.
    return formataddr((sender.name, sender.email)) if sender.name else sender.email


def _content(text: str) -> dict[str, str]:
    return {"Data": text, "Charset": "UTF-8"}


def _headers(message: OutgoingMessage) -> list[dict[str, str]]:
    return [{"Name": name, "Value": value} for name, value in message.headers.items()]


def _tag(message: OutgoingMessage) -> dict[str, str]:
    return {"Name": SEND_ID_TAG, "Value": message.send_id}


def verdicts(
    response: httpx.Response, sender: Sender, messages: Sequence[OutgoingMessage], *, bulk: bool
) -> list[Delivery]:
    status = response.status_code
    if 200 <= status < 300:
        payload = _http.json_object(response)
        if bulk:
            return _entries(response, payload, messages)
        message_id = payload.get("MessageId")
        if not isinstance(message_id, str) or not message_id:
            raise _http.not_its_answer(NAME, response, _request(response))
        return [Delivery.accepted(messages[0].send_id, message_id)]
    kind, said = _error(response)
    words = _words(said, kind, status, response)
    lowered = said.lower()
    if status == 429 or kind in _THROTTLED:
        if _DAILY_QUOTA in lowered:
            raise QuotaExhausted(f"ses: the account's daily quota is spent: {words}", status=status)
        raise RateLimited(
            f"ses: rate limited: {words}", retry_after_s=_http.retry_after(response.headers), status=status
        )
    _http.raise_if_busy(NAME, response, words)
    if status in (401, 403):
        raise AuthFailed(f"ses: the access key pair or its permissions were refused: {words}", status=status)
    if kind in _ACCOUNT_CANNOT_SEND:
        raise QuotaExhausted(f"ses: the account may not send now: {words}", status=status)
    if kind == "MailFromDomainNotVerifiedException" or sender.email.lower() in lowered:
        raise Rejected(f"ses: refused the sender {sender.email}: {words}", status=status)
    named = any(message.to_email.lower() in lowered for message in messages)
    if status == 413 or named:
        return _http.refused_for_a_message(NAME, status, words, messages, too_big=status == 413)
    raise Rejected(f"ses: refused the request: {words}", status=status)


def _entries(response: httpx.Response, payload: dict[str, Any], messages: Sequence[OutgoingMessage]) -> list[Delivery]:
    """SendBulkEmail's one result per destination, in order. Statuses about the whole account
    fail the call; the others are that recipient's."""
    results = payload.get("BulkEmailEntryResults")
    if (
        not isinstance(results, list)
        or len(results) != len(messages)
        or not all(isinstance(result, dict) for result in results)
    ):
        raise _http.not_its_answer(NAME, response, _request(response))
    done: list[Delivery] = []
    pending: dict[str, str] = {}
    for message, result in zip(messages, results, strict=True):
        entry = str(result.get("Status"))
        said = _http.quote(str(result.get("Error") or entry))
        if entry == _SUCCESS and isinstance(result.get("MessageId"), str):
            done.append(Delivery.accepted(message.send_id, result["MessageId"]))
        elif entry in _REFUSED:
            done.append(Delivery.refused(message.send_id, f"ses refused {message.to_email}: {said} ({entry})"))
        else:
            pending.setdefault(entry, said)
    if not pending:
        return done
    request = _request(response)
    words = "; ".join(f"{said} ({entry})" for entry, said in pending.items()) + request
    if pending.keys() & _QUOTA:
        error: ProviderError = QuotaExhausted(f"ses: the account may not send now: {words}", status=200)
    elif pending.keys() & _CALL_REFUSED:
        error = Rejected(f"ses: refused the request: {words}", status=200)
    elif not pending.keys() <= {_THROTTLED_ENTRY, _TRANSIENT_ENTRY}:
        error = Ambiguous(f"ses: an answer that does not say whether the messages went: {words}")
    elif done:
        # Some went, others are to retry: not RateLimited or ServerError, whose retry would resend
        # the call, the sent ones with it. The rest go back to be sent later.
        error = ProviderError(f"ses: {len(messages) - len(done)} of the batch were deferred: {words}", status=200)
    elif _THROTTLED_ENTRY in pending:
        error = RateLimited(f"ses: rate limited: {words}", retry_after_s=None, status=200)
    else:
        error = ServerError(f"ses: a temporary failure: {words}", status=200)
    error.done = done
    raise error


def _error(response: httpx.Response) -> tuple[str, str]:
    """The error's type and SES's words."""
    payload = _http.json_object(response)
    kind = response.headers.get("x-amzn-errortype") or payload.get("__type") or payload.get("code") or ""
    # "MessageRejected:http://internal…" in the header, "com.amazonaws…#MessageRejected" in a body.
    kind = str(kind).partition(":")[0].rpartition("#")[2]
    said = payload.get("message") or payload.get("Message") or response.text or response.reason_phrase
    return kind, str(said)


def _words(said: str, kind: str, status: int, response: httpx.Response) -> str:
    named = f"{kind}, " if kind else ""
    return f"{_http.quote(said)} ({named}HTTP {status}){_request(response)}"


def _request(response: httpx.Response) -> str:
    request_id = response.headers.get("x-amzn-requestid")
    return f" [request {request_id}]" if request_id else ""
