"""Each provider's webhook payloads read as DeliveryEvents: which events we keep, and where each
one holds the recipient, our send id, the time and the provider's own words.

Pure functions of the raw body, called by tracking_app.webhooks once the request is
authenticated (Mailgun signs inside the body: `mailgun_document` and `mailgun_signature` read
it first). A body that is not what the provider sends raises MalformedPayload, whose message
says what is wrong and where. Payload shapes: providers.md §2.7 Brevo, §3.7 SendGrid, §4.7
Mailgun, §5.7 Postmark.

Every event gets the id its copies share, so that a provider's retry or a replay is stored once:
SendGrid's own `sg_event_id`; for the others (no id, or Mailgun's, unique only within a day) a
digest of the fields that identify the event, as the provider sent them (`_derived_id`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from campaign_pipelines.blacklist import (
    COMPLAINT,
    DELIVERED,
    HARD_BOUNCE,
    SOFT_BOUNCE,
    UNSUBSCRIBE,
    DeliveryEvent,
)

# Where each adapter (campaign_pipelines.providers) puts our send id, and so where it comes back.
BREVO_SEND_ID = "X-Mailin-custom"
SENDGRID_SEND_ID = "send_id"  # a custom_args key, merged into each event
MAILGUN_SEND_ID = "send_id"  # in event-data.user-variables
POSTMARK_SEND_ID = "send_id"  # in Metadata

# Brevo: both spellings of the unsubscribe event are documented; `spam` is its complaint.
_BREVO = {
    "delivered": DELIVERED,
    "hard_bounce": HARD_BOUNCE,
    "soft_bounce": SOFT_BOUNCE,
    "spam": COMPLAINT,
    "complaint": COMPLAINT,
    "unsubscribe": UNSUBSCRIBE,
    "unsubscribed": UNSUBSCRIBE,
}
# SendGrid: `bounce` is split by its `type` below; a group unsubscribe is still the recipient saying no.
_SENDGRID = {
    "delivered": DELIVERED,
    "spamreport": COMPLAINT,
    "unsubscribe": UNSUBSCRIBE,
    "group_unsubscribe": UNSUBSCRIBE,
}
_MAILGUN = {"delivered": DELIVERED, "complained": COMPLAINT, "unsubscribed": UNSUBSCRIBE}
_MAILGUN_FAILED = {"permanent": HARD_BOUNCE, "temporary": SOFT_BOUNCE}
# Postmark bounces by their `Type` name (its TypeCode table is inconsistent between sources).
# Transient is a delay Postmark retries itself; Blocked, AutoResponder and the like say nothing
# about the address.
_POSTMARK_BOUNCES = {
    "HardBounce": HARD_BOUNCE,
    "BadEmailAddress": HARD_BOUNCE,
    "SoftBounce": SOFT_BOUNCE,
    "DnsError": SOFT_BOUNCE,
    "SpamComplaint": COMPLAINT,
    "Unsubscribe": UNSUBSCRIBE,
}
# A SubscriptionChange for this reason is the recipient unsubscribing; Postmark's HardBounce and
# SpamComplaint suppressions arrive as their own Bounce and SpamComplaint records.
_POSTMARK_UNSUBSCRIBED = "ManualSuppression"


# Derived ids are "sha256:<hex>": SendGrid's own ids are base64url, without a ':', so the two never meet.
_DERIVED_ID_PREFIX = "sha256:"


class MalformedPayload(ValueError):
    """The body is not what the provider sends; nothing of it is recorded."""


@dataclass
class Parsed:
    events: list[DeliveryEvent] = field(default_factory=list)
    # Provider events we do not keep (opens, clicks, deferrals, …): answered 200 all the same.
    ignored: int = 0


@dataclass(frozen=True)
class MailgunSignature:
    timestamp: str
    token: str
    signature: str


def _load(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise MalformedPayload(f"the body is not JSON: {error}") from None


def _objects(document: Any) -> list[dict[str, Any]]:
    """One event object, or a batch of them."""
    items = document if isinstance(document, list) else [document]
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise MalformedPayload(f"event {index} is not a JSON object")
    return items


def _text(item: dict[str, Any], key: str, where: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedPayload(f"{where}: {key} is not text")
    return value


def _recipient(item: dict[str, Any], key: str, where: str) -> str:
    value = _text(item, key, where)
    if value is None or not value.strip():
        raise MalformedPayload(f"{where}: the recipient ({key}) is missing")
    return value


def _object(item: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = item.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedPayload(f"{where}: {key} is not an object")
    return value


def _send_id(value: Any) -> str | None:
    # Our own id is text; anything else is not ours, and the event is kept by address.
    return value if isinstance(value, str) and value.strip() else None


def _words(*texts: Any) -> str | None:
    """The first of the provider's texts that says something."""
    return next((text.strip() for text in texts if isinstance(text, str) and text.strip()), None)


