"""How each provider proves a webhook is its own, checked by tracking_app.webhooks before anything is read.

SendGrid signs with ECDSA P-256 over timestamp + raw body; Mailgun with HMAC-SHA256 over
timestamp + token (inside the body); Brevo and Postmark sign nothing and send the credentials
configured on the webhook (a bearer token or basic auth). Secrets are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# How old a signature may be, per provider: past it a captured request cannot be replayed, and
# within it a copy is stored once (delivery_events' event ids, and Mailgun's tokens).
# SendGrid retries a refused batch for 24 hours (providers.md §3.7) and does not say whether a
# retry is signed anew: 24 hours plus an hour's margin keeps its last retries in.
SENDGRID_MAX_AGE_S = 25 * 3600.0
# Mailgun's docs ask for a timestamp close to the clock and a token used once (webhook_tokens,
# kept far longer than this).
MAILGUN_MAX_AGE_S = 300.0
# A signature from the future is a clock ahead of ours, by this much at most.
MAX_CLOCK_AHEAD_S = 300.0


def load_sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid's settings show it: base64 DER (SubjectPublicKeyInfo), P-256."""
    try:
        key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (binascii.Error, ValueError):
        raise ValueError("it is not a base64 DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("it is not an ECDSA P-256 public key")
    return key


def sendgrid_signature_ok(key: ec.EllipticCurvePublicKey, signature: str, timestamp: str, body: bytes) -> bool:
    try:
        der_signature = base64.b64decode(signature, validate=True)
        key.verify(der_signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def mailgun_signature_ok(signing_key: bytes, timestamp: str, token: str, signature: str) -> bool:
    expected = hmac.new(signing_key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def signed_recently(timestamp: str, now: float, max_age_s: float) -> bool:
    """The signature's timestamp (Unix seconds) is at most `max_age_s` old and MAX_CLOCK_AHEAD_S ahead."""
    try:
        signed_at = float(timestamp)
    except ValueError:
        return False
    return -MAX_CLOCK_AHEAD_S <= now - signed_at <= max_age_s


def _credentials(authorization: str | None, scheme: str) -> str | None:
    if not authorization:
        return None
    given, _, value = authorization.strip().partition(" ")
    return value.strip() if given.lower() == scheme and value.strip() else None


def bearer_token(authorization: str | None) -> str | None:
    return _credentials(authorization, "bearer")


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    encoded = _credentials(authorization, "basic")
    if encoded is None:
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def brevo_authorized(authorization: str | None, token: str) -> bool:
    """The bearer token configured on the webhook, or basic auth with it as the password (any user name)."""
    bearer = bearer_token(authorization)
    if bearer is not None:
        return same_secret(bearer, token)
    basic = basic_credentials(authorization)
    return basic is not None and same_secret(basic[1], token)


def postmark_authorized(authorization: str | None, user: str, password: str) -> bool:
    basic = basic_credentials(authorization)
    if basic is None:
        return False
    # Both compared, whatever the first says: the time taken tells nothing.
    user_ok = same_secret(basic[0], user)
    password_ok = same_secret(basic[1], password)
    return user_ok and password_ok
