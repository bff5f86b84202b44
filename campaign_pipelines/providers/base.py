"""What every provider adapter shares: the message and result types, the error family and `Provider`.

The send step renders one `OutgoingMessage` per recipient and hands a list of them to `deliver()`
(campaign_pipelines.providers.delivery), which cuts them into calls with `Provider.split` and sends
each call with `Provider.send`. A provider's webhooks are its `webhook` (providers.webhook). The
registry (providers.registry) lists the provider modules. Nothing here knows about Dagster or the
database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from campaign_pipelines.headers import is_field_name, unsafe_characters
from campaign_pipelines.providers.client import ProviderClient
from campaign_pipelines.providers.webhook import Webhook


@dataclass(frozen=True)
class Sender:
    name: str
    email: str

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2].lower()


@dataclass(frozen=True)
class OutgoingMessage:
    """One fully rendered email for one recipient.

    `send_id` is our own correlation id: each adapter puts it where its provider hands custom data
    back in webhooks, so events find their send without the provider's message id.
    """

    send_id: str
    to_email: str
    subject: str
    html: str
    text: str
    headers: dict[str, str]


class Delivery(NamedTuple):
    """The provider's verdict on one message: accepted (with its message id, when the provider gives
    one per recipient or per call) or refused with the provider's own words. A tuple: a batch
    makes a thousand of them."""

    send_id: str
    ok: bool
    provider_message_id: str | None
    error: str | None

    @classmethod
    def accepted(cls, send_id: str, provider_message_id: str | None) -> Delivery:
        return cls(send_id, True, provider_message_id, None)

    @classmethod
    def refused(cls, send_id: str, error: str) -> Delivery:
        return cls(send_id, False, None, error)


class ProviderError(Exception):
    """A call that did not give a verdict per message. Messages are in plain words, quote the
    provider's own error text and never contain the API key.

    `done` holds the verdicts of the calls that did finish before this one failed (filled by
    `deliver()` when it sends several calls), so the caller records them instead of resending.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.done: list[Delivery] = []


class RateLimited(ProviderError):
    """429: send nothing more before `retry_after_s` (None when the provider gave no hint)."""

    def __init__(self, message: str, *, retry_after_s: float | None, status: int | None = 429) -> None:
        super().__init__(message, status=status)
        self.retry_after_s = retry_after_s


class AuthFailed(ProviderError):
    """401/403 or an account that may not send: the line must stop until someone fixes the account."""


class QuotaExhausted(ProviderError):
    """The account has no credits or sending allowance left (a 402, say): retrying will not help today."""


