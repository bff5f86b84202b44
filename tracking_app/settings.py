"""The tracking app's settings, read from the environment with `starlette.config.Config`, and
the uvicorn command that serves it.

`load_settings()` runs in the app's lifespan, so a missing TRACKING_SECRET stops uvicorn at
startup with every problem listed; tests build `Settings` directly and pass it to `create_app`.
`uvicorn_command()` is read before uvicorn starts: the size limit of a request's headers is
uvicorn's, not the app's.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.config import Config

from campaign_pipelines.errors import ValidationError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_FLUSH_SIZE = 1000
DEFAULT_FLUSH_INTERVAL_S = 0.5
# About 200 bytes an event: 500,000 events kept while PostgreSQL is down is ~100 MB per process.
DEFAULT_MAX_BUFFERED = 500_000
DEFAULT_PREFETCH_S = 10.0
DEFAULT_LINK_CACHE_CAMPAIGNS = 256
# How long shutdown keeps retrying a database that is down before giving buffered events up.
DEFAULT_SHUTDOWN_RETRY_S = 10.0
# A request's line and headers together. A tracked URL is ~100 bytes and a browser or an image
# proxy sends 1-2 KB of headers, a few KB more when a parent domain sets cookies; webhooks carry
# their events in the body. Past this, uvicorn answers 400 and closes the connection.
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
# Below this, ordinary browser requests would be refused: a typo, not a choice.
MIN_MAX_HEADER_BYTES = 4 * 1024


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret: bytes
    # Only these peers may tell the client address in X-Forwarded-For (a load balancer).
    trusted_proxies: tuple[IPNetwork, ...] = ()
    flush_size: int = DEFAULT_FLUSH_SIZE
    flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S
    max_buffered: int = DEFAULT_MAX_BUFFERED
    # An open or click this soon after the contact was sent is a machine's (flag prefetch).
    prefetch_s: float = DEFAULT_PREFETCH_S
    link_cache_campaigns: int = DEFAULT_LINK_CACHE_CAMPAIGNS
    shutdown_retry_s: float = DEFAULT_SHUTDOWN_RETRY_S


def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """Comma-separated addresses or CIDR networks; raises ValueError naming the first bad one."""
    networks = []
    for part in value.split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{part.strip()!r} is not an IP address or network") from None
    return tuple(networks)


def _reader(config: Config, problems: list[str]) -> Callable[[str, type[int] | type[float], float, float], float]:
    """`read(name, cast, default, minimum)`: a number from the environment, its problems added to `problems`."""

    def read(name: str, cast: type[int] | type[float], default: float, minimum: float) -> float:
        raw = config(name, default=None)
        if raw is None or not raw.strip():
            return default
        try:
            value = cast(raw)
        except ValueError:
            problems.append(f"{name}={raw!r} is not a number")
            return default
        if value < minimum:
            problems.append(f"{name} must be at least {minimum}, got {raw}")
        return value

    return read


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment; a ValidationError lists every problem at once."""
    config = Config(environ=os.environ if environ is None else environ)
    problems: list[str] = []
    read = _reader(config, problems)

    database_url = config("DATABASE_URL", default="") or ""
    if not database_url.strip():
        problems.append("DATABASE_URL is not set: the tracking app records events in the campaign database")
    secret = config("TRACKING_SECRET", default="") or ""
    if not secret:
        problems.append(
            "TRACKING_SECRET is not set: it signs the tokens of tracked URLs and must be the senders' secret"
        )
    try:
        trusted = parse_networks(config("TRACKING_TRUSTED_PROXIES", default=""))
    except ValueError as error:
        problems.append(f"TRACKING_TRUSTED_PROXIES: {error}")
        trusted = ()
    settings = Settings(
        database_url=database_url,
        secret=secret.encode(),
        trusted_proxies=trusted,
        flush_size=int(read("TRACKING_FLUSH_SIZE", int, DEFAULT_FLUSH_SIZE, 1)),
        flush_interval_s=read("TRACKING_FLUSH_INTERVAL", float, DEFAULT_FLUSH_INTERVAL_S, 0.01),
        max_buffered=int(read("TRACKING_MAX_BUFFERED", int, DEFAULT_MAX_BUFFERED, 1)),
        prefetch_s=read("TRACKING_PREFETCH_SECONDS", float, DEFAULT_PREFETCH_S, 0),
        link_cache_campaigns=int(read("TRACKING_LINK_CACHE_CAMPAIGNS", int, DEFAULT_LINK_CACHE_CAMPAIGNS, 1)),
    )
    if problems:
        raise ValidationError("tracking app settings", problems)
    return settings


def uvicorn_command(port: int | str, environ: Mapping[str, str] | None = None) -> list[str]:
    """How the app is served (`make dev`, the fault tests; a deployment passes the same options)."""
    app = "tracking_app.app:app"
    return [sys.executable, "-m", "uvicorn", app, *uvicorn_http_options(environ), "--port", str(port)]


def uvicorn_http_options(environ: Mapping[str, str] | None = None) -> list[str]:
    """uvicorn's h11 parser, not httptools (uvicorn's pick when installed), because only h11 bounds a
    request's headers: under httptools a 100 MB header was answered 200 and cost the process
    ~200 MB. TRACKING_MAX_HEADER_BYTES sets the bound; a ValidationError names a bad value.
    """
    problems: list[str] = []
    read = _reader(Config(environ=os.environ if environ is None else environ), problems)
    max_header_bytes = int(read("TRACKING_MAX_HEADER_BYTES", int, DEFAULT_MAX_HEADER_BYTES, MIN_MAX_HEADER_BYTES))
    if problems:
        raise ValidationError("tracking app settings", problems)
    return ["--http", "h11", "--h11-max-incomplete-event-size", str(max_header_bytes)]
