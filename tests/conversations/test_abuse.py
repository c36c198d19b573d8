"""Anonymous floods on the widget (apps/conversations/abuse.py): connections and new
conversations limited per address and per inbox, a spoofed X-Forwarded-For counted under the
real address, empty conversations neither broadcast, listed, assigned nor kept, each visitor's
and each address's share of the AI, and what was refused shown to staff as counts."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.utils import timezone

from apps.conversations import services
from apps.conversations.models import Conversation
from apps.conversations.stores import get_store
from syntera.realtime import staff_group
from tests.conversations.test_consumers import frames, hello, run


@pytest.fixture(autouse=True)
def _same_connection(monkeypatch: Any) -> None:
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)


async def _open(host: str, key: str, forwarded: str = "", token: str = "") -> Any:
    from channels.testing import WebsocketCommunicator

    from syntera.asgi import application

    async def from_loopback(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        return await application({**scope, "client": ("127.0.0.1", 50123)}, receive, send)

    path = f"/ws/widget/?key={key}" + (f"&token={token}" if token else "")
    headers = [(b"host", host.encode()), (b"origin", b"https://shop.example")]
    if forwarded:
        headers.append((b"x-forwarded-for", forwarded.encode()))
    comm = WebsocketCommunicator(from_loopback, path, headers=headers)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def _closed_with(comm: Any) -> int | None:
    output = await comm.receive_output(timeout=3)
    while output["type"] == "websocket.send":
        output = await comm.receive_output(timeout=3)
    assert output["type"] == "websocket.close"
    return int(output.get("code") or 0)


def _refusals(alpha: Any, inbox: Any) -> dict[str, int]:
    from apps.conversations import abuse

    today = abuse.counts(alpha.schema, inbox.pk)[0]
    return {k: v for k, v in today.items() if k != "day"}


def test_connections_are_limited_per_address_and_counted(alpha: Any, inbox: Any, settings: Any) -> None:
    settings.WIDGET_CONNECT_RATE_PER_IP = "2/m"

    async def scenario() -> None:
        first = await _open(alpha.host, inbox.widget_key)
        second = await _open(alpha.host, inbox.widget_key)
        third = await _open(alpha.host, inbox.widget_key)
        assert await _closed_with(third) == 4429
        for comm in (first, second):
            assert (await hello(comm))["type"] == "session"
            await comm.disconnect()

    run(scenario)
    assert _refusals(alpha, inbox)["connections"] == 1


def test_connections_are_limited_per_inbox(alpha: Any, inbox: Any, settings: Any) -> None:
    settings.WIDGET_CONNECT_RATE_PER_INBOX = "2/m"
    settings.TRUSTED_PROXIES = ["127.0.0.0/8"]

    async def scenario() -> None:
        opened = [await _open(alpha.host, inbox.widget_key, forwarded=f"203.0.113.{n}") for n in (1, 2)]
        refused = await _open(alpha.host, inbox.widget_key, forwarded="203.0.113.3")
        assert await _closed_with(refused) == 4429
        for comm in opened:
            await comm.disconnect()

    run(scenario)


def test_new_conversations_are_limited_per_address_but_resuming_is_not(alpha: Any, inbox: Any, settings: Any) -> None:
    settings.WIDGET_SESSION_RATE_PER_IP = "2/h"
    before = Conversation.objects.count()

    async def scenario() -> None:
        tokens = []
        for _ in range(2):
            comm = await _open(alpha.host, inbox.widget_key)
            tokens.append((await hello(comm))["token"])
            await comm.disconnect()
        refused = await _open(alpha.host, inbox.widget_key)
        await refused.send_to(text_data=json.dumps({"type": "hello"}))
        (error,) = await frames(refused, 1)
        assert error["type"] == "error" and error["code"] == "rate_limited"
        assert await _closed_with(refused) == 4429
        # A visitor coming back with their token is not a new conversation.
        back = await _open(alpha.host, inbox.widget_key, token=tokens[0])
        assert (await hello(back))["token"] == tokens[0]
        await back.disconnect()

    run(scenario)
    assert Conversation.objects.count() == before + 2
    assert _refusals(alpha, inbox)["sessions"] == 1


def test_a_spoofed_forwarded_for_is_counted_under_the_real_address(alpha: Any, inbox: Any, settings: Any) -> None:
    """Behind a trusted proxy (here on loopback) the proxy appends the real client to whatever
    X-Forwarded-For the client sent: the client's own first entries must not make it a new
    visitor each time."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.WIDGET_TRUST_X_FORWARDED_FOR = True
    settings.WIDGET_RATE_PER_IP = 3

    async def scenario() -> None:
        codes = []
        for n in range(4):
            comm = await _open(alpha.host, inbox.widget_key, forwarded=f"198.51.100.{n}, 203.0.113.9")
            await hello(comm)
            await comm.send_to(text_data=json.dumps({"type": "message", "client_id": f"m{n}", "text": "Hi"}))
            codes.append((await frames(comm, 1))[0].get("code", "ack"))
            await comm.disconnect()
        assert codes == ["ack", "ack", "ack", "rate_limited"]

    run(scenario)
    assert Conversation.objects.filter(visitor_ip="203.0.113.9").count() == 4
    assert _refusals(alpha, inbox)["messages"] == 1


