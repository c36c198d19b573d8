"""The staff WebSocket (`/ws/staff/`) through a real uvicorn process and a real WebSocket client.

Drives: `manage.py create_tenant` (subprocess) → the real login form over HTTP (httpx) for a
session cookie → the `websockets` client against uvicorn → Channels' auth/session middleware,
`TenantASGIMiddleware`, `StaffConsumer` (with its origin rule) → the Redis channel
layer (group events published from this test process through channels-redis).
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from .conftest import PASSWORD, LiveStack, csrf_token

pytestmark = pytest.mark.live

RECV_TIMEOUT = 5.0


@dataclass
class Staff:
    slug: str
    email: str
    cookie: str  # the browser's Cookie header after logging in on the tenant's host

    @property
    def schema(self) -> str:
        return self.slug.replace("-", "_")


def open_socket(
    stack: LiveStack, host: str, *, cookie: str | None = None, origin: str | None = "same"
) -> ClientConnection:
    """Open ws://<host>/ws/staff/ on the live server.

    The TCP connection goes to 127.0.0.1:<port>; the URI's host becomes the Host header
    (websockets builds it from the URI), exactly what a browser on `<slug>.localhost` sends.
    """
    if ":" not in host:
        host = f"{host}:{stack.port}"
    headers = {"Cookie": cookie} if cookie else {}
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=RECV_TIMEOUT)
    try:
        return connect(
            f"ws://{host}/ws/staff/",
            sock=sock,
            origin=f"http://{host}" if origin == "same" else origin,  # type: ignore[arg-type]
            additional_headers=headers,
            open_timeout=RECV_TIMEOUT,
            close_timeout=RECV_TIMEOUT,
            max_size=2**20,
        )
    except BaseException:
        sock.close()
        raise


def recv_json(ws: ClientConnection) -> dict[str, Any]:
    frame = ws.recv(timeout=RECV_TIMEOUT)
    assert isinstance(frame, str), f"expected a text frame, got {frame!r}"
    data = json.loads(frame)
    assert isinstance(data, dict)
    return data


def refusal(stack: LiveStack, host: str, **kwargs: Any) -> tuple[str, int]:
    """How the server refuses a staff socket: ("http", status) when it rejects the handshake,
    ("close", code) when it accepts and then closes. A refused socket never sees a frame."""
    try:
        ws = open_socket(stack, host, **kwargs)
    except InvalidStatus as exc:
        return "http", exc.response.status_code
    with ws:
        try:
            frame = ws.recv(timeout=RECV_TIMEOUT)
        except ConnectionClosed as exc:
            assert exc.rcvd is not None, "closed without a close frame"
            return "close", exc.rcvd.code
        raise AssertionError(f"socket was not refused; got frame {frame!r}")


def assert_refused(result: tuple[str, int], code: int) -> None:
    # Under ASGI a `websocket.close` sent before `accept` makes the server reject the
    # handshake with HTTP 403, so the documented close code (4401/4403/4404) only reaches the
    # client if the app accepts first. Either way the socket must be refused.
    assert result in {("http", 403), ("close", code)}, result


def cookie_header(client: Any) -> str:
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def _staff(stack: LiveStack, slug: str) -> Staff:
    email = f"owner@{slug}.example"
    stack.create_tenant(slug, email, PASSWORD, name=f"{slug.title()} Ltd")
    client = stack.login(slug, email)
    cookie = cookie_header(client)
    client.close()
    return Staff(slug=slug, email=email, cookie=cookie)


@pytest.fixture(scope="module")
def staff(live_stack: LiveStack) -> Iterator[tuple[Staff, Staff]]:
    yield _staff(live_stack, "ws-alpha"), _staff(live_stack, "ws-beta")


def test_member_gets_hello_and_pong(live_stack: LiveStack, staff: tuple[Staff, Staff]) -> None:
    """Real login form → session cookie → uvicorn → StaffConsumer: hello names tenant, user, role."""
    alpha, _ = staff
    with open_socket(live_stack, f"{alpha.slug}.localhost", cookie=alpha.cookie) as ws:
        assert recv_json(ws) == {"type": "hello", "tenant": alpha.slug, "user": alpha.email, "role": "owner"}
        ws.send(json.dumps({"type": "ping"}))
        assert recv_json(ws) == {"type": "pong"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param("{not json", "invalid_json", id="invalid-json"),
        pytest.param("[1, 2, 3]", "invalid_frame", id="not-an-object"),
        pytest.param('{"type": 7}', "invalid_frame", id="type-not-a-string"),
        pytest.param('{"type": "launch-missiles"}', "unknown_type", id="unknown-type"),
        pytest.param(json.dumps({"type": "ping", "pad": "x" * (17 * 1024)}), "frame_too_large", id="oversized"),
        pytest.param(  # 9,000 characters, 18 kB: the limit is in bytes
            json.dumps({"type": "ping", "pad": "é" * 9000}, ensure_ascii=False), "frame_too_large", id="oversized-utf8"
        ),
        pytest.param(b"\x00\x01binary", "binary_unsupported", id="binary"),
    ],
)
def test_bad_frames_get_an_error_and_the_socket_stays_open(
    live_stack: LiveStack, staff: tuple[Staff, Staff], frame: str | bytes, code: str
) -> None:
    """uvicorn → StaffConsumer.receive: each bad frame is answered with an `error` frame; the
    same connection still answers a ping afterwards (never dropped)."""
    alpha, _ = staff
    with open_socket(live_stack, f"{alpha.slug}.localhost", cookie=alpha.cookie) as ws:
        assert recv_json(ws)["type"] == "hello"
        ws.send(frame)
        error = recv_json(ws)
        assert error["type"] == "error" and error["code"] == code, error
        assert isinstance(error["detail"], str) and error["detail"]
        ws.send(json.dumps({"type": "ping"}))
        assert recv_json(ws) == {"type": "pong"}
    live_stack.assert_running()


def test_session_cookie_is_refused_on_another_tenants_host(live_stack: LiveStack, staff: tuple[Staff, Staff]) -> None:
    """Tenant isolation at the socket: alpha's cookie on beta's host (uvicorn → TenantASGIMiddleware
    → session/membership checks in StaffConsumer) is refused; beta's own cookie still works."""
    alpha, beta = staff
    assert_refused(refusal(live_stack, f"{beta.slug}.localhost", cookie=alpha.cookie), 4403)
    with open_socket(live_stack, f"{beta.slug}.localhost", cookie=beta.cookie) as ws:
        assert recv_json(ws)["tenant"] == beta.slug


