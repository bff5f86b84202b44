"""Who is behind a hit: the client address, and the flag that tells a person from a machine.

Flags (tracking_events.flag) follow deliverability.md: Apple Mail Privacy Protection fetches every
pixel through Apple's proxies at delivery; security scanners (Microsoft SafeLinks, Proofpoint,
Mimecast, Barracuda…) open every link within seconds; prefetchers send HEAD requests or come right
after the send. Such events are flagged, never dropped, so reports can leave them out.
Called by the event writer's thread (opens, clicks) and by the unsubscribe route.
"""

from __future__ import annotations

import ipaddress
import re

from tracking_app.settings import IPNetwork

HUMAN, APPLE_MPP, SCANNER, PREFETCH = 0, 1, 2, 3

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

APPLE_MPP_NETWORKS: tuple[IPNetwork, ...] = (ipaddress.ip_network("17.0.0.0/8"),)
# Microsoft Exchange Online Protection (SafeLinks, Defender detonation).
SCANNER_NETWORKS: tuple[IPNetwork, ...] = (ipaddress.ip_network("40.92.0.0/16"), ipaddress.ip_network("52.96.0.0/12"))
SCANNER_AGENTS = re.compile(
    r"proofpoint|urldefense|mimecast|barracuda|safelinks|ironport|trendmicro|forcepoint|symantec|sophos|fireeye",
    re.IGNORECASE,
)
SCANNER_REFERRERS = re.compile(
    r"safelinks\.protection\.outlook\.com|urldefense\.(?:com|proofpoint\.com)|\.mimecast\.com|linkprotect\.cudasvc\.com",
    re.IGNORECASE,
)


def parse_ip(text: str | None) -> IPAddress | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _within(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in networks)


def client_ip(peer: str | None, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]) -> IPAddress | None:
    """The client's address: the peer's, or, from a trusted proxy, the last untrusted hop of X-Forwarded-For.

    Hops are read from the right (each proxy appends the address it saw); the first one that is not a
    trusted proxy is the client. Anything left of it is the client's own claim and is ignored.
    """
    address = parse_ip(peer)
    if address is None or not forwarded_for or not _within(address, trusted):
        return address
    for hop in reversed(forwarded_for.split(",")):
        hop_address = parse_ip(hop)
        if hop_address is None:
            break
        address = hop_address
        if not _within(address, trusted):
            break
    return address


def flag_of(address: IPAddress | None, user_agent: str | None, referrer: str | None, head: bool) -> int:
    """The flag of a hit from what the request shows (the writer adds prefetch by send time)."""
    if address is not None:
        if _within(address, APPLE_MPP_NETWORKS):
            return APPLE_MPP
        if _within(address, SCANNER_NETWORKS):
            return SCANNER
    if user_agent and SCANNER_AGENTS.search(user_agent):
        return SCANNER
    if referrer and SCANNER_REFERRERS.search(referrer):
        return SCANNER
    if head:
        return PREFETCH
    return HUMAN
