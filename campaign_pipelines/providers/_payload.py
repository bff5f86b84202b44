"""Reading webhook bodies: the JSON helpers every provider's event parsing is made of.

Each raises MalformedPayload with what is wrong and where (`where` names the event, "event 3").
`kept_events` is the loop over a body's events: each one's name read and mapped to our kind, the
ones we do not keep counted as ignored.
Event ids: a provider's own id when it gives one that names the event; otherwise `derived_id`, a
digest of the fields that identify the event as the provider sent them, so that a provider's
retry or a replay is stored once.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from campaign_pipelines.providers.webhook import MalformedPayload, Parsed

# What a provider's reading of an event name gives: our kind, or more that goes with it.
Kind = TypeVar("Kind")

# Derived ids are "sha256:<hex>": a provider's own id must have no ':' (base64url, hex, a UUID), so the two never meet.
_DERIVED_ID_PREFIX = "sha256:"


def load(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise MalformedPayload(f"the body is not JSON: {error}") from None


def objects(document: Any) -> list[dict[str, Any]]:
    """One event object, or a batch of them."""
    items = document if isinstance(document, list) else [document]
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise MalformedPayload(f"event {index} is not a JSON object")
    return items


def kept_events(
    parsed: Parsed,
    items: Iterable[dict[str, Any] | None],
    key: str,
    kinds: Mapping[str, Kind] | Callable[[str, dict[str, Any], str], Kind | None],
    *,
    noun: str = "event",
) -> Iterator[tuple[dict[str, Any], str, str, Kind]]:
    """The events we keep, in the body's order, each as (item, where, its name at `key`, our kind);
    every other one is counted in `parsed.ignored`. `kinds` maps the name to our kind, or reads it
    from (name, item, where) when the name alone does not say (a bounce split by its type); None
    is an event we do not keep. An item given as None holds no event (SparkPost's ping). `where`
    is "<noun> <index>"."""
    for index, item in enumerate(items):
        where = f"{noun} {index}"
        if item is None:
            parsed.ignored += 1
            continue
        name = event_name(item, key, where)
        ours = kinds.get(name) if isinstance(kinds, Mapping) else kinds(name, item, where)
        if ours is None:
            parsed.ignored += 1
            continue
        yield item, where, name, ours


def text(item: dict[str, Any], key: str, where: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedPayload(f"{where}: {key} is not text")
    return value


def recipient(item: dict[str, Any], key: str, where: str) -> str:
    value = text(item, key, where)
    if value is None or not value.strip():
        raise MalformedPayload(f"{where}: the recipient ({key}) is missing")
    return value


def obj(item: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = item.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedPayload(f"{where}: {key} is not an object")
    return value


def send_id(value: Any) -> str | None:
    # Our own id is text; anything else is not ours, and the event is kept by address.
    return value if isinstance(value, str) and value.strip() else None


def words(*texts: Any) -> str | None:
    """The first of the provider's texts that says something."""
    return next((each.strip() for each in texts if isinstance(each, str) and each.strip()), None)


def epoch(value: Any, key: str, where: str, *, per_second: int = 1) -> datetime:
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


def iso(value: Any, key: str, where: str) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    raise MalformedPayload(f"{where}: {key} {value!r} is not an ISO 8601 time")


def derived_id(*fields: Any) -> str:
    """An event id from the fields that identify the event, as the provider sent them (JSON values).

    An exact copy has the same fields, hence the same id; two events differ in at least one of them.
    """
    return _DERIVED_ID_PREFIX + hashlib.sha256(orjson.dumps(fields)).hexdigest()


def event_name(item: dict[str, Any], key: str, where: str) -> str:
    name = item.get(key)
    if not isinstance(name, str):
        raise MalformedPayload(f"{where}: {key} is missing")
    return name
