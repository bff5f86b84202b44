"""What every fake provider shares: the reply and record types, and `Fake`, the class a provider's
fake module (tests/fakes/providers/<name>.py, defining `FAKE`) implements.

A fake speaks its provider's real wire format, errors included: the send side answers requests
on its paths with the provider's bodies; the webhook side makes the requests the provider would
post to our /webhooks/<name>, signed or authenticated as it does, for the tests of the tracking app.
"""

from __future__ import annotations

import base64
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import orjson

if TYPE_CHECKING:
    from tests.fakes.providers import FakeProviders

JSON_HEADERS = {"content-type": "application/json"}
# How a webhook request proves itself: as the provider does, with the wrong secret, or not at all.
Auth = Literal["good", "wrong", "missing"]


@dataclass(frozen=True)
class SentMessage:
    """One message a fake accepted, as the recipient would get it (per-recipient data applied)."""

    provider: str
    sender: str
    to: str
    subject: str
    html: str
    text: str
    headers: dict[str, str]
    custom_id: str | None
    message_id: str
    idempotency_key: str | None


@dataclass(frozen=True)
class Call:
    provider: str
    path: str
    status: int
    messages: int
    idempotency_key: str | None
    replayed: bool


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Handled:
    """A fake's answer to one send request: the reply, the idempotency key it saw, the messages it
    accepted, and whether the reply is the stored answer to an earlier call with the same key."""

    reply: Reply
    accepted: list[SentMessage] = field(default_factory=list)
    key: str | None = None
    replayed: bool = False


class Refusal(Exception):
    """A validation failure: the reply to send back."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


class Fake(ABC):
    """One provider's fake. Handlers run under the state's lock and read its scripted rejections."""

    name: ClassVar[str]
    # The API key the fake accepts, unless a test gives another.
    api_key: ClassVar[str]
    # The provider's own words when it refuses a recipient.
    refused_recipient_words: ClassVar[str]
    # Whether a batch with a refused recipient still sends the others (per-recipient verdicts).
    partial_batches: ClassVar[bool] = False

    # -- sending -----------------------------------------------------------------------------

    @abstractmethod
    def url(self, base: str) -> str:
        """The server URL of this provider when the fakes answer at `base` (as its default_url)."""

    @abstractmethod
    def route(self, path: str) -> str | None:
        """What the handler needs of a path that is this provider's ("" when nothing), else None."""

    @abstractmethod
    def authenticate(self, headers: Mapping[str, str], api_key: str) -> Reply | None:
        """The provider's refusal of a request without `api_key`, or None."""

    @abstractmethod
    def handle(self, state: FakeProviders, route: str, headers: Mapping[str, str], body: bytes) -> Handled:
        """Validate and accept a send request as the provider does; raise Refusal to answer an error."""

    @abstractmethod
    def fault(self, status: int, retry_after_s: float | None) -> Reply:
        """The provider's answer with `status` (a 429 with its rate-limit headers: `retry_after_s`,
        or its usual hint when None; some providers send none unless given)."""

    # -- webhooks ----------------------------------------------------------------------------

    @abstractmethod
    def webhook_environment(self) -> dict[str, str]:
        """The webhook's secrets as the tracking app reads them from the environment."""

    @abstractmethod
    def webhook_event(self, kind: str, email: str, send_id: str | None) -> Any:
        """A JSON document the provider posts for one event of our `kind` (delivered, hard_bounce,
        soft_bounce, complaint, unsubscribe)."""

    @abstractmethod
    def webhook_request(self, body: bytes, *, auth: Auth = "good", age_s: float = 0.0) -> tuple[bytes, dict[str, str]]:
        """The body and headers the provider posts for `body`, signed `age_s` seconds ago (where it
        signs a time). A provider that signs inside the body signs a JSON object body and leaves
        any other body as it is."""


def json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps(payload), {**JSON_HEADERS, **(headers or {})})


def load_json(body: bytes, error: Refusal) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise error from None


_EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+")


def valid_email(email: object) -> bool:
    return isinstance(email, str) and _EMAIL.fullmatch(email) is not None


def is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def substitute(text: str, substitutions: Mapping[str, Any]) -> str:
    for key, value in substitutions.items():
        text = text.replace(key, str(value))
    return text


def words_for(status: int) -> str:
    """The reason phrase a fake puts in its error bodies."""
    return "Internal Server Error" if status == 500 else "Service Unavailable" if status == 503 else f"HTTP {status}"


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The Authorization header of HTTP basic auth."""
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
