"""Tenancy for Django Channels (docs/subsystems/tenancy.md).

django-tenants only switches schemas in its HTTP middleware. `TenantASGIMiddleware` resolves
the tenant from the WebSocket's Host header and puts it in the scope; `tenant_db` runs a
consumer's database work in a worker thread pinned to that tenant's schema, resetting the
thread's connection to public afterwards so no other consumer inherits it.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import wraps
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from django_tenants.utils import schema_context

from apps.tenants.db import connection

from .middleware import is_public_host
from .selectors import tenant_for_host, tenant_hosts

P = ParamSpec("P")
R = TypeVar("R")


def _host_from_scope(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name == b"host":
            host = value.decode("latin-1").split(":")[0].lower()
            return host[4:] if host.startswith("www.") else host
    return ""


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope: dict[str, Any], wanted: str) -> str:
    for name, value in scope.get("headers", []):
        if name == wanted.encode():
            return str(value.decode("latin-1")).strip()
    return ""


def served_scheme(scope: dict[str, Any]) -> str:
    """`https` when the browser reached this socket over TLS: `wss://`, or `ws://` from a TLS
    proxy that says so in the header named by SECURE_PROXY_SSL_HEADER (as for HTTP)."""
    if scope.get("scheme") in ("wss", "https"):
        return "https"
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        name = proxy[0].removeprefix("HTTP_").replace("_", "-").lower()
        if _header(scope, name).lower() == proxy[1]:
            return "https"
    return "http"


def _split_origin(value: str) -> tuple[str, str, int] | None:
    """`scheme://host[:port]` → (scheme, host, port); None for anything else ("null", paths)."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username is not None:
        return None
    return parts.scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[parts.scheme]


def origin_served_by(scope: dict[str, Any], hosts: list[str]) -> bool:
    """Whether the socket's Origin is a page on one of `hosts`, with the scheme and port this
    socket was reached on (the port of its Host header): the same-origin rule, widened to a
    workspace's other host names. A missing or opaque ("null") origin is never served by us."""
    origin = _split_origin(_header(scope, "origin"))
    if origin is None:
        return False
    scheme = served_scheme(scope)
    try:
        port = urlsplit(f"//{_header(scope, 'host')}").port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return False
    return origin[0] == scheme and origin[2] == port and origin[1] in {h.lower() for h in hosts}


def socket_host(scope: dict[str, Any]) -> str:
    """The Host header's host name, port dropped, lower-cased."""
    try:
        return (urlsplit(f"//{_header(scope, 'host')}").hostname or "").lower()
    except ValueError:
        return ""


_executors: dict[int, ThreadPoolExecutor] = {}
_executors_lock = threading.Lock()


def _database_threads() -> ThreadPoolExecutor | None:
    """The process's pool of `CHANNELS_DB_THREADS` database threads; None: the event loop's
    default pool (Python's min(32, cores + 4) threads)."""
    threads = int(settings.CHANNELS_DB_THREADS)
    if threads <= 0:
        return None
    with _executors_lock:
        if threads not in _executors:
            _executors[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="socket-db")
        return _executors[threads]


def database_call(func: Callable[..., R]) -> Callable[..., Awaitable[R]]:
    """Run a sync database function from async code. By default on a pool of threads, each
    with its own connection, so one slow query does not hold up every socket of the process
    (Channels' default is one shared thread: the chat load benchmark measured it 97 % busy
    and capping the server at about 20 messages/s). `CHANNELS_DB_THREADS` sizes the pool (a
    thread spends most of a call waiting on PostgreSQL); `CHANNELS_DB_SHARED_THREAD` brings
    the shared thread back (the in-process consumer tests use it to stay inside the test's
    transaction). Each socket still handles its frames one at a time, in order."""
    shared = database_sync_to_async(func)
    pooled: dict[ThreadPoolExecutor | None, Callable[..., Awaitable[R]]] = {}

    @wraps(func)
    async def call(*args: Any, **kwargs: Any) -> R:
        if settings.CHANNELS_DB_SHARED_THREAD:
            impl = shared
        else:
            threads = _database_threads()
            impl = pooled.get(threads) or pooled.setdefault(
                threads, database_sync_to_async(func, thread_sensitive=False, executor=threads)
            )
        result: R = await impl(*args, **kwargs)
        return result

    return call


@database_call
def _resolve(host: str) -> Any:
    return tenant_for_host(host)


class TenantASGIMiddleware:
    """Sets `scope["tenant"]`, or closes the socket with 4404 for an unknown host and for a
    workspace that is inactive, scheduled for deletion or deleted."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        host = _host_from_scope(scope)
        tenant = await _resolve(host) if host else None
        if tenant is None or not tenant.is_active or tenant.purge_after is not None or tenant.deleted_at is not None:
            if is_public_host(host):
                scope = {**scope, "tenant": None}
                return await self.app(scope, receive, send)
            await receive()  # the websocket.connect event
            # Accept, then close: a close before accepting would reach the client as a bare
            # HTTP 403 and the reason (no such workspace) would be lost.
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 4404})
            return None
        return await self.app({**scope, "tenant": tenant}, receive, send)


@database_call
def _tenant_hosts(tenant: Any) -> list[str]:
    return tenant_hosts(tenant)


async def origin_is_tenants(scope: dict[str, Any]) -> bool:
    """Whether the socket was opened by a page of the scope's own workspace: one of its
    domains (docs/subsystems/realtime.md, "Origins"). Every tenant lives under the same parent
    domain, so a page on another workspace's host is same-site and the browser sends this
    host's cookies along; only the Origin tells the two apart."""
    tenant = scope.get("tenant")
    if tenant is None:
        return False
    if origin_served_by(scope, [socket_host(scope)]):  # the usual case: no query
        return True
    return origin_served_by(scope, await _tenant_hosts(tenant))


def tenant_db(func: Callable[..., R]) -> Callable[..., Awaitable[R]]:
    """Run `func(tenant, *args)` in a DB thread inside `tenant`'s schema."""

    @wraps(func)
    def run(tenant: Any, *args: Any, **kwargs: Any) -> R:
        try:
            with schema_context(tenant.schema_name):
                return func(tenant, *args, **kwargs)
        finally:
            connection.set_schema_to_public()

    return database_call(run)
