"""The HTTP plumbing the adapters share: one POST with transport errors mapped to our error family,
and the parsing of rate-limit hints. Timeouts are the caller's client's (explicit there)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from campaign_pipelines.providers.base import (
    Ambiguous,
    BatchRefused,
    Delivery,
    OutgoingMessage,
    RateLimited,
    Rejected,
    ServerError,
    Unreachable,
)
from campaign_pipelines.providers.client import ProviderClient

# A provider's error text is quoted in our messages, cut to this length.
_MAX_QUOTE = 300


def post(client: ProviderClient, provider: str, url: str, *, content: bytes, headers: dict[str, str]) -> httpx.Response:
    """POST and read the whole answer. Failures before the request left become `Unreachable`
    (nothing sent); failures after it may have arrived become `Ambiguous`."""
    try:
        return client.post(url, content=content, headers=headers)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError) as error:
        raise Unreachable(f"{provider}: could not connect to {_host(url)} ({type(error).__name__}: {error})") from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
        raise Rejected(f"{provider}: the server URL {url!r} cannot be used ({error})") from None
    except httpx.LocalProtocolError:
        # Raised before anything is sent; its text can quote a header value, so the key: not shown.
        raise Rejected(
            f"{provider}: the request could not be written as HTTP (a header value with a line break or "
            "other forbidden character, such as a mangled API key?)"
        ) from None
    except httpx.TransportError as error:
        raise Ambiguous(
            f"{provider}: no answer from {_host(url)} after the request was sent "
            f"({type(error).__name__}: {error or 'no detail'}); the messages may have been sent"
        ) from None


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} when the body is empty, not JSON or not an object."""
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    return payload if isinstance(payload, dict) else {}


def is_json(response: httpx.Response) -> bool:
    try:
        orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return False
    return True


def not_its_answer(provider: str, response: httpx.Response, hint: str = "") -> Ambiguous:
    """A success status whose body is not the provider's documented JSON (a proxy's page, say):
    whether the messages went is unknown, so they are neither sent nor failed."""
    said = quote(response.text or response.reason_phrase)
    return Ambiguous(
        f"{provider}: the answer (HTTP {response.status_code}) is not {provider}'s JSON: {said!r}; "
        f"the messages may have been sent{hint}"
    )


def raise_if_busy(
    provider: str, response: httpx.Response, words: str, wait: Callable[[httpx.Response], float | None] | None = None
) -> None:
    """429 is RateLimited and 5xx ServerError, each with the provider's hint of how long to wait:
    `wait(response)`, the standard headers (`retry_after`) unless the provider has its own."""
    status = response.status_code
    if status != 429 and status < 500:
        return
    retry_after_s = retry_after(response.headers) if wait is None else wait(response)
    if status == 429:
        raise RateLimited(f"{provider}: rate limited: {words}", retry_after_s=retry_after_s)
    raise ServerError(f"{provider}: server error: {words}", status=status, retry_after_s=retry_after_s)


def refused_for_a_message(
    provider: str, status: int, words: str, messages: Sequence[OutgoingMessage], *, too_big: bool
) -> list[Delivery]:
    """The call was refused because of one of its messages: a bad recipient, or a call too big
    (`too_big`). Several messages are BatchRefused, so that deliver() halves the call until the bad
    one goes alone; a lone message is that recipient refused, or, too big even alone, Rejected."""
    if len(messages) > 1:
        raise BatchRefused(f"{provider}: refused the batch of {len(messages)} because of some message: {words}")
    if too_big:
        raise Rejected(f"{provider}: refused the request: {words}", status=status)
    return [Delivery.refused(messages[0].send_id, f"{provider} refused {messages[0].to_email}: {words}")]


def error_words(said: str, status: int, code: str = "") -> str:
    """A refusal in the provider's words (`said`, quoted already), with its error code when it gave
    one, and the HTTP status: "Invalid sender (invalid_parameter, HTTP 400)"."""
    return f"{said} ({code}, HTTP {status})" if code else f"{said} (HTTP {status})"


def quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_QUOTE else text[: _MAX_QUOTE - 1] + "…"


def retry_after(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """Seconds to wait from the standard headers: `Retry-After` (seconds or an HTTP date) or
    `X-RateLimit-Reset` (an epoch in seconds)."""
    now = time.time() if now is None else now
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
    value = headers.get("x-ratelimit-reset")
    if value:
        try:
            return max(0.0, float(value) - now)
        except ValueError:
            pass
    return None


def _host(url: str) -> str:
    try:
        return httpx.URL(url).host or url
    except httpx.InvalidURL:
        return url
