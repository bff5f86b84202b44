"""SES events as SNS posts them to `POST /webhooks/ses`: the SNS signature checked, subscriptions
confirmed, and the SES event inside read in our words. Used by the `Ses` provider (providers.ses).

SNS signs each message (RSA, SHA1 for SignatureVersion 1, SHA256 for 2) over a canonical string
of its fields, with the certificate at its `SigningCertURL`. SNS signs for any topic of any
account, so a good signature is not enough: the topic must be one of ours (SES_SNS_TOPIC_ARNS,
one ARN or several separated by commas), and the certificate is fetched only over HTTPS from
`sns.<the topic's region>.amazonaws.com`, whose TLS certificate vouches for it; certificates are
cached by URL. The signed `Timestamp` is the publishing time, kept by SNS's retries, which last
at most an hour: older messages are refused. A `SubscriptionConfirmation` for one of our topics is
answered by fetching its `SubscribeURL` (checked as the certificate's URL), which is what
confirms the subscription.

For tests only, SES_SNS_TEST_CERT_HOST names a loopback `host:port` whose plain-HTTP URLs are
accepted too (the test certificate's server); any other value makes the webhook unusable (503),
so it cannot open the check to another machine.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from campaign_pipelines.providers import _payload
from campaign_pipelines.providers.webhook import (
    COMPLAINT,
    DELIVERED,
    HARD_BOUNCE,
    SOFT_BOUNCE,
    UNSUBSCRIBE,
    DeliveryEvent,
    MalformedPayload,
    Parsed,
    Refused,
    Webhook,
    out_of_window,
    signed_recently,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

NAME = "ses"
TOPICS_ENV = "SES_SNS_TOPIC_ARNS"
TEST_CERT_HOST_ENV = "SES_SNS_TEST_CERT_HOST"
SEND_ID_TAG = "send_id"
# SNS's retries of an HTTP/S delivery last at most 3,600 s (a hard limit), then five minutes' margin.
MAX_AGE_S = 3600.0 + 300.0
CERT_TIMEOUT_S = 5.0
# SNS certificates are a few kilobytes; more is not one.
MAX_CERT_BYTES = 64 * 1024
MAX_CACHED_CERTS = 32

_TOPIC_ARN = re.compile(r"arn:aws:sns:([a-z]{2}(?:-[a-z]+)+-\d+):\d{12}:[A-Za-z0-9_-]{1,256}")
# SignatureVersion -> its hash, by name in cryptography.hazmat.primitives.hashes.
_HASHES = {"1": "SHA1", "2": "SHA256"}
# The fields SNS signs, in this order, each present one as "Name\nValue\n".
_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_BOUNCES = {"Permanent": HARD_BOUNCE, "Transient": SOFT_BOUNCE, "Undetermined": SOFT_BOUNCE}


@dataclass(frozen=True)
class SnsSettings:
    topics: frozenset[str]
    # A loopback host:port whose http URLs are accepted as SNS's (tests only), or None.
    test_host: str | None = None


class SesWebhook(Webhook):
    secrets = (TOPICS_ENV,)
    max_age_s = MAX_AGE_S

    def __init__(self) -> None:
        self._certificates: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    def configure(self, values: Mapping[str, str]) -> SnsSettings:
        topics = frozenset(arn.strip() for arn in values[TOPICS_ENV].split(",") if arn.strip())
        wrong = [arn for arn in sorted(topics) if not _TOPIC_ARN.fullmatch(arn)]
        if not topics or wrong:
            raise ValueError(
                f"{TOPICS_ENV} must be SNS topic ARNs (arn:aws:sns:<region>:<account>:<topic>), comma-separated"
            )
        test_host = os.environ.get(TEST_CERT_HOST_ENV, "").strip() or None
        if test_host is not None and not _loopback(test_host):
            raise ValueError(f"{TEST_CERT_HOST_ENV} may only name a loopback host:port (it is for tests)")
        return SnsSettings(topics, test_host)

    def receive(self, secrets: SnsSettings, headers: Mapping[str, str], body: bytes, now: datetime) -> Parsed:
        message = _payload.load(body)
        if not isinstance(message, dict):
            raise MalformedPayload("the body is not an SNS message (a JSON object)")
        kind = _payload.event_name(message, "Type", "the SNS message")
        if kind not in _SIGNED:
            raise MalformedPayload(f"the SNS message Type {kind!r} is not one SNS sends")
        self._authenticate(secrets, message, kind)
        signed_at = _payload.iso(message.get("Timestamp"), "Timestamp", "the SNS message")
        if not signed_recently(str(signed_at.timestamp()), now.timestamp(), MAX_AGE_S):
            raise out_of_window(MAX_AGE_S)
        if kind == "SubscriptionConfirmation":
            _confirm(secrets, message)
            return Parsed()
        if kind == "UnsubscribeConfirmation":
            return Parsed(ignored=1)
        text = _payload.text(message, "Message", "the SNS message")
        if text is None:
            raise MalformedPayload("the SNS message has no Message")
        return events(text, now)

    def _authenticate(self, secrets: SnsSettings, message: dict[str, Any], kind: str) -> None:
        signature = message.get("Signature")
        cert_url = message.get("SigningCertURL")
        version = message.get("SignatureVersion")
        if not all(isinstance(value, str) and value for value in (signature, cert_url, version)):
            raise Refused("the SNS signature is missing")
        topic = message.get("TopicArn")
        if topic not in secrets.topics:
            raise Refused(f"the topic {str(topic)[:200]!r} is not one of {TOPICS_ENV}")
        if version not in _HASHES:
            raise Refused(f"SNS SignatureVersion {version[:20]!r} is not 1 or 2")
        key = self._certificate(_sns_url(secrets, topic, cert_url, "SigningCertURL"))
        # Imported here, as in _certificate: the run workers load every provider, and only the
        # tracking app checks signatures.
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            key.verify(
                base64.b64decode(signature, validate=True),
                _string_to_sign(message, kind),
                padding.PKCS1v15(),
                getattr(hashes, _HASHES[version])(),
            )
        except (InvalidSignature, binascii.Error, ValueError):
            raise Refused("bad signature") from None

    def _certificate(self, url: str) -> rsa.RSAPublicKey:
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import rsa

        with self._lock:
            cached = self._certificates.get(url)
        if cached is not None:
            return cached
        try:
            response = httpx.get(url, timeout=CERT_TIMEOUT_S)
        except httpx.HTTPError as error:
            # 503: SNS retries, and the certificate may be reachable then.
            raise Refused(f"could not fetch the SNS signing certificate ({type(error).__name__})", status=503) from None
        if response.status_code != 200 or len(response.content) > MAX_CERT_BYTES:
            raise Refused(f"the SNS signing certificate could not be read (HTTP {response.status_code})", status=503)
        try:
            key = x509.load_pem_x509_certificate(response.content).public_key()
        except ValueError:
            raise Refused("the SigningCertURL does not hold a certificate") from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise Refused("the SNS signing certificate is not an RSA certificate")
        with self._lock:
            if len(self._certificates) >= MAX_CACHED_CERTS:
                self._certificates.clear()
            self._certificates[url] = key
        return key


def _string_to_sign(message: dict[str, Any], kind: str) -> bytes:
    pieces = []
    for field in _SIGNED[kind]:
        value = message.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise Refused(f"bad signature: the signed field {field} is not text")
        pieces.append(f"{field}\n{value}\n")
    return "".join(pieces).encode()


def _sns_url(secrets: SnsSettings, topic: str, url: Any, field: str) -> str:
    """`url` when it is SNS's own in the topic's region (or the tests' loopback host), else Refused."""
    match = _TOPIC_ARN.fullmatch(topic)
    parts = urlsplit(url) if isinstance(url, str) else None
    if match is not None and parts is not None:
        if parts.scheme == "https" and parts.netloc == f"sns.{match[1]}.amazonaws.com":
            return url
        if secrets.test_host is not None and parts.scheme == "http" and parts.netloc == secrets.test_host:
            return url
    raise Refused(f"the {field} is not an https URL of sns.<the topic's region>.amazonaws.com")


def _confirm(secrets: SnsSettings, message: dict[str, Any]) -> None:
    url = _sns_url(secrets, message["TopicArn"], message.get("SubscribeURL"), "SubscribeURL")
    try:
        response = httpx.get(url, timeout=CERT_TIMEOUT_S)
    except httpx.HTTPError as error:
        raise Refused(f"could not confirm the SNS subscription ({type(error).__name__})", status=503) from None
    if response.status_code != 200:
        raise Refused(f"SNS did not confirm the subscription (HTTP {response.status_code})", status=503)


def _loopback(host: str) -> bool:
    name = urlsplit(f"//{host}").hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def events(text: str, now: datetime) -> Parsed:
    """The SES event an SNS Message holds: one event per recipient it names. Event publishing
    names it `eventType`; an identity's own notifications, `notificationType`, with no tags."""
    item = _payload.load(text.encode())
    where = "the SES event"
    if not isinstance(item, dict):
        raise MalformedPayload(f"{where} is not a JSON object")
    name = item.get("eventType") or item.get("notificationType")
    if not isinstance(name, str):
        raise MalformedPayload(f"{where}: eventType is missing")
    mail = _payload.obj(item, "mail", where)
    # (recipient, the provider's words about it), one event each.
    recipients: list[tuple[str, str | None]]
    if name == "Bounce":
        details = _payload.obj(item, "bounce", where)
        ours = _BOUNCES.get(_payload.text(details, "bounceType", "bounce") or "")
        recipients = [
            (
                _payload.recipient(each, "emailAddress", "bounce"),
                _payload.words(each.get("diagnosticCode"), details.get("bounceSubType")),
            )
            for each in _list(details, "bouncedRecipients", dict)
        ]
    elif name == "Complaint":
        ours, details = COMPLAINT, _payload.obj(item, "complaint", where)
        said = _payload.words(details.get("complaintFeedbackType"), details.get("complaintSubType"))
        recipients = [
            (_payload.recipient(each, "emailAddress", "complaint"), said)
            for each in _list(details, "complainedRecipients", dict)
        ]
    elif name == "Delivery":
        ours, details = DELIVERED, _payload.obj(item, "delivery", where)
        recipients = [(email, None) for email in _list(details, "recipients", str)]
    elif name == "Subscription":
        details = _payload.obj(item, "subscription", where)
        unsubscribed = _payload.obj(details, "newTopicPreferences", "subscription").get("unsubscribeAll") is True
        ours = UNSUBSCRIBE if unsubscribed else None
        said = _payload.words(details.get("source"))
        recipients = [(email, said) for email in _list(mail, "destination", str)]
    else:
        ours = None
    if ours is None:
        return Parsed(ignored=1)
    stamp = details.get("timestamp")
    occurred_at = now if stamp is None else _payload.iso(stamp, "timestamp", name.lower())
    send_id = _send_id(_payload.obj(mail, "tags", "mail"))
    parsed = Parsed()
    for email, detail in recipients:
        parsed.events.append(
            DeliveryEvent(
                provider=NAME,
                # SES gives no event id, and one SNS message (its MessageId) may name several recipients.
                event_id=_payload.derived_id(mail.get("messageId"), name, email, stamp),
                event=ours,
                email=email,
                send_id=send_id,
                detail=detail,
                occurred_at=occurred_at,
            )
        )
    return parsed


def _list(item: dict[str, Any], key: str, kind: type) -> list[Any]:
    """A non-empty list of recipients: objects (`kind` dict) or addresses (`kind` str)."""
    value = item.get(key)
    if not isinstance(value, list) or not value:
        raise MalformedPayload(f"the SES event: {key} is not a list of recipients")
    if not all(isinstance(each, kind) and (kind is not str or each.strip()) for each in value):
        what = "objects" if kind is dict else "addresses"
        raise MalformedPayload(f"the SES event: {key} holds something other than {what}")
    return value


def _send_id(tags: dict[str, Any]) -> str | None:
    # Tags come back as lists of values: {"send_id": ["12-345"]}.
    values = tags.get(SEND_ID_TAG)
    return _payload.send_id(values[0]) if isinstance(values, list) and values else None
