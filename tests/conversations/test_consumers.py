"""The widget WebSocket in-process (Channels communicator): the BRIEF.md protocol, its
guarantees (ack after storage, gap-free seq, idempotent client_id, resume from the store) and
its bad inputs (oversized, malformed, unknown, floods, foreign origins, wrong keys and tokens).
Cross-connection delivery, the AI's streamed reply and server restarts are covered by the
live-server suite (tests/integration/test_widget_websocket.py)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from apps.conversations.models import Conversation, Message


@pytest.fixture(autouse=True)
def _same_connection(monkeypatch: Any) -> None:
    """The consumer's database work runs on the test's thread and connection (asgiref's
    thread-sensitive mode), inside the test's transaction; Channels must not close it."""
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run the scenario; afterwards the test's connection is back in alpha's schema (the
    consumer's database calls leave it in public)."""
    from django.db import connection

    schema = connection.schema_name
    async_to_sync(scenario)()
    connection.set_schema(schema)


async def connect(
    host: str, key: str, *, token: str = "", origin: str = "https://shop.example"
) -> tuple[WebsocketCommunicator, bool, int | None]:
    from syntera.asgi import application

    path = f"/ws/widget/?key={key}" + (f"&token={token}" if token else "")
    headers = [(b"host", host.encode()), (b"origin", origin.encode())]
    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await comm.connect()
    return comm, connected, None


async def frames(comm: WebsocketCommunicator, count: int, timeout: float = 3) -> list[dict[str, Any]]:
    return [json.loads(await comm.receive_from(timeout=timeout)) for _ in range(count)]


async def hello(comm: WebsocketCommunicator, **extra: Any) -> dict[str, Any]:
    await comm.send_to(text_data=json.dumps({"type": "hello", **extra}))
    (session,) = await frames(comm, 1)
    assert session["type"] == "session", session
    return session


def test_hello_message_ack_and_resume(alpha: Any, inbox: Any, settings: Any) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False  # the AI reply is the worker's job, not this test's

    async def scenario() -> None:
        comm, connected, _ = await connect(alpha.host, inbox.widget_key)
        assert connected
        session = await hello(comm)
        assert session["last_seq"] == 0 and session["token"].startswith("vt_")
        assert session["widget"]["title"] == "Help" and session["widget"]["greeting"] == "Hi! Ask me anything."
        await comm.send_to(text_data=json.dumps({"type": "message", "client_id": "c1", "text": "Hello <b>there</b>"}))
        ack, message = await frames(comm, 2)
        assert ack == {"type": "ack", "client_id": "c1", "seq": 1}
        assert message["type"] == "message" and message["seq"] == 1 and message["role"] == "visitor"
        assert message["text"] == "Hello <b>there</b>"  # stored as text; escaping is the renderer's job
        # The same client_id again: acknowledged with the same seq, stored once.
        await comm.send_to(text_data=json.dumps({"type": "message", "client_id": "c1", "text": "Hello <b>there</b>"}))
        (again,) = await frames(comm, 1)
        assert again == {"type": "ack", "client_id": "c1", "seq": 1}
        await comm.send_to(text_data=json.dumps({"type": "message", "client_id": "c2", "text": "Second"}))
        await frames(comm, 2)
        await comm.disconnect()

        # A new connection with the token resumes the same conversation and replays.
        comm, connected, _ = await connect(alpha.host, inbox.widget_key, token=session["token"])
        resumed = await hello(comm)
        assert resumed["conversation_id"] == session["conversation_id"] and resumed["last_seq"] == 2
        await comm.send_to(text_data=json.dumps({"type": "resume", "after_seq": 1}))
        (replayed,) = await frames(comm, 1)
        assert replayed["seq"] == 2 and replayed["text"] == "Second"
        await comm.send_to(text_data=json.dumps({"type": "ping"}))
        assert await frames(comm, 1) == [{"type": "pong"}]
        await comm.disconnect()

    run(scenario)
    assert Message.objects.filter(conversation__inbox=inbox).count() == 2


def test_bad_frames_get_error_frames_and_keep_the_connection(alpha: Any, inbox: Any, settings: Any) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False

    async def scenario() -> None:
        comm, _, _ = await connect(alpha.host, inbox.widget_key)
        await comm.send_to(text_data=json.dumps({"type": "message", "client_id": "x", "text": "too early"}))
        assert (await frames(comm, 1))[0]["code"] == "no_session"
        await hello(comm)
        cases = [
            ("not json", "invalid_json"),
            ("[1, 2]", "invalid_frame"),
            ('{"text": "no type"}', "invalid_frame"),
            ('{"type": "launch_missiles"}', "unknown_type"),
            ('{"type": "message", "text": "no client id"}', "invalid_frame"),
            ('{"type": "message", "client_id": "a", "text": "   "}', "invalid_frame"),
            ('{"type": "message", "client_id": "' + "x" * 65 + '", "text": "hi"}', "invalid_frame"),
            (json.dumps({"type": "message", "client_id": "b", "text": "y" * 5000}), "message_too_long"),
            (json.dumps({"type": "message", "client_id": "c", "text": "z" * 20000}), "frame_too_large"),
            ('{"type": "resume", "after_seq": -1}', "invalid_frame"),
            ('{"type": "resume", "after_seq": "1"}', "invalid_frame"),
            ('{"type": "rate", "rating": 9}', "invalid_frame"),
            ("[" * 100000, "frame_too_large"),
        ]
        for raw, code in cases:
            await comm.send_to(text_data=raw)
            (error,) = await frames(comm, 1)
            assert error["type"] == "error" and error["code"] == code, (raw[:60], error)
        await comm.send_to(bytes_data=b"\x00\x01")
        assert (await frames(comm, 1))[0]["code"] == "binary_unsupported"
        # Still connected and working.
        await comm.send_to(text_data=json.dumps({"type": "message", "client_id": "ok", "text": "still here"}))
        ack, _message = await frames(comm, 2)
        assert ack["seq"] == 1
        await comm.disconnect()

    run(scenario)
    assert Message.objects.filter(conversation__inbox=inbox).count() == 1


def test_a_flood_is_rate_limited_without_losing_what_was_acknowledged(alpha: Any, inbox: Any, settings: Any) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.WIDGET_RATE_PER_CONNECTION = 5

    async def scenario() -> None:
        comm, _, _ = await connect(alpha.host, inbox.widget_key)
        await hello(comm)
        acked, limited = [], 0
        for i in range(12):
            await comm.send_to(text_data=json.dumps({"type": "message", "client_id": f"m{i}", "text": f"n{i}"}))
            first = (await frames(comm, 1))[0]
            if first["type"] == "ack":
                acked.append(first["seq"])
                await frames(comm, 1)  # its message frame
            else:
                assert first["code"] == "rate_limited" and first["client_id"] == f"m{i}"
                limited += 1
        assert acked == list(range(1, len(acked) + 1)) and limited >= 6
        # Another visitor is not affected.
        other, _, _ = await connect(alpha.host, inbox.widget_key)
        await hello(other)
        await other.send_to(text_data=json.dumps({"type": "message", "client_id": "o1", "text": "hi"}))
        assert (await frames(other, 1))[0]["type"] == "ack"
        await comm.disconnect()
        await other.disconnect()

    run(scenario)


def test_refusals(alpha: Any, beta: Any, inbox: Any, settings: Any) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False

    async def scenario() -> None:
        for host, key, origin, code in [
            (alpha.host, "wk_unknown", "https://shop.example", 4404),
            (alpha.host, inbox.widget_key, "https://evil.example", 4403),
            (alpha.host, inbox.widget_key, "", 4403),
            (beta.host, inbox.widget_key, "https://shop.example", 4404),  # alpha's key on beta's host
        ]:
            comm, connected, _ = await connect(host, key, origin=origin)
            assert connected
            closed = await comm.receive_output(timeout=3)
            assert closed["type"] == "websocket.close" and closed["code"] == code, (host, key, origin, closed)
        # The tenant's own host is always allowed: the same scheme, host and port as the socket.
        served = f"{alpha.host}:8000"
        comm, _, _ = await connect(served, inbox.widget_key, origin=f"http://{served}")
        await hello(comm)
        await comm.disconnect()
        # Another port or scheme on that host name is another site, refused like any other.
        for origin in (f"http://{alpha.host}:9999", f"https://{served}", f"http://{alpha.host}", "null"):
            comm, _, _ = await connect(served, inbox.widget_key, origin=origin)
            closed = await comm.receive_output(timeout=3)
            assert closed["type"] == "websocket.close" and closed["code"] == 4403, origin

    run(scenario)


def test_a_token_opens_only_its_own_conversation(alpha: Any, inbox: Any, settings: Any) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False

    async def scenario() -> None:
        first, _, _ = await connect(alpha.host, inbox.widget_key)
        mine = await hello(first)
        await first.send_to(text_data=json.dumps({"type": "message", "client_id": "s", "text": "my secret order 123"}))
        await frames(first, 2)
        await first.disconnect()
        for token in ("vt_forged", mine["token"][:-2] + "xx", ""):
            comm, _, _ = await connect(alpha.host, inbox.widget_key, token=token)
            session = await hello(comm)
            assert session["conversation_id"] != mine["conversation_id"] and session["last_seq"] == 0
            await comm.send_to(text_data=json.dumps({"type": "resume", "after_seq": 0}))
            assert await comm.receive_nothing(timeout=0.3)
            await comm.disconnect()

    run(scenario)


def test_rating(alpha: Any, inbox: Any, settings: Any) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False

    async def scenario() -> None:
        comm, _, _ = await connect(alpha.host, inbox.widget_key)
        await hello(comm)
        await comm.send_to(text_data=json.dumps({"type": "rate", "rating": 4, "comment": "Quick and clear"}))
        assert await frames(comm, 1) == [{"type": "rated", "rating": 4}]
        await comm.disconnect()

    run(scenario)
    conversation = Conversation.objects.get(inbox=inbox)
    assert conversation.rating == 4 and conversation.rating_comment == "Quick and clear"


def test_feedback_on_an_ai_answer_counts_for_its_agent_and_can_change(
    alpha: Any, inbox: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """`{"type": "feedback", "seq": N, "helpful": bool}` (an extension of BRIEF.md's protocol):
    echoed back once stored; only on the AI's answers the socket has shown; the latest verdict
    is the one counted on the agent's stats (by their subscriber to `message.feedback`, once
    each verdict commits)."""
    from django.db import connection

    from apps.agents.selectors import agent_performance
    from apps.conversations.models import AnswerFeedback
    from apps.conversations.stores import get_store
    from apps.events import dispatch

    settings.CELERY_TASK_ALWAYS_EAGER = False  # the AI does not answer: the test stores the answer
    session: dict[str, Any] = {}

    async def ask() -> None:
        comm, _, _ = await connect(alpha.host, inbox.widget_key)
        session.update(await hello(comm))
        await comm.send_to(text_data=json.dumps({"type": "feedback", "seq": 1, "helpful": True}))
        (early,) = await frames(comm, 1)  # nothing shown yet
        assert (early["type"], early["code"]) == ("error", "invalid_frame")
        await comm.send_to(text_data=json.dumps({"type": "message", "client_id": "q1", "text": "Can I return it?"}))
        await frames(comm, 2)  # ack, and the message itself
        await comm.disconnect()

    run(ask)
    conversation = Conversation.objects.get(pk=session["conversation_id"])
    answer, _ = get_store().append(
        schema=connection.schema_name,
        conversation_id=conversation.pk,
        role="ai",
        text="Within 30 days.",
        audit={"agent_id": inbox.agent_id, "decision": "answered"},
    )

    async def judge() -> None:
        comm, _, _ = await connect(alpha.host, inbox.widget_key, token=session["token"])
        await hello(comm)
        await comm.send_to(text_data=json.dumps({"type": "resume", "after_seq": 0}))
        assert [f["seq"] for f in await frames(comm, 2)] == [1, answer.seq]
        for bad in (
            {"seq": answer.seq, "helpful": "yes"},
            {"seq": str(answer.seq), "helpful": True},
            {"seq": True, "helpful": True},
            {"seq": 0, "helpful": True},
            {"seq": answer.seq + 5, "helpful": True},  # not shown to this socket
        ):
            await comm.send_to(text_data=json.dumps({"type": "feedback", **bad}))
            (refused,) = await frames(comm, 1)
            assert (refused["type"], refused["code"]) == ("error", "invalid_frame"), bad
        await comm.send_to(text_data=json.dumps({"type": "feedback", "seq": 1, "helpful": False}))
        (visitor_message,) = await frames(comm, 1)  # seq 1 is the visitor's own message
        assert (visitor_message["type"], visitor_message["code"]) == ("error", "invalid_feedback")
        for helpful in (True, True, False):
            await comm.send_to(text_data=json.dumps({"type": "feedback", "seq": answer.seq, "helpful": helpful}))
            assert await frames(comm, 1) == [{"type": "feedback", "seq": answer.seq, "helpful": helpful}]
        await comm.disconnect()

    with django_capture_on_commit_callbacks(execute=True):
        run(judge)
    dispatch.run()  # the events worker's step (tasks are not run inline in this test)
    (stored,) = AnswerFeedback.objects.filter(conversation=conversation)
    assert (stored.seq, stored.helpful, stored.agent_id) == (answer.seq, False, inbox.agent_id)
    totals = agent_performance(inbox.agent, days=1)["totals"]
    assert (totals["helpful"], totals["unhelpful"], totals["helpful_rate"]) == (0, 1, 0.0)
    by_channel = agent_performance(inbox.agent, days=1)["by_channel"]
    assert [(c["channel"], c["unhelpful"]) for c in by_channel] == [("web", 1)]


def test_the_widget_is_told_in_a_frame_when_its_conversation_is_resolved_or_reopened(
    alpha: Any, inbox: Any, owner: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """`{"type": "status", "status": ...}` (an extension of BRIEF.md's protocol), sent after
    the commit that changed the status: the widget no longer reads it from a system line's
    wording. A visitor who writes in a resolved conversation reopens it and is told so too."""
    from asgiref.sync import sync_to_async

    from apps.conversations import services

    settings.CELERY_TASK_ALWAYS_EAGER = False
    session: dict[str, Any] = {}

    def set_status(status: str) -> None:
        from django.db import connection

        connection.set_tenant(owner.tenant)  # (the consumer's calls leave the connection in public)
        with django_capture_on_commit_callbacks(execute=True):
            conversation = Conversation.objects.get(pk=session["conversation_id"])
            services.conversation_set_status(actor=owner, conversation=conversation, status=status)

    async def until(comm: WebsocketCommunicator, wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while not any(wanted(f) for f in seen):
            seen.extend(await frames(comm, 1))
        return seen

    async def scenario() -> None:
        comm, _, _ = await connect(alpha.host, inbox.widget_key)
        session.update(await hello(comm))
        await comm.send_to(text_data=json.dumps({"type": "message", "client_id": "s1", "text": "Thanks, all good"}))
        await frames(comm, 2)
        await sync_to_async(set_status)("resolved")
        seen = await until(comm, lambda f: f["type"] == "message" and f["role"] == "system")
        assert {"type": "status", "status": "resolved"} in seen
        await sync_to_async(set_status)("open")
        assert (await until(comm, lambda f: f["type"] == "status"))[-1] == {"type": "status", "status": "open"}
        await comm.disconnect()

    run(scenario)
    services.conversation_set_status(
        actor=owner, conversation=Conversation.objects.get(pk=session["conversation_id"]), status="resolved"
    )
    # The visitor writes again: the frame is handed to the widget's socket with the message's
    # other wake-ups (published by the consumer from its event loop).
    with services.wakeups_held() as held, django_capture_on_commit_callbacks(execute=True):
        services.message_post(
            conversation_id=int(session["conversation_id"]), role="visitor", text="One more thing", client_id="s2"
        )
    group = services.conversation_group(alpha.schema, int(session["conversation_id"]))
    assert (group, {"type": "conv.frame", "frame": {"type": "status", "status": "open"}}) in held
    assert Conversation.objects.get(pk=session["conversation_id"]).status == "open"
