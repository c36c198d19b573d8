"""What an outbound request may reach: http(s) only, no credentials in URLs, global addresses
or the operator's allow-list. A refusal is an `OutboundRefused` whose message is safe to show a
tenant (see the package's docstring).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
SCHEMES = ("http", "https")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

REFUSED_ADDRESS = (
    "The address could not be resolved to a public internet address. Addresses on private or local "
    "networks are refused to protect internal services; an operator can allow a host with OUTBOUND_ALLOWLIST."
)
REFUSED_SCHEME = "Only http and https URLs can be used."
REFUSED_CREDENTIALS = "URLs with credentials in them are not accepted."


class OutboundRefused(Exception):
    """The guard refused a request. `str()` is safe to show a tenant; `detail` is for logs."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail or message


@dataclass(frozen=True)
class AllowList:
    networks: tuple[IPNetwork, ...]
    hosts: frozenset[str]


def allow_list() -> AllowList:
    """The operator's allow-list, read from settings at each use (so a changed setting applies
    to clients already built)."""
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    items = [*getattr(settings, "OUTBOUND_ALLOWLIST", []), *getattr(settings, "KNOWLEDGE_URL_ALLOWLIST", [])]
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(_host_key(item))
    return AllowList(tuple(networks), frozenset(hosts))


def _host_key(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


def _embedded(address: IPAddress) -> list[IPAddress]:
    """The address and every IPv4 address an IPv6 form carries (and reaches) inside it."""
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address.teredo is not None:
            found.extend(address.teredo)
        if address in NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _public(address: IPAddress) -> bool:
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_unspecified
        and not address.is_loopback
    )


def address_allowed(address: IPAddress, allowed: AllowList) -> bool:
    """Whether `address` may be connected to: the allow-list admits it (or the IPv4 address it
    maps), or it and every address it carries are public."""
    forms = _embedded(address)
    if isinstance(address, ipaddress.IPv6Address) and (address.ipv4_mapped is not None or address in NAT64):
        # ::ffff:a.b.c.d and 64:ff9b::a.b.c.d (a DNS64 network's answer) are a.b.c.d, for the
        # allow-list too; 64:ff9b::/96 itself sits in ::/8, which is reserved.
        forms = forms[1:]
    if any(form in network for form in forms for network in allowed.networks if form.version == network.version):
        return True
    return all(_public(form) for form in forms)


def resolve_checked(host: str, port: int, *, trusted_origins: Iterable[tuple[str, int]] = ()) -> list[tuple[Any, ...]]:
    """Resolve `host` once and return its address infos, or raise OutboundRefused when any
    address is not allowed (one bad address refuses the name: the client must never be able
    to fall back to it)."""
    key = _host_key(host)
    allowed = allow_list()
    trusted = key in allowed.hosts or (key, port) in {(_host_key(h), p) for h, p in trusted_origins}
    try:
        infos = socket.getaddrinfo(key, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused(REFUSED_ADDRESS, detail=f"{host!r} could not be resolved ({exc})") from None
    if not infos:
        raise OutboundRefused(REFUSED_ADDRESS, detail=f"{host!r} resolved to nothing")
    if not trusted:
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if not address_allowed(address, allowed):
                raise OutboundRefused(REFUSED_ADDRESS, detail=f"{host!r} resolves to {address}, which is not public")
    return infos


def check_url(url: str, *, trusted_origins: Iterable[tuple[str, int]] = ()) -> str:
    """Check a URL before storing it (a source, a base URL, a webhook): scheme, credentials,
    and the addresses its host resolves to now. Returns the URL; raises OutboundRefused.
    The request itself is checked again at connection time, whatever this said."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise OutboundRefused(REFUSED_SCHEME)
    if parts.username or parts.password:
        raise OutboundRefused(REFUSED_CREDENTIALS)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise OutboundRefused("The URL's port is not valid.") from None
    resolve_checked(parts.hostname, port, trusted_origins=trusted_origins)
    return url


def origin_of(url: str) -> tuple[str, int] | None:
    """(host, port) of a URL, for `trusted_origins`; None for an empty or odd URL."""
    parts = urlsplit(url or "")
    if parts.scheme not in SCHEMES or not parts.hostname:
        return None
    try:
        return _host_key(parts.hostname), parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None


def _check_request_url(url: httpx.URL) -> None:
    if url.scheme not in SCHEMES:
        raise OutboundRefused(REFUSED_SCHEME, detail=f"scheme {url.scheme!r}")
    if url.userinfo:
        raise OutboundRefused(REFUSED_CREDENTIALS)