def test_anonymous_unknown_host_and_foreign_origin_are_refused(
    live_stack: LiveStack, staff: tuple[Staff, Staff]
) -> None:
    """uvicorn → TenantASGIMiddleware (unknown host), Channels auth (no cookie) and the
    origin validator (a page on another site carrying the staff cookie) all refuse the socket."""
    alpha, _ = staff
    assert_refused(refusal(live_stack, f"{alpha.slug}.localhost"), 4401)
    assert_refused(refusal(live_stack, f"nobody-{uuid.uuid4().hex[:6]}.localhost", cookie=alpha.cookie), 4404)
    result = refusal(live_stack, f"{alpha.slug}.localhost", cookie=alpha.cookie, origin="http://evil.example")
    assert result == ("close", 4403), result
    # A garbage session cookie is an anonymous user, not a crash.
    assert_refused(refusal(live_stack, f"{alpha.slug}.localhost", cookie="sessionid=not-a-session"), 4401)
    live_stack.assert_running()


def test_only_the_workspaces_own_pages_may_open_its_socket(live_stack: LiveStack, staff: tuple[Staff, Staff]) -> None:
    """Browsers send alpha's cookie to alpha's socket from any page under the same parent
    domain, beta's pages included: the Origin must be alpha's own, scheme and port as served
    (uvicorn → StaffConsumer refuses with 4403, which the dashboard reads as "stop")."""
    alpha, beta = staff
    host = f"{alpha.slug}.localhost"
    for origin in (
        f"http://{beta.slug}.localhost:{live_stack.port}",
        f"http://{host}:{live_stack.port + 1}",
        f"https://{host}:{live_stack.port}",
        "null",
    ):
        assert refusal(live_stack, host, cookie=alpha.cookie, origin=origin) == ("close", 4403), origin
    with open_socket(live_stack, host, cookie=alpha.cookie) as ws:  # its own page: welcome
        assert recv_json(ws)["tenant"] == alpha.slug
    live_stack.assert_running()


def test_group_events_reach_only_the_tenants_own_staff(live_stack: LiveStack, staff: tuple[Staff, Staff]) -> None:
    """An event published on the Redis channel layer (channels-redis, from this process) to
    alpha's staff group reaches alpha's socket in the uvicorn process and never beta's."""
    alpha, beta = staff
    with (
        open_socket(live_stack, f"{alpha.slug}.localhost", cookie=alpha.cookie) as ws_alpha,
        open_socket(live_stack, f"{beta.slug}.localhost", cookie=beta.cookie) as ws_beta,
    ):
        assert recv_json(ws_alpha)["type"] == "hello"
        assert recv_json(ws_beta)["type"] == "hello"
        marker = uuid.uuid4().hex
        payload = {"type": "conversation.updated", "marker": marker}

        async def publish() -> None:
            layer = RedisChannelLayer(hosts=[live_stack.redis_url])
            try:
                await layer.group_send(f"staff.{alpha.schema}", {"type": "staff.event", "payload": payload})
            finally:
                await layer.close_pools()

        asyncio.run(publish())
        assert recv_json(ws_alpha) == payload
        # beta's socket got nothing: its next frame is the answer to its own ping.
        ws_beta.send(json.dumps({"type": "ping"}))
        assert recv_json(ws_beta) == {"type": "pong"}