class ServerError(ProviderError):
    """5xx: the provider failed before deciding; retryable with backoff."""

    def __init__(self, message: str, *, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after_s = retry_after_s


class Unreachable(ProviderError):
    """No connection could be made (connect error, connect or pool timeout): nothing was sent."""


class Ambiguous(ProviderError):
    """The request left but no answer came back (read timeout, dropped connection): the messages
    may have been sent. Safe to retry only with an idempotency key the provider honours."""


class Rejected(ProviderError):
    """A 4xx that condemns the whole call (invalid sender, unknown domain, malformed request):
    every message of the call failed for this reason."""


class BatchRefused(ProviderError):
    """The provider refused a multi-message call because of some of its messages (a bad recipient,
    a payload too large) and sent none of them. Smaller calls will tell which ones: `deliver()`
    splits the call in halves until each bad message gets its own verdict."""


# Rough per-request overhead of JSON keys and multipart boundaries, in bytes, when sizing calls.
_MESSAGE_OVERHEAD = 512


class Provider(ABC):
    """One email provider: its HTTP API (builds one request, sends it, maps the answer) and its
    webhooks.

    Subclasses set `name` (the server's provider, the webhook path /webhooks/<name>; also the
    name of its module in the registry), `default_url` (the documented endpoint a server uses when
    it gives none), `max_batch` (messages per call), `max_call_bytes` (a payload budget under the
    provider's documented request size), `idempotent` (whether `send` honours
    `idempotency_key`), `max_in_flight` (the most calls a line keeps in flight at once, from the
    provider's documented request rate; a line opens fewer when they suffice), `webhook` (its
    Webhook, None for one that reports nothing) and `local` (True for one that sends nowhere, the
    sandbox: no API key, a file: URL), and define `send`.
    """

    name: ClassVar[str]
    default_url: ClassVar[str]
    max_batch: ClassVar[int]
    max_call_bytes: ClassVar[int]
    idempotent: ClassVar[bool] = False
    max_in_flight: ClassVar[int] = 4
    webhook: ClassVar[Webhook | None] = None
    local: ClassVar[bool] = False

    @abstractmethod
    def send(
        self,
        client: ProviderClient,
        *,
        url: str,
        api_key: str,
        sender: Sender,
        messages: Sequence[OutgoingMessage],
        idempotency_key: str | None,
    ) -> list[Delivery]:
        """One HTTP call; one Delivery per message, in order. A single message goes through the
        provider's single-send form, several through its batch form."""

    def split(self, messages: Sequence[OutgoingMessage]) -> list[list[OutgoingMessage]]:
        """Cut `messages` into calls this provider accepts: at most `max_batch` messages, no
        recipient twice in one call, within `max_call_bytes`; messages that cannot share a call go
        alone. Order is kept except for repeated recipients, which move to a later call."""
        costs = self._costs(messages)
        calls: list[list[OutgoingMessage]] = []
        pending = list(zip(messages, costs, strict=True))
        while pending:
            later: list[tuple[OutgoingMessage, int | None]] = []
            call: list[OutgoingMessage] = []
            seen: set[str] = set()
            size = 0
            for message, cost in pending:
                if cost is None:
                    calls.append([message])
                    continue
                recipient = message.to_email.lower()
                if recipient in seen:
                    later.append((message, cost))
                    continue
                if call and (len(call) >= self.max_batch or size + cost > self.max_call_bytes):
                    calls.append(call)
                    call, seen, size = [], set(), 0
                call.append(message)
                seen.add(recipient)
                size += cost
            if call:
                calls.append(call)
            pending = later
        return calls

    def _costs(self, messages: Sequence[OutgoingMessage]) -> list[int | None]:
        """Bytes each message adds to a batch call, or None for a message that must go alone."""
        # Most batches are far below the call budget: an upper bound (4 bytes a character, UTF-8's
        # most) spares encoding every body to measure it.
        if sum(_size_bound(message) for message in messages) <= self.max_call_bytes:
            return [1] * len(messages)
        return [message_size(message) for message in messages]


def message_size(message: OutgoingMessage) -> int:
    """An upper bound of the bytes a message adds to a request (UTF-8, before JSON escaping)."""
    return envelope_size(message) + _utf8_len(message.html) + _utf8_len(message.text)


def _size_bound(message: OutgoingMessage) -> int:
    """At least message_size(message), without encoding anything."""
    characters = len(message.to_email) + len(message.send_id) + len(message.subject)
    characters += len(message.html) + len(message.text)
    characters += sum(len(name) + len(value) + 8 for name, value in message.headers.items())
    return _MESSAGE_OVERHEAD + 4 * characters


def envelope_size(message: OutgoingMessage) -> int:
    """The bytes of a message without its bodies: recipient, ids, subject, headers, field names."""
    size = _MESSAGE_OVERHEAD + len(message.to_email) + len(message.send_id) + _utf8_len(message.subject)
    for name, value in message.headers.items():
        size += len(name) + _utf8_len(value) + 8
    return size


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def ensure_batch(provider: Provider, messages: Sequence[OutgoingMessage]) -> None:
    """`send` is given what `split` made: refuse anything else loudly, as a programming error."""
    if not messages:
        raise ValueError(f"{provider.name}: send() needs at least one message")
    if len(messages) > provider.max_batch:
        raise ValueError(
            f"{provider.name}: {len(messages)} messages in one call, the most is {provider.max_batch}; use split()"
        )


def ensure_header_safe(provider: Provider, sender: Sender, messages: Sequence[OutgoingMessage]) -> None:
    """Refuse the call, before anything is sent, when the sender or a header could forge headers.

    Validation refuses control characters where they are typed; this catches what it could not see
    (a line saved by an older version). Rejected, not ValueError: the send step records the reason
    on the call's contacts instead of crashing the run.
    """
    for field, value in (("sender name", sender.name), ("sender email", sender.email)):
        if (names := unsafe_characters(value)) is not None:
            raise Rejected(
                f"{provider.name}: the line's {field} contains control characters ({names}) that would forge"
                " email headers; nothing was sent: correct the line's sender"
            )
    for message in messages:
        for name, value in message.headers.items():
            names = unsafe_characters(value)
            if names is not None or not is_field_name(name):
                what = f"control characters ({names})" if names is not None else "a name that is not a header name"
                raise Rejected(
                    f"{provider.name}: the header {name!r} of the message to {message.to_email} has {what};"
                    " nothing was sent"
                )
