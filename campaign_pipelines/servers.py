"""Sending servers (the seed's "Serveurs SMTP"): an API account at a provider.

The API key never enters the database, run config, logs or the UI: a server stores where
the key lives, `env:NAME` (an environment variable) or `file:/path` (a secret file), and
the key is read only when a message is sent.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg

from campaign_pipelines.errors import NotFoundError, ValidationError, unknown
from campaign_pipelines.providers import registry
from campaign_pipelines.store import catalog

# The providers a server may name, and the documented endpoint of each (its `default_url`).
DEFAULT_URLS = registry.DEFAULT_URLS
PROVIDERS = registry.NAMES
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ServerSpec:
    name: str
    provider: str
    url: str | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None
    active: bool = True
    daily_cap: int | None = None
    timezone: str = "UTC"
    batch_size: int | None = None
    calls_in_flight: int | None = None


def _key_ref(spec: ServerSpec, problems: list[str]) -> str:
    if spec.api_key_env and spec.api_key_file:
        problems.append("give the API key as api_key_env or api_key_file, not both")
        return ""
    if spec.api_key_env:
        name = spec.api_key_env.strip()
        if not _ENV_NAME.fullmatch(name):
            # Never echo the value: a user may have pasted the key itself here.
            problems.append(
                "api_key_env must be the NAME of an environment variable (letters, digits, _), not the key itself"
            )
        elif not os.environ.get(name):
            problems.append(f"environment variable {name} (api_key_env) is not set or empty")
        return f"env:{name}"
    if spec.api_key_file:
        path = Path(spec.api_key_file).expanduser().resolve()
        if not path.is_file():
            problems.append(f"api_key_file {path} does not exist or is not a file")
        elif not os.access(path, os.R_OK):
            problems.append(f"api_key_file {path} is not readable")
        return f"file:{path}"
    if _local(spec.provider):
        return "none:"
    problems.append("an API key is required: set api_key_env (an environment variable's name) or api_key_file")
    return ""


def _local(provider: str) -> bool:
    """A provider that sends nowhere (the sandbox): no API key, a file: URL."""
    return provider in registry.PROVIDERS and registry.get(provider).local


def _validate(spec: ServerSpec) -> catalog.ServerFields:
    problems: list[str] = []
    if not spec.name.strip():
        problems.append("name is empty")
    if spec.provider not in DEFAULT_URLS:
        problems.append(f"provider {spec.provider!r} is not one of {', '.join(PROVIDERS)}")
    url = (spec.url or "").strip() or DEFAULT_URLS.get(spec.provider, "")
    if spec.provider in DEFAULT_URLS and not _local(spec.provider):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(f"url {url!r} is not an http(s) URL")
    key_ref = _key_ref(spec, problems)
    if spec.daily_cap is not None and spec.daily_cap < 1:
        problems.append(f"daily_cap must be at least 1 (leave it empty for no cap), got {spec.daily_cap}")
    if spec.batch_size is not None and spec.batch_size < 1:
        problems.append(f"batch_size must be at least 1 (empty = the provider's maximum), got {spec.batch_size}")
    if spec.calls_in_flight is not None and spec.calls_in_flight < 1:
        problems.append(
            f"calls_in_flight must be at least 1 (empty = the provider's documented rate), got {spec.calls_in_flight}"
        )
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"timezone {spec.timezone!r} is not a known time zone (e.g. UTC, Europe/Paris)")
    if problems:
        raise ValidationError(f"server '{spec.name}'", problems)
    return catalog.ServerFields(
        provider=spec.provider,
        url=url,
        api_key_ref=key_ref,
        active=spec.active,
        daily_cap=spec.daily_cap,
        timezone=spec.timezone,
        batch_size=spec.batch_size,
        calls_in_flight=spec.calls_in_flight,
    )


def add_server(conn: psycopg.Connection, spec: ServerSpec) -> int:
    """Register a new server; its name must be unused."""
    fields = _validate(spec)
    with conn.transaction():
        if catalog.server_by_name(conn, spec.name.strip()) is not None:
            raise ValidationError(f"server '{spec.name}'", ["a server with this name already exists"])
        return catalog.insert_server(conn, spec.name.strip(), fields)


def save_server(conn: psycopg.Connection, spec: ServerSpec) -> tuple[int, bool]:
    """Register the server, or update the one with this name: (id, created)."""
    fields = _validate(spec)
    with conn.transaction():
        existing = catalog.server_by_name(conn, spec.name.strip())
        if existing is None:
            return catalog.insert_server(conn, spec.name.strip(), fields), True
        catalog.update_server(conn, existing.id, fields)
        return existing.id, False


def set_active(conn: psycopg.Connection, name: str, active: bool) -> list[int]:
    """Activate or deactivate a server; returns the unfinished campaigns that use it."""
    with conn.transaction():
        server = catalog.server_by_name(conn, name)
        if server is None:
            raise unknown_server(conn, name)
        catalog.set_server_active(conn, server.id, active)
        return catalog.campaigns_using_server(conn, server.id)


def unknown_server(conn: psycopg.Connection, name: str) -> NotFoundError:
    """`server 'X' does not exist; existing servers: ...`, for a name the user typed."""
    return NotFoundError(unknown("server", name, [server.name for server in catalog.list_servers(conn)]))


def describe_key_ref(ref: str) -> str:
    """How the UI and CLI show where a key lives (never the key)."""
    kind, _, where = ref.partition(":")
    return {"env": f"env var {where}", "file": f"file {where}"}.get(kind, "no key")


def resolve_api_key(ref: str) -> str:
    """The API key itself, read where the server says it lives, only at send time."""
    kind, _, where = ref.partition(":")
    if kind == "env":
        value = os.environ.get(where, "")
        if not value:
            raise ValidationError("API key", [f"environment variable {where} is not set or empty"])
        return value
    if kind == "file":
        try:
            return Path(where).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ValidationError("API key", [f"cannot read key file {where}: {error.strerror}"]) from None
    return ""
