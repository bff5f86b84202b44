"""Per-recipient tracking tokens: opaque, unforgeable, carried in every tracked URL.

A token is base64url(campaign id, contact id as two 64-bit integers + the first 10 bytes of
their HMAC-SHA256 under the tracking secret): 35 characters. Forging or altering one needs
the secret; a bad token reads as None and is never recorded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct

_IDS = struct.Struct(">QQ")
_MAC_BYTES = 10
TOKEN_LENGTH = 35
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SPELLING = re.compile(f"[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}")


def make_token(secret: bytes, campaign_id: int, contact_id: int) -> str:
    payload = _IDS.pack(campaign_id, contact_id)
    mac = hmac.digest(secret, payload, hashlib.sha256)[:_MAC_BYTES]
    return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode("ascii")


def read_token(secret: bytes, token: str) -> tuple[int, int] | None:
    """(campaign id, contact id) of a genuine token, else None."""
    # base64 decoding would also take "+", "/" and skip stray characters: only one spelling is valid.
    if not _SPELLING.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=")
    except (binascii.Error, ValueError):
        return None
    payload, mac = raw[: _IDS.size], raw[_IDS.size :]
    if not hmac.compare_digest(mac, hmac.digest(secret, payload, hashlib.sha256)[:_MAC_BYTES]):
        return None
    # The last character carries 2 unused bits: only the canonical spelling is accepted.
    if _B64.index(token[-1]) & 0b11:
        return None
    return _IDS.unpack(payload)
