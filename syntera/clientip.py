"""The client's address, for per-address limits and the audit trail (docs/security.md).

Behind a reverse proxy every connection comes from the proxy. `X-Forwarded-For` names the
client, but only its entries appended by proxies we trust are worth anything: a client can
send the header with any value it likes. So the header is read only when the peer is one of
`TRUSTED_PROXIES`, and from the right: the first entry that is not itself a trusted proxy is
the client (the way Rails' `remote_ip` and nginx's `real_ip_recursive` read it). A client
that puts a made-up address at the front of the header is still counted under its own.

`ClientIPMiddleware` puts that address in `REMOTE_ADDR`, so rate limits (django-ratelimit
keys on it), the audit trail and the metrics allow-list all see the client; the widget
WebSocket reads it with `client_ip` from the ASGI scope.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = ("127.0.0.0/8", "::1/128")


@cache
def _trusted(spec: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def trusted_proxies() -> tuple[Network, ...]:
    """`TRUSTED_PROXIES`, or loopback when only the older `WIDGET_TRUST_X_FORWARDED_FOR` is on."""
    spec = tuple(settings.TRUSTED_PROXIES)
    if not spec and settings.WIDGET_TRUST_X_FORWARDED_FOR:
        spec = LOOPBACK
    return _trusted(spec)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip().strip('"')
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:4711"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.7:4711"
        value = value.split(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def client_ip(peer: str, forwarded_for: str = "") -> str:
    """The client's address: `peer` itself, or, when `peer` is a trusted proxy, the rightmost
    `X-Forwarded-For` entry that is not a trusted proxy (the leftmost when all are). "" when
    the peer is not an address at all."""
    peer_address = _address(peer)
    if peer_address is None:
        return ""
    proxies = trusted_proxies()
    if not forwarded_for or not any(peer_address in net for net in proxies):
        return str(peer_address)
    hops = [a for a in (_address(part) for part in forwarded_for.split(",")[-32:]) if a is not None]
    for address in reversed(hops):
        if not any(address in net for net in proxies):
            return str(address)
    return str(hops[0]) if hops else str(peer_address)


class ClientIPMiddleware:
    """Replaces `REMOTE_ADDR` with `client_ip(...)`; the proxy's own address is kept in
    `request.META["PROXY_ADDR"]` when they differ."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        peer = request.META.get("REMOTE_ADDR", "")
        client = client_ip(peer, request.META.get("HTTP_X_FORWARDED_FOR", ""))
        if client and client != peer:
            request.META["PROXY_ADDR"] = peer
            request.META["REMOTE_ADDR"] = client
        return self.get_response(request)
