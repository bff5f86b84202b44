"""The one list of providers: every module of campaign_pipelines.providers named in `MODULES`
defines `PROVIDER`, its Provider instance, named as the module is.

Servers (which providers a server may name, their default URLs), sending (`get`), the tracking
app's webhook routes (`webhooks`) and the test fakes all read it: adding a provider is adding its
module here, one line.
"""

from __future__ import annotations

import importlib

from campaign_pipelines.providers.base import Provider
from campaign_pipelines.providers.webhook import Webhook

# The provider modules, one a line.
MODULES = (
    "brevo",
    "sendgrid",
    "mailgun",
    "postmark",
    "sandbox",
)


def _load(module_name: str) -> Provider:
    provider = importlib.import_module(f"campaign_pipelines.providers.{module_name}").PROVIDER
    if not isinstance(provider, Provider) or provider.name != module_name:
        raise TypeError(f"campaign_pipelines.providers.{module_name}.PROVIDER must be a Provider named {module_name!r}")
    return provider


PROVIDERS: dict[str, Provider] = {name: _load(name) for name in MODULES}
NAMES = tuple(PROVIDERS)
DEFAULT_URLS: dict[str, str] = {name: provider.default_url for name, provider in PROVIDERS.items()}


def get(name: str) -> Provider:
    """The provider a server names (one of NAMES)."""
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; known: {', '.join(NAMES)}") from None


def webhooks() -> dict[str, Webhook]:
    """The webhooks of the providers that have them, by provider name: /webhooks/<name>."""
    return {name: provider.webhook for name, provider in PROVIDERS.items() if provider.webhook is not None}
