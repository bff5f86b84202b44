"""Our per-recipient send id, "<campaign id>-<contact id>": built by the send loop for each
message (sending.line), carried by the provider where it hands custom data back, and read from
webhook events to find the send (blacklist.record_delivery_events)."""

from __future__ import annotations

import re

_SEND_ID = re.compile(r"([1-9][0-9]{0,18})-([1-9][0-9]{0,18})")
# Both ids are PostgreSQL bigints.
_MAX_ID = (1 << 63) - 1


def send_id(campaign_id: int, contact_id: int) -> str:
    """Our per-recipient id, carried by the provider and back in its webhooks."""
    return f"{campaign_id}-{contact_id}"


def parse_send_id(value: object) -> tuple[int, int] | None:
    """(campaign id, contact id) from our send id, or None when it is not one of ours."""
    if not isinstance(value, str):
        return None
    match = _SEND_ID.fullmatch(value.strip())
    if match is None:
        return None
    campaign_id, contact_id = int(match[1]), int(match[2])
    if campaign_id > _MAX_ID or contact_id > _MAX_ID:
        return None
    return campaign_id, contact_id
