"""The staff WebSocket's origin rule, in-process (Channels communicator): the socket carries
the staff session cookie, so only pages of the workspace itself may open it. Every tenant
lives under the same parent domain, so the browser sends alpha's cookie to alpha's socket
even from a page on beta's host: the Origin header is what tells them apart.

The same rule through uvicorn and a real WebSocket client is in
tests/integration/test_staff_websocket.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from apps.tenants.models import Domain

CLOSE_FORBIDDEN = 4403  # the dashboard's scripts stop reconnecting on it


@pytest.fixture(autouse=True)
def _same_connection(monkeypatch: Any) -> None:
    """The consumer's database work runs on the test's connection, inside its transaction."""
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    from django.db import connection

    schema = connection.schema_name
    async_to_sync(scenario)()
    connection.set_schema(schema)


async def open_staff_socket(
    cookie: str, *, host: str, origin: str | None, scheme: str = "ws", extra: list[tuple[bytes, bytes]] | None = None
) -> tuple[str, Any]:
    """("hello", frame) when the socket is let in; ("close", code) or ("http", 403) when not."""
    from syntera.asgi import application

    headers = [(b"host", host.encode()), (b"cookie", cookie.encode()), *(extra or [])]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    comm = WebsocketCommunicator(application, "/ws/staff/", headers=headers)
    comm.scope["scheme"] = scheme
    connected, _ = await comm.connect()
    if not connected:
        return "http", 403
    output = await comm.receive_output(timeout=3)
    if output["type"] == "websocket.close":
        return "close", output["code"]
    await comm.disconnect()
    return "hello", output["text"]


def _cookie(client: Any) -> str:
    return f"sessionid={client.cookies['sessionid'].value}"


def test_only_the_workspaces_own_pages_may_open_the_staff_socket(
    alpha: Any, beta: Any, make_member: Any, login: Any
) -> None:
    cookie = _cookie(login(alpha, make_member(alpha, "agent")[0].email))

    async def scenario() -> None:
        own = await open_staff_socket(cookie, host=alpha.host, origin=f"http://{alpha.host}")
        assert own[0] == "hello" and '"tenant": "alpha"' in own[1]
        for origin in [
            f"http://{beta.host}",  # another workspace's page: same parent domain, so the cookie goes along
            f"https://{alpha.host}",  # not the scheme the socket is served on
            f"http://{alpha.host}:9999",  # not the port
            f"http://{alpha.host}.evil.example",
            "http://evil.example",
            "null",  # sandboxed frames and file:// pages
            "not an origin",
            None,  # no Origin header at all
        ]:
            assert await open_staff_socket(cookie, host=alpha.host, origin=origin) == ("close", CLOSE_FORBIDDEN), origin

    run(scenario)


def test_every_host_of_the_workspace_counts_with_the_port_it_is_served_on(
    alpha: Any, make_member: Any, login: Any
) -> None:
    Domain.objects.create(tenant_id=alpha.tenant_id, domain="help.alpha-shop.example", is_primary=False)
    cookie = _cookie(login(alpha, make_member(alpha, "agent")[0].email))
    served = f"{alpha.host}:8000"

    async def scenario() -> None:
        for origin in [f"http://{served}", "http://help.alpha-shop.example:8000", f"http://www.{served}"]:
            result = await open_staff_socket(cookie, host=served, origin=origin)
            assert result[0] == "hello", (origin, result)
        for origin in [f"http://{alpha.host}", "http://help.alpha-shop.example", "http://other.example:8000"]:
            assert await open_staff_socket(cookie, host=served, origin=origin) == ("close", CLOSE_FORBIDDEN), origin

    run(scenario)


def test_behind_a_tls_proxy_the_pages_are_https(alpha: Any, make_member: Any, login: Any, settings: Any) -> None:
    """The proxy terminates TLS: the socket arrives as ws:// with X-Forwarded-Proto: https."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    cookie = _cookie(login(alpha, make_member(alpha, "agent")[0].email))
    proxied = [(b"x-forwarded-proto", b"https")]

    async def scenario() -> None:
        assert (await open_staff_socket(cookie, host=alpha.host, origin=f"https://{alpha.host}", extra=proxied))[
            0
        ] == "hello"
        assert (await open_staff_socket(cookie, host=alpha.host, origin=f"https://{alpha.host}", scheme="wss"))[
            0
        ] == "hello"
        assert await open_staff_socket(cookie, host=alpha.host, origin=f"http://{alpha.host}", extra=proxied) == (
            "close",
            CLOSE_FORBIDDEN,
        )

    run(scenario)
