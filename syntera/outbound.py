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
"""

from __future__ import annotations

import contextvars
import functools
import ipaddress
import logging
import math
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack
from urllib.parse import urlsplit

import anyio
import httpcore
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


# --- the policy -------------------------------------------------------------------------


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


# --- deadlines --------------------------------------------------------------------------

_until: contextvars.ContextVar[float | None] = contextvars.ContextVar("outbound_until", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Everything guarded clients do inside the block (connections, TLS, writes, reads of
    headers and bodies, every redirect hop) ends `seconds` from now; a nested deadline can
    only shorten it."""
    current = _until.get()
    until = time.monotonic() + seconds
    token = _until.set(until if current is None else min(current, until))
    try:
        yield
    finally:
        _until.reset(token)


def _until_for(seconds: float | None) -> float | None:
    current = _until.get()
    if seconds is None:
        return current
    mine = time.monotonic() + seconds
    return mine if current is None else min(current, mine)


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    """`timeout` shortened to what is left of the deadline; `error` once nothing is left."""
    until = _until.get()
    if until is None:
        return timeout
    left = until - time.monotonic()
    if left <= 0:
        raise error("The total deadline of the request passed.")
    return left if timeout is None else min(timeout, left)


# --- network backends: resolve once, check, connect to the checked address -------------


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        # server_hostname is the URL's host: the certificate is verified for the name, not the address.
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, trusted_origins: Iterable[tuple[str, int]]) -> None:
        self._inner = httpcore.SyncBackend()
        self._trusted = tuple(trusted_origins)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        _bounded(timeout, httpcore.ConnectTimeout)
        infos = resolve_checked(host, port, trusted_origins=self._trusted)
        return _Stream(_first_connection(self._inner, infos, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise OutboundRefused("Unix sockets are not reachable from outbound requests.")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _addresses(infos: list[tuple[Any, ...]]) -> list[str]:
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _first_connection(
    inner: httpcore.SyncBackend,
    infos: list[tuple[Any, ...]],
    port: int,
    timeout: float | None,
    local_address: str | None,
    socket_options: Iterable[Any] | None,
) -> httpcore.NetworkStream:
    error: Exception | None = None
    for address in _addresses(infos):
        try:
            return inner.connect_tcp(
                address,
                port,
                timeout=_bounded(timeout, httpcore.ConnectTimeout),
                local_address=local_address,
                socket_options=socket_options,
            )
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
            error = exc
    assert error is not None
    raise error


class _AsyncStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _AsyncStream(await self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, trusted_origins: Iterable[tuple[str, int]]) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._trusted = tuple(trusted_origins)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        limit = _bounded(timeout, httpcore.ConnectTimeout)
        resolve = functools.partial(resolve_checked, host, port, trusted_origins=self._trusted)
        # The system resolver blocks: it runs in a thread, and the deadline bounds the wait.
        with anyio.move_on_after(math.inf if limit is None else limit) as scope:
            infos = await anyio.to_thread.run_sync(resolve, abandon_on_cancel=True)
        if scope.cancelled_caught:
            raise httpcore.ConnectTimeout("The host name was not resolved in time.")
        error: Exception | None = None
        for address in _addresses(infos):
            try:
                stream = await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=_bounded(timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
                return _AsyncStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused("Unix sockets are not reachable from outbound requests.")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# --- transports: check each request's URL, hold each request to its deadline -----------


class _TimedBody(httpx.SyncByteStream):
    """A response body read under its request's deadline (reads happen after handle_request)."""

    def __init__(self, inner: httpx.SyncByteStream, until: float | None) -> None:
        self._inner = inner
        self._until = until

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._inner)
        while True:
            token = _until.set(self._until)
            try:
                chunk = next(chunks, None)
            finally:
                _until.reset(token)
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        self._inner.close()


class _AsyncTimedBody(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, until: float | None) -> None:
        self._inner = inner
        self._until = until

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._inner.__aiter__()
        while True:
            token = _until.set(self._until)
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            finally:
                _until.reset(token)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass(frozen=True)
class _Config:
    """What a guarded transport is built with (shared by the sync and async ones)."""

    deadline: float | None
    trusted_origins: tuple[tuple[str, int], ...]
    ssl_context: ssl.SSLContext
    limits: httpx.Limits

    def pool_options(self) -> dict[str, Any]:
        return {
            "ssl_context": self.ssl_context,
            "max_connections": self.limits.max_connections,
            "max_keepalive_connections": self.limits.max_keepalive_connections,
            "keepalive_expiry": self.limits.keepalive_expiry,
        }


class GuardedTransport(httpx.HTTPTransport):
    def __init__(self, config: _Config) -> None:
        super().__init__(verify=config.ssl_context, limits=config.limits, trust_env=False)
        self._pool = httpcore.ConnectionPool(**config.pool_options(), network_backend=_Backend(config.trusted_origins))
        self._deadline = config.deadline

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _check_request_url(request.url)
        until = _until_for(self._deadline)
        token = _until.set(until)
        try:
            response = super().handle_request(request)
        finally:
            _until.reset(token)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _TimedBody(response.stream, until)
        return response


class AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, config: _Config) -> None:
        super().__init__(verify=config.ssl_context, limits=config.limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            **config.pool_options(), network_backend=_AsyncBackend(config.trusted_origins)
        )
        self._deadline = config.deadline

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _check_request_url(request.url)
        until = _until_for(self._deadline)
        token = _until.set(until)
        try:
            response = await super().handle_async_request(request)
        finally:
            _until.reset(token)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _AsyncTimedBody(response.stream, until)
        return response


# --- the clients ------------------------------------------------------------------------


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
