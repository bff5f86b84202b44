"""The README's table of providers is the registry's: a provider added, renamed or given another
secret cannot leave it behind."""

from __future__ import annotations

from pathlib import Path

from campaign_pipelines.providers import registry

README = Path(__file__).resolve().parents[1] / "README.md"


def provider_table() -> str:
    """The table as README.md must hold it, from the registry."""
    rows = [
        "| Provider | Default server URL | Webhook URL | Webhook secrets (environment) |",
        "|---|---|---|---|",
    ]
    for name, provider in registry.PROVIDERS.items():
        webhook = provider.webhook
        url = f"`POST /webhooks/{name}`" if webhook is not None else "none"
        secrets = ", ".join(f"`{variable}`" for variable in webhook.secrets) if webhook is not None else "none"
        rows.append(f"| `{name}` | `{provider.default_url}` | {url} | {secrets} |")
    return "\n".join(rows) + "\n"


def test_the_readme_lists_every_provider_with_its_webhook_url_and_secrets() -> None:
    assert provider_table() in README.read_text(encoding="utf-8"), (
        "README.md's provider table differs from the registry; put this one in its place:\n" + provider_table()
    )