@pytest.mark.parametrize(("who", "code"), [("anonymous", 4401), ("other-tenant", 4403), ("unknown-host", 4404)])
def test_refusals_carry_their_close_codes(
    live_stack: LiveStack, staff: tuple[Staff, Staff], who: str, code: int
) -> None:
    """uvicorn → Channels: a refused socket is closed with the code that says why."""
    alpha, beta = staff
    host, cookie = {
        "anonymous": (f"{alpha.slug}.localhost", None),
        "other-tenant": (f"{beta.slug}.localhost", alpha.cookie),
        "unknown-host": ("nobody.localhost", alpha.cookie),
    }[who]
    assert refusal(live_stack, host, cookie=cookie) == ("close", code)


def test_logout_ends_staff_socket_access(live_stack: LiveStack, staff: tuple[Staff, Staff]) -> None:
    """Real login form → socket accepted → real logout form (POST) → the same cookie is
    refused by the dashboard (HTTP) and must be refused by the staff socket too."""
    alpha, _ = staff
    client = live_stack.login(alpha.slug, alpha.email)  # a session of its own
    cookie = cookie_header(client)
    with open_socket(live_stack, f"{alpha.slug}.localhost", cookie=cookie) as ws:
        assert recv_json(ws)["type"] == "hello"
    page = client.get("/dashboard/")
    assert page.status_code == 200
    logout = client.post("/logout/", data={"csrfmiddlewaretoken": csrf_token(page.text)})
    assert logout.status_code == 302 and logout.headers["location"] == "/login/"
    stale = live_stack.http(live_stack.host(alpha.slug), headers={"Cookie": cookie})
    assert stale.get("/dashboard/").status_code == 302  # HTTP: logged out
    assert_refused(refusal(live_stack, f"{alpha.slug}.localhost", cookie=cookie), 4401)


def closed_with(ws: ClientConnection) -> int | None:
    """Wait for the server to close an open socket; the close code it sent."""
    try:
        while True:
            ws.recv(timeout=RECV_TIMEOUT)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


def test_logout_closes_the_sockets_of_that_session(live_stack: LiveStack, staff: tuple[Staff, Staff]) -> None:
    """An open socket of a session that logs out (real logout form) is closed with 4401;
    a socket of another session of the same person stays open."""
    alpha, _ = staff
    leaving = live_stack.login(alpha.slug, alpha.email)
    staying = live_stack.login(alpha.slug, alpha.email)
    with (
        open_socket(live_stack, f"{alpha.slug}.localhost", cookie=cookie_header(leaving)) as ws_leaving,
        open_socket(live_stack, f"{alpha.slug}.localhost", cookie=cookie_header(staying)) as ws_staying,
    ):
        assert recv_json(ws_leaving)["type"] == "hello" and recv_json(ws_staying)["type"] == "hello"
        page = leaving.get("/dashboard/")
        leaving.post("/logout/", data={"csrfmiddlewaretoken": csrf_token(page.text)})
        assert closed_with(ws_leaving) == 4401
        ws_staying.send(json.dumps({"type": "ping"}))
        assert recv_json(ws_staying) == {"type": "pong"}


def test_removing_a_member_closes_their_sockets(live_stack: LiveStack, staff: tuple[Staff, Staff]) -> None:
    """Member removed through the API (owner's key) → their open staff socket closes with 4403."""
    alpha, _ = staff
    email = f"agent-{uuid.uuid4().hex[:6]}@example.com"
    key = live_stack.create_api_key(alpha.slug)
    api = live_stack.api(alpha.slug, key)
    invitation = api.post("/api/v1/invitations/", json={"email": email, "role": "agent"})
    assert invitation.status_code == 201
    live_stack.manage(
        "shell",
        "-c",
        (
            "from apps.accounts.models import *; from apps.tenants.models import Tenant; "
            f"u=User.objects.create_user(email='{email}', password='{PASSWORD}'); "
            f"Membership.objects.create(user=u, tenant=Tenant.objects.get(slug='{alpha.slug}'), role='agent')"
        ),
    )
    member = live_stack.login(alpha.slug, email)
    with open_socket(live_stack, f"{alpha.slug}.localhost", cookie=cookie_header(member)) as ws:
        assert recv_json(ws)["role"] == "agent"
        member_id = next(m["id"] for m in api.get("/api/v1/members/").json()["results"] if m["email"] == email)
        assert api.delete(f"/api/v1/members/{member_id}/").status_code == 204
        assert closed_with(ws) == 4403
