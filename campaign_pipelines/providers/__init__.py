"""Email providers: one module per provider API, knowing nothing of Dagster or the database.

`get(name)` gives the adapter for a server's provider (the names of servers.DEFAULT_URLS);
`deliver()` sends rendered messages through it with the retry policy of the send step.
"""

from __future__ import annotations

from campaign_pipelines.providers.base import (
    Ambiguous,
    AuthFailed,
    BatchRefused,
    Delivery,
    OutgoingMessage,
    Provider,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Rejected,
    Sender,
    ServerError,
    Unreachable,
)
from campaign_pipelines.providers.brevo import Brevo
from campaign_pipelines.providers.client import ProviderClient
from campaign_pipelines.providers.delivery import deliver
from campaign_pipelines.providers.mailgun import Mailgun
from campaign_pipelines.providers.postmark import Postmark
from campaign_pipelines.providers.sandbox import Sandbox
from campaign_pipelines.providers.sendgrid import SendGrid

__all__ = [
    "Ambiguous",
    "AuthFailed",
    "BatchRefused",
    "Delivery",
    "OutgoingMessage",
    "Provider",
    "ProviderClient",
    "ProviderError",
    "QuotaExhausted",
    "RateLimited",
    "Rejected",
    "Sender",
    "ServerError",
    "Unreachable",
    "deliver",
    "get",
    "NAMES",
]

_PROVIDERS: dict[str, Provider] = {
    provider.name: provider for provider in (Brevo(), SendGrid(), Mailgun(), Postmark(), Sandbox())
}
NAMES = tuple(_PROVIDERS)


def get(name: str) -> Provider:
    """The adapter for provider `name` ("brevo", "sendgrid", "mailgun", "postmark", "sandbox")."""
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; known: {', '.join(NAMES)}") from None