def _epoch(value: Any, key: str, where: str, *, per_second: int = 1) -> datetime:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is not None and math.isfinite(number):
        try:
            return datetime.fromtimestamp(number / per_second, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    raise MalformedPayload(f"{where}: {key} {value!r} is not a time")


def _iso(value: Any, key: str, where: str) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    raise MalformedPayload(f"{where}: {key} {value!r} is not an ISO 8601 time")


def _derived_id(*fields: Any) -> str:
    """An event id from the fields that identify the event, as the provider sent them (JSON values).

    An exact copy has the same fields, hence the same id; two events differ in at least one of them.
    """
    return _DERIVED_ID_PREFIX + hashlib.sha256(orjson.dumps(fields)).hexdigest()


def _event_name(item: dict[str, Any], key: str, where: str) -> str:
    name = item.get(key)
    if not isinstance(name, str):
        raise MalformedPayload(f"{where}: {key} is missing")
    return name


# --- Brevo ---------------------------------------------------------------------------------


def brevo_events(body: bytes, now: datetime) -> Parsed:
    """One event object, or an array of them in Brevo's batched mode."""
    parsed = Parsed()
    for index, item in enumerate(_objects(_load(body))):
        where = f"event {index}"
        ours = _BREVO.get(_event_name(item, "event", where))
        if ours is None:
            parsed.ignored += 1
            continue
        # ts_epoch (milliseconds) is Brevo's only timestamp documented as UTC; `date` is in the account's zone.
        if item.get("ts_epoch") is not None:
            occurred_at = _epoch(item["ts_epoch"], "ts_epoch", where, per_second=1000)
        elif item.get("ts_event") is not None:
            occurred_at = _epoch(item["ts_event"], "ts_event", where)
        elif item.get("ts") is not None:
            occurred_at = _epoch(item["ts"], "ts", where)
        else:
            occurred_at = now
        custom = next((value for key, value in item.items() if key.lower() == BREVO_SEND_ID.lower()), None)
        # Brevo gives no event id (its `id` is the webhook's). One message-id may cover several
        # recipients, so the address is part of it too.
        event_id = _derived_id(
            item.get("message-id"),
            item["event"],
            item.get("email"),
            item.get("ts_epoch"),
            item.get("ts_event"),
            item.get("ts"),
        )
        parsed.events.append(
            DeliveryEvent(
                provider="brevo",
                event_id=event_id,
                event=ours,
                email=_recipient(item, "email", where),
                send_id=_send_id(custom),
                detail=None if ours == DELIVERED else _words(item.get("reason")),
                occurred_at=occurred_at,
            )
        )
    return parsed


# --- SendGrid ------------------------------------------------------------------------------


def sendgrid_events(body: bytes, now: datetime) -> Parsed:
    """SendGrid posts a JSON array of events."""
    parsed = Parsed()
    for index, item in enumerate(_objects(_load(body))):
        where = f"event {index}"
        name = _event_name(item, "event", where)
        if name == "bounce":
            # type "bounce" is a hard bounce, "blocked" a soft one.
            ours: str | None = SOFT_BOUNCE if _text(item, "type", where) == "blocked" else HARD_BOUNCE
        else:
            ours = _SENDGRID.get(name)
        if ours is None:
            parsed.ignored += 1
            continue
        stamp = item.get("timestamp")
        event_id = _text(item, "sg_event_id", where) or _derived_id(
            item.get("sg_message_id"), name, item.get("type"), item.get("email"), stamp
        )
        parsed.events.append(
            DeliveryEvent(
                provider="sendgrid",
                event_id=event_id,
                event=ours,
                email=_recipient(item, "email", where),
                send_id=_send_id(item.get(SENDGRID_SEND_ID)),
                detail=None if ours == DELIVERED else _words(item.get("reason"), item.get("status")),
                occurred_at=now if stamp is None else _epoch(stamp, "timestamp", where),
            )
        )
    return parsed


# --- Mailgun -------------------------------------------------------------------------------


def mailgun_document(body: bytes) -> dict[str, Any]:
    """Mailgun posts one JSON object: {"signature": {...}, "event-data": {...}}."""
    document = _load(body)
    if not isinstance(document, dict):
        raise MalformedPayload("the body is not a JSON object")
    return document


def mailgun_signature(document: dict[str, Any]) -> MailgunSignature | None:
    """The signature block, or None when it is missing or incomplete (the request is then refused)."""
    block = document.get("signature")
    if not isinstance(block, dict):
        return None
    timestamp, token, signature = block.get("timestamp"), block.get("token"), block.get("signature")
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        timestamp = str(timestamp)
    if not all(isinstance(value, str) and value for value in (timestamp, token, signature)):
        return None
    return MailgunSignature(timestamp=timestamp, token=token, signature=signature)


def mailgun_events(document: dict[str, Any], now: datetime) -> Parsed:
    parsed = Parsed()
    where = "event-data"
    data = document.get("event-data")
    if not isinstance(data, dict):
        raise MalformedPayload("event-data is missing or not an object")
    name = _event_name(data, "event", where)
    if name == "failed":
        ours = _MAILGUN_FAILED.get(_text(data, "severity", where) or "")
    else:
        ours = _MAILGUN.get(name)
    if ours is None:
        parsed.ignored += 1
        return parsed
    status = _object(data, "delivery-status", where)
    variables = _object(data, "user-variables", where)
    stamp = data.get("timestamp")
    # Mailgun's event `id` is unique within a day only; with the event's own time it is unique.
    event_id = _derived_id(data.get("id"), stamp, name, data.get("severity"), data.get("recipient"))
    parsed.events.append(
        DeliveryEvent(
            provider="mailgun",
            event_id=event_id,
            event=ours,
            email=_recipient(data, "recipient", where),
            send_id=_send_id(variables.get(MAILGUN_SEND_ID)),
            detail=None
            if ours == DELIVERED
            else _words(status.get("message"), status.get("description"), data.get("reason")),
            occurred_at=now if stamp is None else _epoch(stamp, "timestamp", where),
        )
    )
    return parsed


# --- Postmark ------------------------------------------------------------------------------


def postmark_events(body: bytes, now: datetime) -> Parsed:
    """Postmark posts one record per request; its RecordType says which."""
    parsed = Parsed()
    for index, item in enumerate(_objects(_load(body))):
        where = f"record {index}"
        kind = _event_name(item, "RecordType", where)
        if kind == "Delivery":
            ours, recipient_key, time_key, detail = DELIVERED, "Recipient", "DeliveredAt", None
        elif kind in ("Bounce", "SpamComplaint"):
            bounce_type = "SpamComplaint" if kind == "SpamComplaint" else _text(item, "Type", where)
            ours = _POSTMARK_BOUNCES.get(bounce_type or "")
            recipient_key, time_key = "Email", "BouncedAt"
            detail = _words(item.get("Details"), item.get("Description"), bounce_type)
        elif kind == "SubscriptionChange":
            unsubscribed = (
                item.get("SuppressSending") is True and item.get("SuppressionReason") == _POSTMARK_UNSUBSCRIBED
            )
            ours = UNSUBSCRIBE if unsubscribed else None
            recipient_key, time_key, detail = "Recipient", "ChangedAt", _words(item.get("SuppressionReason"))
        else:
            ours = None
        if ours is None:
            parsed.ignored += 1
            continue
        metadata = _object(item, "Metadata", where)
        stamp = item.get(time_key)
        # Postmark gives no event id (a bounce's `ID` is one, other records have none).
        event_id = _derived_id(
            kind, item.get("ID"), item.get("MessageID"), item.get("Type"), item.get(recipient_key), stamp
        )
        parsed.events.append(
            DeliveryEvent(
                provider="postmark",
                event_id=event_id,
                event=ours,
                email=_recipient(item, recipient_key, where),
                send_id=_send_id(metadata.get(POSTMARK_SEND_ID)),
                detail=detail,
                occurred_at=now if stamp is None else _iso(stamp, time_key, where),
            )
        )
    return parsed
