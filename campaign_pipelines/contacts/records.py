"""Turn one parsed record into (email, attributes JSON) or the reason it is skipped."""

from __future__ import annotations

import re

import orjson

from campaign_pipelines.contacts.reader import MAX_RECORD_BYTES, TOO_LARGE

# Reasons a record is skipped; the import counts each and keeps a few samples.
MISSING_EMAIL = "missing_email"
INVALID_EMAIL = "invalid_email"
NOT_AN_OBJECT = "not_an_object"
TOO_LARGE_REASON = "too_large"
NUL_CHARACTER = "nul_character"

# Pragmatic address syntax (RFC 5321 dot-atom local part, LDH domain with a dot): what
# providers accept. Internationalised domains must arrive in punycode. Domain labels are 1 to
# 63 letters, digits or hyphens, neither first nor last. Possessive quantifiers: no run of
# characters can match two ways, and not backtracking makes the check a third faster.
_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]++(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]++)*+"
    r"@(?:(?!-)[a-z0-9-]{1,63}+(?<!-)\.)++(?!-)[a-z0-9-]{1,63}+(?<!-)"
)
_MAX_EMAIL_LENGTH = 254
_EMAIL_KEYS = ("email", "Email", "EMAIL", "e-mail", "mail")


def normalize_email(value: str) -> str | None:
    """Trimmed, lower-cased address, or None when its syntax is not an address."""
    email = value.strip().lower()
    if len(email) > _MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(email):
        return None
    return email


def to_contact(record: object) -> tuple[str, bytes] | tuple[None, str]:
    """(email, attributes as UTF-8 JSON) for a usable record, else (None, reason).

    A usable record dict is consumed: its email key is removed, the rest are its attributes.
    Runs once per record of every import: `normalize_email` is inlined.
    """
    if type(record) is not dict:  # parsers make plain dicts of JSON objects
        return (None, TOO_LARGE_REASON) if record is TOO_LARGE else (None, NOT_AN_OBJECT)
    key = "email" if "email" in record else next((k for k in _EMAIL_KEYS if k in record), None)
    raw = record[key] if key is not None else None
    if type(raw) is not str:
        return None, MISSING_EMAIL
    email = raw.strip().lower()
    if not email:
        return None, MISSING_EMAIL
    if len(email) > _MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(email):
        return None, INVALID_EMAIL
    del record[key]
    try:
        attributes = orjson.dumps(record)
    except TypeError:  # keys that are not strings cannot come from JSON, but guard anyway
        return None, NOT_AN_OBJECT
    if len(attributes) > MAX_RECORD_BYTES:
        return None, TOO_LARGE_REASON
    if b"\\" in attributes and b"\\u0000" in attributes:  # one-byte search first: it is cheaper
        # PostgreSQL text cannot hold NUL characters.
        return None, NUL_CHARACTER
    return email, attributes


def sample_of(record: object, reason: str) -> str:
    """A short description of a skipped record: never the whole record."""
    if reason == INVALID_EMAIL or reason == MISSING_EMAIL:
        if isinstance(record, dict):
            for key in _EMAIL_KEYS:
                if key in record:
                    return f"email={str(record[key])[:80]!r}"
            return "keys: " + ", ".join(sorted(str(k) for k in record)[:8])
        return type(record).__name__
    if reason == NOT_AN_OBJECT:
        return f"{type(record).__name__}: {str(record)[:40]!r}"
    return reason
