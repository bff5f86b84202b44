"""The webhook half of a provider: what its `Webhook` defines, the events it reads, and the checks
its proofs are made of.

tracking_app.webhooks serves `POST /webhooks/<provider>` for every provider of the registry that
has a `webhook`: it reads the secrets the webhook names from the environment (`configure`),
refuses big bodies, then hands the raw request to `receive`, which authenticates it and reads
its events in our words. Nothing here knows about Starlette or the database.

The checks: HMAC or public-key signatures over the raw body (`signed_recently` for the signed
time), or the credentials configured on the provider's webhook (`bearer_token`,
`basic_credentials`); secrets are compared in constant time (`same_secret`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

# Our names for the provider events we keep; every other provider event is ignored.
DELIVERED, HARD_BOUNCE, SOFT_BOUNCE, COMPLAINT, UNSUBSCRIBE = (
    "delivered",
    "hard_bounce",
    "soft_bounce",
    "complaint",
    "unsubscribe",
)
EVENTS = (DELIVERED, HARD_BOUNCE, SOFT_BOUNCE, COMPLAINT, UNSUBSCRIBE)
# A signature from the future is a clock ahead of ours, by this much at most.
MAX_CLOCK_AHEAD_S = 300.0


@dataclass(frozen=True)
class DeliveryEvent:
    """A provider's webhook event in our words.

    `event_id` names the event at its provider: the provider's own id, or one derived from the
    event's identifying fields (campaign_pipelines.providers._payload.derived_id); copies of one
    event share it. `email` is the recipient as the provider wrote it; `send_id` is ours
    (campaign_pipelines.send_ids) when the provider carried it back; `detail` is the provider's
    own words (a bounce reason).
    """

    provider: str
    event_id: str
    event: str
    email: str
    send_id: str | None
    detail: str | None
    occurred_at: datetime


@dataclass
class Parsed:
    """What one webhook request brought."""

    events: list[DeliveryEvent] = field(default_factory=list)
    # Provider events we do not keep (opens, clicks, deferrals, …): answered 200 all the same.
    ignored: int = 0
    # A one-time token the request was signed with: spent with the events, in one
    # transaction; a second request with it is a replay, answered 406.
    token: str | None = None


class MalformedPayload(ValueError):
    """The body is not what the provider sends (answered 400); nothing of it is recorded. The
    message says what is wrong and where."""


class Refused(Exception):
    """The request is not the provider's (answered `status`, 401 unless said): a bad or missing
    signature or credentials, or a signature outside the provider's window. `message` is shown to
    the client and logged, so it never holds a secret."""

    def __init__(self, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Webhook(ABC):
    """One provider's webhooks, served at `/webhooks/<provider name>`.

    Subclasses set `secrets` (the names of the environment variables the check needs, all of them
    required: a provider missing one answers 503 and its events wait in the provider's retries)
    and `max_age_s` (how old a signed timestamp may be; None when the provider signs no time,
    its copies then being stored once by event id), and define `receive`.
    """

    secrets: ClassVar[tuple[str, ...]]
    max_age_s: ClassVar[float | None] = None

    def configure(self, values: Mapping[str, str]) -> Any:
        """What `receive` is given as `secrets`, made once from the variables' values (all set,
        stripped). A value that cannot be used raises ValueError naming its variable and why,
        never the value."""
        return dict(values)

    @abstractmethod
    def receive(self, secrets: Any, headers: Mapping[str, str], body: bytes, now: datetime) -> Parsed:
        """Authenticate the raw request, then read its events. Raises Refused or MalformedPayload;
        `headers` are looked up case-insensitively. Runs in a worker thread, so it may block (a
        certificate fetched and cached, say) but must be safe to call from several at once."""


class BasicAuthWebhook(Webhook):
    """A provider that signs nothing and sends the basic auth configured on its webhook (Postmark,
    SparkPost, Mailjet). Subclasses set `secrets` to the user's variable then the password's, and
    define `events`, which reads the body once the credentials match."""

    def receive(self, secrets: Any, headers: Mapping[str, str], body: bytes, now: datetime) -> Parsed:
        user_env, password_env = self.secrets
        if not basic_auth_ok(headers.get("authorization"), secrets[user_env], secrets[password_env]):
            raise Refused("bad or missing basic auth")
        return self.events(body, now)

    @abstractmethod
    def events(self, body: bytes, now: datetime) -> Parsed:
        """The request's events in our words."""


def out_of_window(max_age_s: float) -> Refused:
    return Refused(
        f"the signature's timestamp is older than {_duration(max_age_s)}"
        f" or more than {_duration(MAX_CLOCK_AHEAD_S)} ahead"
    )


def signed_recently(timestamp: str, now: float, max_age_s: float) -> bool:
    """The signature's timestamp (Unix seconds) is at most `max_age_s` old and MAX_CLOCK_AHEAD_S ahead."""
    try:
        signed_at = float(timestamp)
    except ValueError:
        return False
    return -MAX_CLOCK_AHEAD_S <= now - signed_at <= max_age_s


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


def basic_auth_ok(authorization: str | None, user: str, password: str) -> bool:
    basic = basic_credentials(authorization)
    if basic is None:
        return False
    # Both compared, whatever the first says: the time taken tells nothing.
    user_ok = same_secret(basic[0], user)
    password_ok = same_secret(basic[1], password)
    return user_ok and password_ok


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _credentials(authorization: str | None, scheme: str) -> str | None:
    if not authorization:
        return None
    given, _, value = authorization.strip().partition(" ")
    return value.strip() if given.lower() == scheme and value.strip() else None


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:g} hours" if seconds >= 3600 else f"{seconds / 60:g} minutes"
