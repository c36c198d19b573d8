"""The frame edge both WebSockets share (syntera/sockets.py), in-process (Channels
communicator): the same bad input gets the same error code on the visitor's socket
(`/ws/widget/`) and on the staff's (`/ws/staff/`), the connection stays open and keeps
answering, and a handler that fails is answered with its `ApplicationError`'s code or one
logged `server_error`.

The same frames through uvicorn and a real client: tests/integration/test_staff_websocket.py
and tests/integration/test_widget_websocket.py."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django_tenants.utils import schema_context

from apps.conversations.consumers import WidgetConsumer
from apps.conversations.models import Inbox
from apps.dashboard.consumers import StaffConsumer
from syntera.errors import ApplicationError
from syntera.sockets import FrameConsumer

SOCKETS = ["widget", "staff"]
CONSUMERS = {"widget": WidgetConsumer, "staff": StaffConsumer}

BAD_FRAMES = [
    pytest.param(b"\x00\x01binary", "binary_unsupported", id="binary"),
    pytest.param(  # 9,000 characters, 18 kB: the cap is in bytes
        json.dumps({"type": "ping", "pad": "é" * 9000}, ensure_ascii=False), "frame_too_large", id="oversized-utf8"
    ),
    pytest.param("[" * 100_000, "frame_too_large", id="oversized-nesting"),
    pytest.param("{not json", "invalid_json", id="not-json"),
    pytest.param("", "invalid_json", id="empty"),
    pytest.param("[" * 5000, "invalid_json", id="deep-nesting-under-the-cap"),
    pytest.param('{"type": "ping"', "invalid_json", id="truncated"),
    pytest.param("[1, 2]", "invalid_frame", id="array"),
    pytest.param('"ping"', "invalid_frame", id="string"),
    pytest.param("null", "invalid_frame", id="null"),
    pytest.param('{"text": "no type"}', "invalid_frame", id="no-type"),
    pytest.param('{"type": 7}', "invalid_frame", id="type-not-a-string"),
    pytest.param('{"type": "launch_missiles"}', "unknown_type", id="unknown-type"),
    pytest.param('{"type": "__init__"}', "unknown_type", id="a-method-name-is-no-type"),
    pytest.param('{"type": "' + "x" * 5000 + '"}', "unknown_type", id="long-type"),
]


@pytest.fixture(autouse=True)
def _same_connection(monkeypatch: Any) -> None:
    """The consumers' database work runs on the test's connection, inside its transaction."""
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)


class Sockets:
    """`await sockets.open("widget" | "staff")` → a connected communicator past its greeting
    (the widget's `session`, the staff socket's `hello`), on alpha's host from alpha's page;
    `sockets.run(scenario)` runs a scenario and closes what it opened, even when it fails."""

    def __init__(self, open_: Callable[[str], Awaitable[WebsocketCommunicator]]) -> None:
        self._open = open_
        self.opened: list[WebsocketCommunicator] = []

    async def open(self, kind: str) -> WebsocketCommunicator:
        comm = await self._open(kind)
        self.opened.append(comm)
        return comm

    def run(self, scenario: Callable[[], Awaitable[None]]) -> None:
        from django.db import connection

        async def guarded() -> None:
            try:
                await scenario()
            finally:
                for comm in self.opened:
                    with contextlib.suppress(Exception):
                        await comm.disconnect()

        schema = connection.schema_name
        async_to_sync(guarded)()
        connection.set_schema(schema)


@pytest.fixture
def sockets(alpha: Any, make_member: Any, login: Any) -> Sockets:
    with schema_context(alpha.schema):
        widget_key = Inbox.objects.get(name="canary-alpha inbox").widget_key
    client = login(alpha, make_member(alpha, "agent")[0].email)
    cookie = f"sessionid={client.cookies['sessionid'].value}"

    async def open_(kind: str) -> WebsocketCommunicator:
        from syntera.asgi import application

        headers = [(b"host", alpha.host.encode()), (b"origin", f"http://{alpha.host}".encode())]
        if kind == "staff":
            comm = WebsocketCommunicator(application, "/ws/staff/", headers=[*headers, (b"cookie", cookie.encode())])
        else:
            comm = WebsocketCommunicator(application, f"/ws/widget/?key={widget_key}", headers=headers)
        comm.scope["scheme"] = "ws"
        connected, _ = await comm.connect()
        assert connected
        if kind == "widget":
            await comm.send_to(text_data='{"type": "hello"}')
        greeting = json.loads(await comm.receive_from(timeout=3))
        assert greeting["type"] == ("session" if kind == "widget" else "hello"), greeting
        return comm

    return Sockets(open_)


async def _send(comm: WebsocketCommunicator, frame: str | bytes) -> None:
    # As the server delivers it (the communicator's send_to refuses an empty text frame).
    await comm.send_input({"type": "websocket.receive", "bytes" if isinstance(frame, bytes) else "text": frame})


async def _next(comm: WebsocketCommunicator) -> dict[str, Any]:
    return json.loads(await comm.receive_from(timeout=3))  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", SOCKETS)
@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
def test_one_fault_gets_one_code_on_both_sockets_and_the_socket_stays_open(
    sockets: Sockets, kind: str, frame: str | bytes, code: str
) -> None:
    async def scenario() -> None:
        comm = await sockets.open(kind)
        await _send(comm, frame)
        error = await _next(comm)
        assert error["type"] == "error" and error["code"] == code, error
        assert isinstance(error["detail"], str) and error["detail"] and len(error["detail"]) < 200
        await comm.send_to(text_data='{"type": "ping"}')
        assert await _next(comm) == {"type": "pong"}

    sockets.run(scenario)


@pytest.mark.parametrize("kind", SOCKETS)
def test_a_flood_is_refused_frame_by_frame_and_the_socket_stays_open(
    sockets: Sockets, kind: str, settings: Any
) -> None:
    settings.WIDGET_FRAME_RATE = 60  # the staff socket's rate: 60 frames per 10 s

    async def scenario() -> None:
        comm = await sockets.open(kind)
        started = time.monotonic()
        for _ in range(200):
            await comm.send_to(text_data='{"type": "ping"}')
        answers = [await _next(comm) for _ in range(200)]
        elapsed = time.monotonic() - started
        refused = [a for a in answers if a["type"] == "error"]
        assert refused and {a["code"] for a in refused} == {"rate_limited"}, refused[:3]
        pongs = answers.count({"type": "pong"})
        assert pongs + len(refused) == 200
        # 60 in the bucket, refilled by 6 frames a second; nothing more gets through.
        assert pongs <= 60 + 6 * elapsed + 1, (pongs, elapsed)

    sockets.run(scenario)


@pytest.mark.parametrize("kind", SOCKETS)
def test_an_application_error_becomes_its_error_frame(sockets: Sockets, kind: str, monkeypatch: Any) -> None:
    async def refuse(self: Any, frame: dict[str, Any]) -> None:
        raise ApplicationError("Not now.", code="not_now", status_code=409)

    monkeypatch.setattr(CONSUMERS[kind], "on_ping", refuse)

    async def scenario() -> None:
        comm = await sockets.open(kind)
        await comm.send_to(text_data='{"type": "ping", "conversation": 7}')
        error = await _next(comm)
        assert (error["type"], error["code"], error["detail"]) == ("error", "not_now", "Not now.")
        # The staff socket says which conversation the refusal is about; the widget has one.
        assert error.get("conversation") == (7 if kind == "staff" else None)
        await comm.send_to(text_data='{"type": "launch_missiles"}')
        assert (await _next(comm))["code"] == "unknown_type"

    sockets.run(scenario)


@pytest.mark.parametrize("kind", SOCKETS)
def test_an_unexpected_failure_is_one_logged_server_error(
    sockets: Sockets, kind: str, monkeypatch: Any, caplog: Any
) -> None:
    async def crash(self: Any, frame: dict[str, Any]) -> None:
        raise RuntimeError("the database is on fire")

    monkeypatch.setattr(CONSUMERS[kind], "on_ping", crash)

    async def scenario() -> None:
        comm = await sockets.open(kind)
        with caplog.at_level(logging.ERROR, logger="syntera.sockets"):
            await comm.send_to(text_data='{"type": "ping"}')
            error = await _next(comm)
        context = {"conversation": None} if kind == "staff" else {}  # what the frame was about: nothing here
        assert error == {
            "type": "error",
            "code": "server_error",
            "detail": "Something went wrong; try again.",
            **context,
        }
        assert "fire" not in json.dumps(error)  # the cause stays in the log
        await comm.send_to(text_data='{"type": "launch_missiles"}')
        assert (await _next(comm))["code"] == "unknown_type"

    sockets.run(scenario)
    logged = [r for r in caplog.records if r.name == "syntera.sockets"]
    assert len(logged) == 1 and logged[0].exc_info and kind in logged[0].getMessage()


def test_a_visitor_message_the_database_cannot_store_gets_an_error_naming_it(
    sockets: Sockets, monkeypatch: Any, caplog: Any
) -> None:
    """PostgreSQL restarting: the message is not acknowledged, and the error frame names its
    client_id so the widget keeps it in its outbox and sends it again (same client_id) in a
    moment, instead of waiting for a reconnect that a database outage never causes."""
    from django.db import OperationalError

    import apps.conversations.consumers as consumers

    stored = consumers._post

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connection to server on socket failed: No such file or directory")

    async def scenario() -> None:
        comm = await sockets.open("widget")
        monkeypatch.setattr(consumers, "_post", down)
        message = {"type": "message", "client_id": "c-outage", "text": "Is my order on its way?"}
        with caplog.at_level(logging.ERROR, logger="syntera.sockets"):
            await comm.send_to(text_data=json.dumps(message))
            error = await _next(comm)
        assert error == {
            "type": "error",
            "code": "server_error",
            "detail": "Something went wrong; try again.",
            "client_id": "c-outage",
        }
        assert await comm.receive_nothing(timeout=0.3)  # no ack: nothing was stored
        monkeypatch.setattr(consumers, "_post", stored)  # the database is back: the same message again
        await comm.send_to(text_data=json.dumps(message))
        ack = await _next(comm)
        assert (ack["type"], ack["client_id"]) == ("ack", "c-outage")

    sockets.run(scenario)


def test_a_consumer_cannot_name_a_handler_it_does_not_have() -> None:
    with pytest.raises(TypeError, match="on_dance"):

        class Broken(FrameConsumer):
            handlers = {"ping": "on_ping", "dance": "on_dance"}

            async def on_ping(self, frame: dict[str, Any]) -> None: ...


@pytest.mark.parametrize("kind", SOCKETS)
def test_frames_sent_to_a_refused_socket_are_dropped(alpha: Any, kind: str) -> None:
    """A refused socket is accepted, then closed with its code; a frame the client sends
    before the close reaches it is dropped: no answer, no failure."""
    from syntera.asgi import application

    headers = [(b"host", alpha.host.encode()), (b"origin", f"http://{alpha.host}".encode())]
    path = "/ws/staff/" if kind == "staff" else "/ws/widget/?key=wk_nobody"  # no session / an unknown key

    async def scenario() -> None:
        comm = WebsocketCommunicator(application, path, headers=headers)
        comm.scope["scheme"] = "ws"
        connected, _ = await comm.connect()
        assert connected
        await comm.send_input({"type": "websocket.receive", "text": '{"type": "ping"}'})
        closed = await comm.receive_output(timeout=3)
        assert (closed["type"], closed["code"]) == ("websocket.close", 4401 if kind == "staff" else 4404)
        assert await comm.receive_nothing(timeout=0.5)
        assert not comm.future.done()  # the consumer did not fail
        await comm.disconnect()

    from django.db import connection

    schema = connection.schema_name
    async_to_sync(scenario)()
    connection.set_schema(schema)
