"""The HTTP client the send loop uses to call providers (tests give it a fake transport)."""

from __future__ import annotations

import dagster as dg
import httpx
from pydantic import Field

from campaign_pipelines.providers import ProviderClient

# Connecting should be quick on a healthy provider; a big batch may take a while to answer.
CONNECT_TIMEOUT_S = 5.0


class HttpClientResource(dg.ConfigurableResource):
    timeout_s: float = Field(default=30.0, description="Seconds to wait for a provider's answer to one call.")

    def client(self) -> ProviderClient:
        # Sync, kept alive across calls: measured faster here than httpx's AsyncClient.
        return ProviderClient(timeout=httpx.Timeout(self.timeout_s, connect=CONNECT_TIMEOUT_S))
