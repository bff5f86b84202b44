"""What the provider tests share: the sender, rendered messages, and `Wire` (a client + the fakes)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import orjson

from campaign_pipelines import providers
from campaign_pipelines.providers import Delivery, OutgoingMessage, Sender
from campaign_pipelines.providers.client import ProviderClient
from tests.fakes.providers import DEFAULT_KEYS, FakeProviders, urls

SENDER = Sender("Acme News", "news@example.com")
# Short enough that a scripted delay turns into a timeout quickly over the socket.
CLIENT_TIMEOUT = httpx.Timeout(2.0, read=0.3)


@dataclass(frozen=True)
class Wire:
    """A client reaching the fakes, the providers' URLs on them and the fakes' state."""

    client: ProviderClient
    urls: dict[str, str]
    state: FakeProviders

    def send(self, provider_name: str, messages: list[OutgoingMessage], **overrides: object) -> list[Delivery]:
        provider = providers.get(provider_name)
        arguments: dict = {
            "url": self.urls[provider_name],
            "api_key": DEFAULT_KEYS[provider_name],
            "sender": SENDER,
            "messages": messages,
            "idempotency_key": None,
        }
        arguments.update(overrides)
        return provider.send(self.client, **arguments)


def message(index: int, *, to: str | None = None, **changes: object) -> OutgoingMessage:
    """A rendered message whose greeting, link token, subject and headers are the recipient's own."""
    fields: dict = {
        "send_id": f"c7-r{index}",
        "to_email": to or f"reader{index}@example.org",
        "subject": f"March update for reader {index}",
        "html": (
            "<html><body>\n"
            f"<p>Hello reader {index},</p>\n"
            "<p>Our March news, the same for everyone.</p>\n"
            f'<a href="https://t.example.com/u/tok{index}">Unsubscribe</a>\n'
            "</body></html>\n"
        ),
        "text": f"Hello reader {index},\nOur March news, the same for everyone.\nUnsubscribe: https://t.example.com/u/tok{index}\n",
        "headers": {
            "List-Unsubscribe": f"<https://t.example.com/u/tok{index}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    }
    fields.update(changes)
    return OutgoingMessage(**fields)


def messages(count: int, start: int = 0) -> list[OutgoingMessage]:
    return [message(index) for index in range(start, start + count)]


class Recorder:
    """An in-process client to the fakes that keeps every request it sent, to inspect the wire."""

    def __init__(self, state: FakeProviders) -> None:
        self.requests: list[httpx.Request] = []
        inner = state.transport()

        def handler(request: httpx.Request) -> httpx.Response:
            request.read()
            self.requests.append(request)
            return inner.handle_request(request)

        self.client = ProviderClient(httpx.MockTransport(handler), timeout=CLIENT_TIMEOUT)
        self.urls = urls("http://fake.test")
        self.state = state

    def send(self, provider_name: str, messages: list[OutgoingMessage], **overrides: object) -> list[Delivery]:
        return Wire(self.client, self.urls, self.state).send(provider_name, messages, **overrides)

    def json(self, index: int = -1) -> object:
        return orjson.loads(self.requests[index].content)