def test_an_opened_widget_is_not_a_conversation_until_the_visitor_writes(
    alpha: Any, inbox: Any, settings: Any, api_for: Any, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Staff hear of changes from the events the services emit (recorded here as the staff
    inbox's subscriber publishes them after commit); typing goes straight through the channel
    layer (watched on the staff group)."""
    import dataclasses

    from apps.dashboard import subscribers

    published: list[str] = []
    monkeypatch.setattr(
        subscribers,
        "staff_inbox",
        dataclasses.replace(
            subscribers.staff_inbox,
            after_commit=lambda items: published.extend(f["type"] for f in subscribers.frames(items)),
        ),
    )
    layer = get_channel_layer()
    api = api_for(alpha.host, alpha.api_key)
    session: dict[str, Any] = {}

    async def staff_events(channel: str, wait: float = 0.5) -> list[str]:
        seen = []
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), wait)
            except TimeoutError:
                return seen
            seen.append(message["event"]["type"])

    async def watching(step: Any) -> list[str]:
        channel = await layer.new_channel()
        await layer.group_add(staff_group(alpha.schema), channel)
        await step()
        events = await staff_events(channel)
        await layer.group_discard(staff_group(alpha.schema), channel)
        return events

    async def open_and_type() -> None:
        comm = await _open(alpha.host, inbox.widget_key)
        session.update(await hello(comm))
        await comm.send_to(text_data=json.dumps({"type": "typing"}))
        await comm.disconnect()

    async def write() -> None:
        comm = await _open(alpha.host, inbox.widget_key, token=session["token"])
        await hello(comm)
        await comm.send_to(text_data=json.dumps({"type": "message", "client_id": "c1", "text": "Hello"}))
        await frames(comm, 2)
        await comm.disconnect()

    events: dict[str, list[str]] = {}

    async def first() -> None:
        events["opened"] = await watching(open_and_type)

    with django_capture_on_commit_callbacks(execute=True):
        run(first)
    assert events["opened"] == [] and published == []  # not created, not typing: nothing for staff yet
    conversation_id = int(session["conversation_id"])
    listed = api.get(f"/api/v1/conversations/?inbox={inbox.pk}").json()
    assert conversation_id not in [c["id"] for c in listed["results"]]
    with django_capture_on_commit_callbacks(execute=True):
        run(write)
    assert published[:2] == ["conversation.created", "message.created"] and published.count("conversation.created") == 1
    listed = api.get(f"/api/v1/conversations/?inbox={inbox.pk}").json()
    assert conversation_id in [c["id"] for c in listed["results"]]


def test_empty_conversations_are_removed_after_a_while(alpha: Any, inbox: Any, settings: Any) -> None:
    settings.EMPTY_CONVERSATION_TTL_HOURS = 24
    old_empty, _ = services.conversation_start(inbox=inbox)
    new_empty, _ = services.conversation_start(inbox=inbox)
    old_written, _ = services.conversation_start(inbox=inbox)
    services.message_post(conversation_id=old_written.pk, role="visitor", text="Hello", client_id="c1")
    Conversation.objects.filter(pk__in=[old_empty.pk, old_written.pk]).update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    assert services.conversations_purge_empty() == 1
    remaining = set(Conversation.objects.values_list("pk", flat=True))
    assert old_empty.pk not in remaining and {new_empty.pk, old_written.pk} <= remaining
    assert [m.text for m in get_store().after(schema=alpha.schema, conversation_id=old_written.pk, after_seq=0)][
        :1
    ] == ["Hello"]


def test_the_purge_task_visits_every_workspace(alpha: Any, beta: Any) -> None:
    from django.db import connection
    from django_tenants.utils import schema_context

    from apps.conversations.models import Inbox
    from apps.conversations.tasks import purge_empty

    made = {}
    for info in (alpha, beta):
        with schema_context(info.schema):
            conversation, _ = services.conversation_start(inbox=Inbox.objects.first())
            Conversation.objects.filter(pk=conversation.pk).update(created_at=timezone.now() - timedelta(days=2))
            made[info.schema] = conversation.pk
    assert purge_empty.apply().get() >= 2
    for schema, pk in made.items():
        with schema_context(schema):
            assert not Conversation.objects.filter(pk=pk).exists()
    connection.set_schema(alpha.schema)


def test_empty_conversations_waiting_for_a_person_are_not_assigned(
    alpha: Any, owner: Any, make_member: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from django.db import connection

    from apps.routing import presence
    from apps.routing import services as routing

    team_inbox = services.inbox_create(actor=owner, name="People only")  # no AI: conversations wait
    user, _ = make_member(alpha, "agent")
    connection.set_tenant(owner.tenant)
    routing.default_team()
    presence.set_status(alpha.schema, user.pk, "online")
    empty, _ = services.conversation_start(inbox=team_inbox)
    assert empty.owner == Conversation.Owner.QUEUE
    assert routing.assign_waiting() == 0
    assert Conversation.objects.get(pk=empty.pk).assignee_id is None
    written, _ = services.conversation_start(inbox=team_inbox)
    with django_capture_on_commit_callbacks(execute=True):
        services.message_post(conversation_id=written.pk, role="visitor", text="Anyone there?", client_id="c1")
    routing.assign_waiting()
    assert Conversation.objects.get(pk=written.pk).assignee_id == user.pk


def _ai_messages(alpha: Any, conversation: Conversation) -> list[Any]:
    return [
        m
        for m in get_store().after(schema=alpha.schema, conversation_id=conversation.pk, after_seq=0)
        if m.role in ("ai", "system")
    ]


def test_each_conversation_has_a_daily_share_of_the_ai(
    alpha: Any, inbox: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from apps.agents.guardrails import usage_today

    settings.AI_DAILY_REQUESTS_PER_CONVERSATION = 2
    conversation, _ = services.conversation_start(inbox=inbox, ip="203.0.113.20")
    used_before = usage_today().requests
    for n in range(4):
        with django_capture_on_commit_callbacks(execute=True):
            services.message_post(
                conversation_id=conversation.pk, role="visitor", text="How long does shipping take?", client_id=f"c{n}"
            )
    replies = _ai_messages(alpha, conversation)
    assert [m.role for m in replies] == ["ai", "ai", "system"]  # told once, not at every message
    assert "automatic answers" in replies[-1].text
    assert usage_today().requests == used_before + 2  # nothing spent past the share
    assert _refusals(alpha, inbox)["ai_replies"] == 2
    # Asking for a person still works once the share is spent.
    with django_capture_on_commit_callbacks(execute=True):
        services.message_post(
            conversation_id=conversation.pk, role="visitor", text="Can I talk to a human please?", client_id="h1"
        )
    assert Conversation.objects.get(pk=conversation.pk).owner == Conversation.Owner.QUEUE


def test_each_address_has_a_daily_share_of_the_ai(
    alpha: Any, inbox: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.AI_DAILY_REQUESTS_PER_IP = 3
    answered = 0
    for _ in range(5):
        conversation, _ = services.conversation_start(inbox=inbox, ip="203.0.113.30")
        with django_capture_on_commit_callbacks(execute=True):
            services.message_post(
                conversation_id=conversation.pk, role="visitor", text="How long does shipping take?", client_id="c"
            )
        answered += sum(1 for m in _ai_messages(alpha, conversation) if m.role == "ai")
    assert answered == 3
    # Another address is not affected.
    other, _ = services.conversation_start(inbox=inbox, ip="203.0.113.31")
    with django_capture_on_commit_callbacks(execute=True):
        services.message_post(conversation_id=other.pk, role="visitor", text="How long does shipping take?")
    assert [m.role for m in _ai_messages(alpha, other)] == ["ai"]


def test_staff_see_refusals_as_counts_on_the_inbox_page_and_api(
    alpha: Any, beta: Any, inbox: Any, settings: Any, login: Any, api_for: Any
) -> None:
    from apps.conversations import abuse

    for _ in range(3):
        abuse.record(alpha.schema, inbox.pk, "sessions")
    abuse.record(alpha.schema, inbox.pk, "connections")
    page = login(alpha, alpha.owner_email).get(f"/dashboard/inboxes/{inbox.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    today = timezone.now().date().isoformat()
    assert f'<tr data-day="{today}"><td>{today}</td><td>1</td><td>3</td><td>0</td><td>0</td></tr>' in html

    body = api_for(alpha.host, alpha.api_key).get(f"/api/v1/inboxes/{inbox.pk}/abuse/").json()
    assert body["days"][0] == {
        "day": today,
        "connections": 1,
        "sessions": 3,
        "messages": 0,
        "ai_replies": 0,
        "total": 4,
    }
    assert len(body["days"]) == settings.ABUSE_COUNT_DAYS and body["limits"]["new_chats_per_address"]
    # Another workspace sees neither the inbox nor its counts.
    assert api_for(beta.host, beta.api_key).get(f"/api/v1/inboxes/{inbox.pk}/abuse/").status_code == 404
    assert abuse.counts(beta.schema, inbox.pk)[0]["total"] == 0


def test_limits_can_be_switched_off_and_bad_values_are_refused(settings: Any) -> None:
    from syntera.limits import Rate, hit

    assert Rate.parse("30/m") == Rate(30, 60) and Rate.parse("100/5m") == Rate(100, 300)
    assert all(hit("off-test", "0/m") for _ in range(50))
    for bad in ("", "ten/m", "5/w", "5"):
        with pytest.raises(ValueError):
            Rate.parse(bad)
