"""The one guarded HTTP client for every outbound request (docs/adr/0012-outbound-http.md).

URL ingestion and crawls, the LLM and embedding providers (through the SDKs' `http_client=`),
and anything later that calls out (webhooks, workflow HTTP actions) build their httpx client
here, with `client()` or `async_client()`. What such a client can reach:

- **Only checked addresses.** The network backend under the connection pool resolves the
  host name once, checks every address it got, and connects to exactly those addresses: the
  HTTP client never resolves the name a second time, so a DNS answer that changes after the
  check (rebinding) changes nothing. TLS still verifies the certificate against the host name
  and sends it as SNI; the Host header is the URL's. Every redirect hop opens its connection
  through the same backend, so every hop is checked.
- **Only global addresses**, unless the operator's allow-list admits them: loopback, private,
  link-local, carrier-grade NAT, multicast, reserved and unspecified addresses are refused, and
  so are IPv6 forms that carry such an IPv4 address inside (IPv4-mapped, NAT64 64:ff9b::/96,
  6to4, Teredo). Odd spellings of an address (2130706433, 0177.0.0.1, 127.1) are whatever the
  system resolver makes of them, and that result is what is checked and connected to.
- **Only http and https, no credentials in URLs, no proxies from the environment** (the client
  does not trust the environment: no HTTP(S)_PROXY, no .netrc). The transport checks each
  request's URL, redirects included.
- **Total deadlines.** httpx's timeouts bound each connect and each read; a server that sends
  a byte just before each read times out would hold the caller forever. Every request also
  has a total deadline (connect, TLS, sending, headers and body together), and `deadline()`
  bounds a whole sequence of requests (a fetch and its redirects).

The allow-list is `OUTBOUND_ALLOWLIST` (comma-separated CIDR networks and host names;
`KNOWLEDGE_URL_ALLOWLIST` is read as an alias). A host name on it is admitted at whatever
address it resolves to, on any port. Callers may also pass `trusted_origins`: (host, port)
pairs of the operator's own configuration (OPENAI_BASE_URL), admitted on that port only.

A refused request raises `OutboundRefused`, whose message is safe to show a tenant: it names
neither the address a name resolved to nor whether it resolved at all (the details go to the
log), so the check cannot be used to map internal DNS.

The package's `__init__` builds the clients; beside it are `policy` (what may be reached:
schemes, addresses, the allow-list, the refusal messages), `backends` (the network backends
that resolve once, check and connect to the checked address), `transports` (the httpx
transports that check each request's URL and hold it to its deadline) and `deadlines`.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any, TypedDict, Unpack

import httpx
from django.conf import settings

from .deadlines import deadline
from .policy import (
    MAX_REDIRECTS,
    REFUSED_ADDRESS,
    REFUSED_CREDENTIALS,
    REFUSED_SCHEME,
    SCHEMES,
    AllowList,
    OutboundRefused,
    address_allowed,
    allow_list,
    check_url,
    origin_of,
    resolve_checked,
)
from .transports import AsyncGuardedTransport, GuardedTransport, _Config


class ClientOptions(TypedDict, total=False):
    timeout: float | httpx.Timeout | None  # each connect / read / write; OUTBOUND_TIMEOUT by default
    deadline: float | None  # each request as a whole; OUTBOUND_DEADLINE by default
    follow_redirects: bool  # True by default; every hop is checked
    headers: dict[str, str] | None
    trusted_origins: Iterable[tuple[str, int]]  # the operator's own endpoints: (host, port)
    verify: ssl.SSLContext | None  # an operator's own CA (tests use it too)
    limits: httpx.Limits | None


def _build(options: ClientOptions) -> tuple[_Config, dict[str, Any]]:
    timeout = options.get("timeout")
    seconds = settings.OUTBOUND_TIMEOUT if timeout is None else timeout
    deadline = options.get("deadline")
    verify = options.get("verify")
    config = _Config(
        deadline=settings.OUTBOUND_DEADLINE if deadline is None else deadline,
        trusted_origins=tuple(options.get("trusted_origins", ())),
        # trust_env here only means SSL_CERT_FILE / SSL_CERT_DIR (an operator's own CA);
        # proxies are the client's business, and the client ignores the environment.
        ssl_context=verify if verify is not None else httpx.create_ssl_context(trust_env=True),
        limits=options.get("limits") or httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )
    client_options = {
        "timeout": seconds if isinstance(seconds, httpx.Timeout) else httpx.Timeout(float(seconds)),
        "follow_redirects": options.get("follow_redirects", True),
        "max_redirects": MAX_REDIRECTS,
        "headers": options.get("headers"),
        "trust_env": False,
    }
    return config, client_options


def client(**options: Unpack[ClientOptions]) -> httpx.Client:
    """A guarded `httpx.Client` (see the module's docstring for what it guarantees)."""
    config, client_options = _build(options)
    return httpx.Client(transport=GuardedTransport(config), **client_options)


def async_client(**options: Unpack[ClientOptions]) -> httpx.AsyncClient:
    """A guarded `httpx.AsyncClient`; the same guarantees as `client()`."""
    config, client_options = _build(options)
    return httpx.AsyncClient(transport=AsyncGuardedTransport(config), **client_options)


__all__ = [
    "MAX_REDIRECTS",
    "REFUSED_ADDRESS",
    "REFUSED_CREDENTIALS",
    "REFUSED_SCHEME",
    "SCHEMES",
    "AllowList",
    "AsyncGuardedTransport",
    "ClientOptions",
    "GuardedTransport",
    "OutboundRefused",
    "address_allowed",
    "allow_list",
    "async_client",
    "check_url",
    "client",
    "deadline",
    "origin_of",
    "resolve_checked",
]
