"""Email providers: one module per provider (its API and its webhooks), knowing nothing of Dagster
or the database.

`get(name)` gives the provider a server names (the registry's NAMES, providers.registry);
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
from campaign_pipelines.providers.client import ProviderClient
from campaign_pipelines.providers.delivery import deliver
from campaign_pipelines.providers.registry import NAMES, get

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
