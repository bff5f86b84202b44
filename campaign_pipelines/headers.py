"""What text may go into an email header: one line, no control characters.

A CR or LF in a sender name or a header value ends that header and starts another one
(`From: "Promo\\r\\nBcc: someone@…"`), and the other control characters have no place in a header
either. Validation refuses them where a user types such a value (campaigns.py, the tracking
resource); every provider adapter refuses them again before a call
(campaign_pipelines.providers.base.ensure_header_safe), for values stored before validation did.
"""

from __future__ import annotations

import re

# C0 controls (CR, LF, TAB, NUL…), DEL, C1 controls (NEL…), and the Unicode line and paragraph
# separators, which some mail software also takes for line ends.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# RFC 5322 field names: printable ASCII but the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
_NAMES = {"\r": "CR", "\n": "LF", "\t": "TAB", "\x00": "NUL", "\x7f": "DEL"}


def unsafe_characters(value: str) -> str | None:
    """The control characters in `value`, named ('CR, LF'), or None when it may go in a header."""
    if _UNSAFE.search(value) is None:
        return None
    found = dict.fromkeys(_UNSAFE.findall(value))
    return ", ".join(_NAMES.get(character, f"U+{ord(character):04X}") for character in found)


def header_problem(field: str, value: str) -> str | None:
    """The problem to report when `value`, typed as `field`, may not go in a header; else None."""
    names = unsafe_characters(value)
    if names is None:
        return None
    return f"{field} contains control characters ({names}); it goes into an email header, which is one line of text"


def is_field_name(name: str) -> bool:
    return _FIELD_NAME.fullmatch(name) is not None
