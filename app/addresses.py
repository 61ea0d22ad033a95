"""The caller's address (``client_ip``, docs/contract.md section 15): the TCP peer, or, when the peer is one of
the trusted proxies (``DANCU_TRUSTED_PROXIES``, comma-separated CIDRs, default none), the rightmost
``X-Forwarded-For`` address that is not one of them.

Only the trusted hops are believed: an address a client wrote into ``X-Forwarded-For`` itself stands left of
the address the first trusted proxy saw, so the walk from the right stops before it. An entry that is not an
IP address ends the walk (the last trusted hop is answered).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Final

from starlette.requests import HTTPConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_FORWARDED_ENTRIES: Final = 32


def trusted_networks(setting: str) -> list[Network]:
    """``DANCU_TRUSTED_PROXIES`` parsed; ValueError naming the entry's position (never its text)."""
    networks: list[Network] = []
    for position, entry in enumerate(setting.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"DANCU_TRUSTED_PROXIES entry {position} is not an address or CIDR") from None
    return networks


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: Address, networks: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def client_ip(peer: str | None, forwarded_for: Iterable[str], networks: Sequence[Network]) -> str | None:
    """The caller's address: ``peer`` unless it is trusted, else the rightmost untrusted forwarded address."""
    if peer is None:
        return None
    current = _address(peer)
    if current is None or not networks or not _trusted(current, networks):
        return peer
    entries = [part for value in forwarded_for for part in value.split(",")][-MAX_FORWARDED_ENTRIES:]
    for entry in reversed(entries):
        hop = _address(entry)
        if hop is None:
            break
        current = hop
        if not _trusted(hop, networks):
            break
    return str(current)


@lru_cache(maxsize=8)
def _networks(setting: str) -> tuple[Network, ...]:
    return tuple(trusted_networks(setting))


def request_client_ip(request: HTTPConnection, trusted_proxies: str) -> str | None:
    """``client_ip`` of a request, under ``DANCU_TRUSTED_PROXIES`` as set (parsed once per setting): what the
    audit events of citizen, statistics, confirmation and console requests record."""
    client = request.scope.get("client")  # as ``request.client`` reads it, without building an Address
    peer = client[0] if client else None
    networks = _networks(trusted_proxies)
    if not networks:
        return peer
    return client_ip(peer, request.headers.getlist("x-forwarded-for"), networks)
