"""Tenancy for Django Channels (docs/subsystems/tenancy.md).

django-tenants only switches schemas in its HTTP middleware. `TenantASGIMiddleware` resolves
the tenant from the WebSocket's Host header and puts it in the scope; `tenant_db` runs a
consumer's database work in a worker thread pinned to that tenant's schema, resetting the
thread's connection to public afterwards so no other consumer inherits it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings
from django_tenants.utils import schema_context

from apps.tenants.db import connection

from .middleware import is_public_host
from .selectors import tenant_for_host

P = ParamSpec("P")
R = TypeVar("R")


def _host_from_scope(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name == b"host":
            host = value.decode("latin-1").split(":")[0].lower()
            return host[4:] if host.startswith("www.") else host
    return ""


def database_call(func: Callable[..., R]) -> Callable[..., Awaitable[R]]:
    """Run a sync database function from async code. By default on a pool of threads, each
    with its own connection, so one slow query does not hold up every socket of the process
    (Channels' default is one shared thread: the chat load benchmark measured it 97 % busy
    and capping the server at about 20 messages/s). `CHANNELS_DB_SHARED_THREAD` brings the
    shared thread back (the in-process consumer tests use it to stay inside the test's
    transaction). Each socket still handles its frames one at a time, in order."""
    pooled = database_sync_to_async(func, thread_sensitive=False)
    shared = database_sync_to_async(func)

    @wraps(func)
    async def call(*args: Any, **kwargs: Any) -> R:
        impl = shared if settings.CHANNELS_DB_SHARED_THREAD else pooled
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
