"""The staff inbox driven the way staff use it: the conversation list and its filters, a
conversation's transcript with the AI's grounding, replies, private notes, takeover and
hand-back, status and tags; the inboxes pages with the widget snippet; the tenant admin;
the staff WebSocket's frames. Roles, bad input, other tenants' ids and hostile text too.

Cross-process delivery (uvicorn, the Redis layer, a real WebSocket client) is covered by
tests/integration/test_staff_inbox.py."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.accounts.models import Role, User
from apps.accounts.services import Actor
from apps.agents.models import AgentDailyStats
from apps.conversations import services as conversations
from apps.conversations.models import Conversation, Inbox
from apps.conversations.stores import get_store
from apps.tenants.models import Tenant

HOSTILE = '<script>alert("x")</script>'
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
HELP = {
    "Shipping times": "# Shipping\n\nStandard shipping takes 3 to 5 business days within the EU. "
    "Express shipping arrives the next business day when ordered before 2 pm.",
    "Returns policy": "# Returns\n\nYou can return any unused item within 30 days of delivery for a full refund.",
}


def _actor(info: Any, email: str | None = None, role: str = Role.OWNER) -> Actor:
    tenant = Tenant.objects.get(schema_name=info.schema)
    user = User.objects.get(email=email or info.owner_email)
    return Actor(tenant=tenant, role=role, user=user, label=user.email)


def _inbox(info: Any, name: str = "Website", *, agent_id: int | None = None, channel: str = "web") -> Inbox:
    with schema_context(info.schema):
        return conversations.inbox_create(actor=_actor(info), name=name, channel=channel, agent_id=agent_id)


def _conversation(info: Any, inbox: Inbox, *texts: str, name: str = "", **start: Any) -> tuple[int, str]:
    """A conversation with these visitor messages: (id, visitor token)."""
    with schema_context(info.schema):
        conversation, token = conversations.conversation_start(
            inbox=inbox, attributes={"name": name} if name else {}, **start
        )
        for i, text in enumerate(texts):
            conversations.message_post(conversation_id=conversation.pk, role="visitor", text=text, client_id=f"v{i}")
        return int(conversation.pk), token


def _get(info: Any, conversation_id: int) -> Conversation:
    with schema_context(info.schema):
        return Conversation.objects.get(pk=conversation_id)


def _transcript(info: Any, conversation_id: int) -> list[Any]:
    with schema_context(info.schema):
        return get_store().after(schema=info.schema, conversation_id=conversation_id, after_seq=0)


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content[:300]
    return [row["id"] for row in json.loads(response.content)["conversations"]]


def _page_ids(body: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-conversation-id="(\d+)"', body)]


@pytest.fixture
def owner_client(alpha: Any, login: Any) -> Iterator[Any]:
    yield login(alpha, alpha.owner_email)


@pytest.fixture
def help_agent(alpha: Any, django_capture_on_commit_callbacks: Any) -> int:
    """An agent answering from a small help knowledge base (ingested for real)."""
    from apps.agents.services import agent_create
    from apps.knowledge import services as knowledge

    owner = _actor(alpha)
    with schema_context(alpha.schema):
        kb = knowledge.knowledge_base_create(editor=owner, name="Help")
        for title, text in HELP.items():
            with django_capture_on_commit_callbacks(execute=True):
                knowledge.source_add_text(editor=owner, kb=kb, title=title, text=text)
        return int(agent_create(editor=owner, name="Ava", knowledge_bases=[kb.pk]).pk)


# --- the list ---------------------------------------------------------------------------------


def test_inbox_lists_conversations_by_last_message_with_filters(alpha: Any, owner_client: Any) -> None:
    web = _inbox(alpha, "Website")
    mail = _inbox(alpha, "Support mail", channel="email")
    older, _ = _conversation(alpha, web, "Where is my order?", name="Olga")
    mine, _ = _conversation(alpha, mail, "Invoice question", name="Mia")
    with schema_context(alpha.schema):
        conversations.message_post(
            conversation_id=mine, role="agent", text="Looking into it.", actor=_actor(alpha), client_id="a1"
        )
    done, _ = _conversation(alpha, web, "Thanks, solved", name="Dora")
    with schema_context(alpha.schema):
        conversations.conversation_set_status(
            actor=_actor(alpha), conversation=Conversation.objects.get(pk=done), status="resolved"
        )
        canary = Conversation.objects.get(inbox__name="canary-alpha inbox").pk
    empty, _ = _conversation(alpha, web)  # a widget opened, nothing said: not in the inbox yet
    newest, _ = _conversation(alpha, web, "Hello?", name="Nina")

    page = owner_client.get("/dashboard/inbox/")
    assert page.status_code == 200
    body = page.content.decode()
    assert _page_ids(body) == [newest, mine, older, canary]  # open ones, last message first
    assert "Nina" in body and "Hello?" in body and "canary-alpha message" in body
    assert 'data-json-url="/dashboard/inbox/conversations.json"' in body and "js/inbox.js" in body
    assert re.search(rf'data-conversation-id="{newest}" class="conversation unread"', body)
    assert "Human: owner@alpha.example" in body and "Waiting for a human" in body

    json_url = "/dashboard/inbox/conversations.json"
    rows = json.loads(owner_client.get(json_url).content)
    assert rows["count"] == 4 and rows["page"] == 1
    first = rows["conversations"][0]
    assert first["id"] == newest and first["unread"] == 1 and first["preview"] == "Hello?"
    assert first["title"] == "Nina" and first["owner"] == "queue" and first["url"] == f"/dashboard/inbox/{newest}/"
    assert first["inbox_name"] == "Website" and first["channel"] == "web" and first["last_seq"] == 1
    assert empty not in _ids(owner_client.get(json_url + "?status=any"))

    assert _ids(owner_client.get(json_url + "?status=resolved")) == [done]
    nothing = owner_client.get("/dashboard/inbox/?status=snoozed")  # an empty list is not an error
    assert nothing.status_code == 200 and "No conversations match these filters." in nothing.content.decode()
    assert _ids(owner_client.get(json_url + "?status=snoozed")) == []
    assert _ids(owner_client.get(json_url + "?status=any")) == [newest, done, mine, older, canary]
    assert _ids(owner_client.get(json_url + "?channel=email")) == [mine]
    assert _ids(owner_client.get(json_url + f"?inbox={web.pk}")) == [newest, older]
    assert _ids(owner_client.get(json_url + "?assignee=me")) == [mine, canary]
    assert _ids(owner_client.get(json_url + "?assignee=unassigned")) == [newest, older]
    assert _ids(owner_client.get(json_url + "?unread=1")) == [newest, mine, older]
    assert _ids(owner_client.get(json_url + "?owner=queue")) == [newest, older]
    assert _ids(owner_client.get(json_url + "?status=any&unread=1&channel=web")) == [newest, done, older]
    filtered = owner_client.get(f"/dashboard/inbox/?inbox={web.pk}&unread=1").content.decode()
    assert _page_ids(filtered) == [newest, older]
    assert re.search(r'name="unread" value="1"[^>]*checked', filtered)

    # Bad filters: a clear error on the page and in the JSON, no list.
    for query, field, detail in [
        ("status=closed", "status", "Select a valid choice"),
        ("inbox=999999", "inbox", "Select a valid choice"),
        ("assignee=bob", "assignee", "Select a valid choice"),
        ("unread=banana", "unread", "Select a valid choice"),
        ("page=0", "page", "greater than or equal to 1"),
    ]:
        bad = owner_client.get(f"/dashboard/inbox/?{query}")
        assert bad.status_code == 400, query
        text = bad.content.decode()
        assert detail in text and 'id="filters-error"' in text and "<tbody>" not in text, query
        error = owner_client.get(f"{json_url}?{query}")
        assert error.status_code == 400, query
        payload = json.loads(error.content)["error"]
        assert payload["code"] == "invalid" and detail in payload["fields"][field][0], query
    assert owner_client.post(json_url).status_code == 405


def test_the_inbox_json_costs_the_same_few_queries_for_many_conversations(
    alpha: Any, owner_client: Any, django_assert_max_num_queries: Any
) -> None:
    """The list is read on every staff event by every open inbox page: a fixed number of
    queries (session, membership, inbox choices, count, one page of rows with their inbox,
    contact and assignee), whatever the number of rows."""
    inbox = _inbox(alpha, "Website")
    for i in range(30):
        _conversation(alpha, inbox, f"Question {i}", name=f"Visitor {i}")
    owner_client.get("/dashboard/inbox/conversations.json")  # warm the session and host caches
    with django_assert_max_num_queries(8):
        assert len(_ids(owner_client.get("/dashboard/inbox/conversations.json"))) == 31


# --- one conversation -----------------------------------------------------------------------


def test_grounding_names_the_question_words_the_knowledge_never_mentions(
    alpha: Any, owner_client: Any, help_agent: int, django_capture_on_commit_callbacks: Any
) -> None:
    inbox = _inbox(alpha, "Website", agent_id=help_agent)
    with schema_context(alpha.schema):
        conversation, _ = conversations.conversation_start(inbox=inbox)
        with django_capture_on_commit_callbacks(execute=True):
            conversations.message_post(
                conversation_id=conversation.pk, role="visitor", text="Is acupuncture covered by standard shipping?"
            )
    body = owner_client.get(f"/dashboard/inbox/{conversation.pk}/").content.decode()
    grounding = body.split('<details class="grounding">')[1].split("</details>")[0]
    assert re.search(
        r'class="unknown-words"><small>Not mentioned anywhere in the knowledge:</small> [^<]*acupuncture', grounding
    )
    url = f"/dashboard/inbox/{conversation.pk}/messages.json?after=0"
    ai = json.loads(owner_client.get(url).content)["messages"][1]
    assert "acupuncture" in ai["grounding"]["unknown_words"]


def test_conversation_shows_transcript_with_grounding_contact_and_rating(
    alpha: Any, owner_client: Any, help_agent: int, django_capture_on_commit_callbacks: Any
) -> None:
    inbox = _inbox(alpha, "Website", agent_id=help_agent)
    with schema_context(alpha.schema):
        from apps.crm.services import contact_create

        contact = contact_create(actor=_actor(alpha), name="Dana Visitor", email="dana@example.com")
        conversation, _ = conversations.conversation_start(
            inbox=inbox, contact=contact, attributes={"name": "Dana", "email": "dana@example.com"}
        )
        with django_capture_on_commit_callbacks(execute=True):  # the AI's reply runs (eager Celery)
            conversations.message_post(
                conversation_id=conversation.pk, role="visitor", text="How long does standard shipping take?"
            )
        conversations.conversation_rate(conversation_id=conversation.pk, rating=4, comment="Quick answer")
        conversations.answer_feedback(conversation_id=conversation.pk, seq=2, helpful=True)
    messages = _transcript(alpha, conversation.pk)
    assert [m.role for m in messages] == ["visitor", "ai"]

    page = owner_client.get(f"/dashboard/inbox/{conversation.pk}/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'class="msg visitor" data-seq="1"' in body and 'class="msg ai" data-seq="2"' in body
    assert "3 to 5 business days" in body
    grounding = body.split('<details class="grounding">')[1].split("</details>")[0]
    assert 'class="badge decision answered"' in grounding and "grounded in cited reference material" in grounding
    assert "Shipping times" in grounding and 'class="chunk cited"' in grounding
    assert re.search(r'class="score">0\.\d{4}<', grounding) and re.search(r'class="similarity">0\.\d{3}<', grounding)
    assert (
        '<span class="prompt-version">1</span>' in grounding and '<span class="model">offline-extractive' in grounding
    )
    assert f'href="/dashboard/contacts/{contact.pk}/"' in body and "Dana Visitor" in body
    assert "4/5" in body and "Quick answer" in body
    assert '<p class="visitor-feedback" data-helpful="true"><small>The visitor found this answer helpful' in body
    assert '<dt class="attr">email</dt><dd class="attr">dana@example.com</dd>' in body
    assert 'id="conv-owner">AI agent<' in body and 'id="composer"' in body
    assert f'data-messages-url="/dashboard/inbox/{conversation.pk}/messages.json"' in body

    url = f"/dashboard/inbox/{conversation.pk}/messages.json"
    data = json.loads(owner_client.get(url + "?after=0").content)
    assert [m["seq"] for m in data["messages"]] == [1, 2] and data["has_more"] is False
    ai = data["messages"][1]
    assert ai["role"] == "ai" and ai["citations"][0]["title"] == "Shipping times"
    assert (ai["feedback"], data["messages"][0]["feedback"]) == (True, None)
    assert ai["citations"][0]["href"].startswith("/dashboard/knowledge/")
    g = ai["grounding"]
    assert g["decision"] == "answered" and g["prompt_version"] == 1 and g["model"] == "offline-extractive"
    assert g["cited_chunks"] and any(c["cited"] for c in g["chunks"]) and g["chunks"][0]["score"] is not None
    assert data["conversation"]["rating"] == 4 and data["conversation"]["contact"] == contact.pk
    assert json.loads(owner_client.get(url + "?after=2").content)["messages"] == []
    assert [m["seq"] for m in json.loads(owner_client.get(url + "?before=2").content)["messages"]] == [1]
    for query in ("?after=abc", "?after=-1", "?before=x", "?after=1&before=2"):
        bad = owner_client.get(url + query)
        assert bad.status_code == 400, query
        assert json.loads(bad.content)["error"]["detail"], query


def test_staff_get_a_suggested_reply_from_the_agent_and_nothing_is_sent(
    alpha: Any, beta: Any, owner_client: Any, help_agent: int, make_member: Any, login: Any
) -> None:
    """The agent drafts an answer to the visitor's latest message from its knowledge, with
    the sources; it is not stored, sent or counted on the agent's stats."""
    inbox = _inbox(alpha, "Website", agent_id=help_agent)
    bare = _inbox(alpha, "No AI")
    with schema_context(alpha.schema):
        conversation, _ = conversations.conversation_start(inbox=inbox)
        store = get_store()
        store.append(
            schema=alpha.schema, conversation_id=conversation.pk, role="visitor", text="Hi, can I send it back?"
        )
        store.append(schema=alpha.schema, conversation_id=conversation.pk, role="agent", text="Let me check.")
        store.append(
            schema=alpha.schema,
            conversation_id=conversation.pk,
            role="visitor",
            text="How long do I have to return an item?",
        )
        store.append(schema=alpha.schema, conversation_id=conversation.pk, role="ai", text="Handing over.")
        store.append(
            schema=alpha.schema, conversation_id=conversation.pk, role="visitor", text="Can I talk to a person, please?"
        )
        quiet, _ = conversations.conversation_start(inbox=inbox)
        no_ai, _ = conversations.conversation_start(inbox=bare)
    url = f"/dashboard/inbox/{conversation.pk}/suggest/"
    page = owner_client.get(f"/dashboard/inbox/{conversation.pk}/").content.decode()
    assert f'data-suggest-url="{url}"' in page and 'id="composer-suggest"' in page
    assert 'data-suggest-url=""' in owner_client.get(f"/dashboard/inbox/{no_ai.pk}/").content.decode()
    response = owner_client.post(url, HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    draft = json.loads(response.content)
    assert draft["decision"] == "answered" and "30 days" in draft["text"] and "[1]" not in draft["text"]
    assert draft["citations"][0]["title"] == "Returns policy" and draft["citations"][0]["href"].startswith(
        "/dashboard/"
    )
    assert len(_transcript(alpha, conversation.pk)) == 5  # nothing stored or sent
    with schema_context(alpha.schema):
        assert not AgentDailyStats.objects.exists()
    with schema_context(alpha.schema):  # the question and the request for a person, back to back
        both, _ = conversations.conversation_start(inbox=inbox)
        for text in ("How long do I have to return an item?", "Actually, can I speak to a person?"):
            get_store().append(schema=alpha.schema, conversation_id=both.pk, role="visitor", text=text)
    assert "30 days" in json.loads(owner_client.post(f"/dashboard/inbox/{both.pk}/suggest/").content)["text"]
    for bad, code in ((quiet.pk, "nothing_to_answer"), (no_ai.pk, "no_agent")):
        refused = owner_client.post(f"/dashboard/inbox/{bad}/suggest/")
        assert refused.status_code == 400 and json.loads(refused.content)["error"]["code"] == code
    viewer, _ = make_member(alpha, "viewer")
    assert login(alpha, viewer.email).post(url).status_code == 403
    assert owner_client.get(url).status_code == 405
    assert owner_client.post("/dashboard/inbox/999999/suggest/").status_code == 404
    with schema_context(alpha.schema):
        alpha_ids = set(Conversation.objects.values_list("pk", flat=True))
    with schema_context(beta.schema):
        beta_inbox = _inbox(beta, "Beta site", agent_id=None)
        other, _ = conversations.conversation_start(inbox=beta_inbox)
        while other.pk in alpha_ids:
            other, _ = conversations.conversation_start(inbox=beta_inbox)
    assert owner_client.post(f"/dashboard/inbox/{other.pk}/suggest/").status_code == 404


def test_reply_takes_over_and_private_notes_never_reach_the_visitor(
    alpha: Any, make_member: Any, login: Any, help_agent: int, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)
    inbox = _inbox(alpha, "Website", agent_id=help_agent)
    with schema_context(alpha.schema):
        conversation, token = conversations.conversation_start(inbox=inbox)
        conversations.message_post(conversation_id=conversation.pk, role="visitor", text="Hi", client_id="v1")
    member, _ = make_member(alpha, "agent")
    staff = login(alpha, member.email)
    staff_name = conversations.display_name(_actor(alpha, member.email, Role.AGENT))  # never the email
    url = f"/dashboard/inbox/{conversation.pk}/reply/"

    def reply_and_note() -> None:
        with django_capture_on_commit_callbacks(execute=True):  # publishes the wake-ups for real
            sent = staff.post(url, {"role": "agent", "text": "Hello, Sam here.", "client_id": "c1"})
            assert sent.status_code == 302 and sent["Location"] == f"/dashboard/inbox/{conversation.pk}/"
            note = staff.post(
                url,
                {"role": "note", "text": "VIP customer, be nice", "client_id": "c2"},
                HTTP_ACCEPT="application/json",
            )
            assert note.status_code == 200, note.content
            data = json.loads(note.content)
            assert data["created"] is True and data["message"]["role"] == "note" and data["message"]["seq"] == 3
            assert data["conversation"]["owner"] == "human" and data["conversation"]["assignee"] == member.pk

    async def scenario() -> None:
        from syntera.asgi import application

        comm = WebsocketCommunicator(
            application,
            f"/ws/widget/?key={inbox.widget_key}&token={token}",
            headers=[(b"host", alpha.host.encode()), (b"origin", f"http://{alpha.host}".encode())],
        )
        assert (await comm.connect())[0]
        await comm.send_to(text_data=json.dumps({"type": "hello"}))
        assert json.loads(await comm.receive_from(timeout=3))["type"] == "session"
        await comm.send_to(text_data=json.dumps({"type": "resume", "after_seq": 0}))
        assert json.loads(await comm.receive_from(timeout=3))["text"] == "Hi"
        await sync_to_async(reply_and_note)()
        frames: list[dict[str, Any]] = []
        while not ({"type": "handoff", "status": "assigned"} in frames and any(f["type"] == "message" for f in frames)):
            frames.append(json.loads(await comm.receive_from(timeout=3)))
        assert [(f["role"], f["text"]) for f in frames if f["type"] == "message"] == [("agent", "Hello, Sam here.")]
        # The note woke the socket too, but the visitor was sent nothing for it...
        assert await comm.receive_nothing(timeout=0.5)
        # ...and a replay from the start has the reply and never the note.
        await comm.send_to(text_data=json.dumps({"type": "resume", "after_seq": 0}))
        replay = []
        while not await comm.receive_nothing(timeout=0.5):
            replay.append(json.loads(await comm.receive_from()))
        assert [(f["seq"], f["role"]) for f in replay] == [(1, "visitor"), (2, "agent")]
        assert "VIP customer" not in json.dumps(replay)
        await comm.disconnect()

    async_to_sync(scenario)()
    stored = _transcript(alpha, conversation.pk)
    assert [(m.role, m.author_label) for m in stored if m.role in ("agent", "note")] == [
        ("agent", staff_name),
        ("note", staff_name),
    ]
    state = _get(alpha, conversation.pk)
    assert state.owner == "human" and state.assignee_id == member.pk

    page = staff.get(f"/dashboard/inbox/{conversation.pk}/").content.decode()
    note = page.split('class="msg note"')[1].split("</li>")[0]
    assert "Private note · not shown to the visitor" in note and "VIP customer, be nice" in note
    assert 'id="take-over-form" hidden' in page

    # The same client_id again (a double submit) stores nothing new.
    again = staff.post(
        url, {"role": "note", "text": "VIP customer, be nice", "client_id": "c2"}, HTTP_ACCEPT="application/json"
    )
    assert json.loads(again.content)["created"] is False and len(_transcript(alpha, conversation.pk)) == len(stored)
    # Bad input: clear errors, nothing stored.
    for data, detail in [
        ({"role": "agent", "text": "   "}, "Write a message first."),
        ({"role": "shout", "text": "Hi"}, "Choose a reply or a private note."),
        ({"role": "agent", "text": "x" * 10_001}, "at most 10000 characters"),
        ({"role": "agent", "text": "Hi", "client_id": "bad id!"}, "Reload the page"),
    ]:
        bad = staff.post(url, data, HTTP_ACCEPT="application/json")
        assert bad.status_code == 400 and detail in json.loads(bad.content)["error"]["detail"], data
        page_bad = staff.post(url, data)
        assert page_bad.status_code == 400 and detail in page_bad.content.decode(), data
    assert len(_transcript(alpha, conversation.pk)) == len(stored)


def test_take_over_hand_back_status_and_tags(alpha: Any, owner_client: Any, help_agent: int) -> None:
    with_ai = _inbox(alpha, "Website", agent_id=help_agent)
    humans_only = _inbox(alpha, "Phone desk")
    conversation, _ = _conversation(alpha, with_ai)
    url = f"/dashboard/inbox/{conversation}/action/"

    taken = owner_client.post(url, {"action": "take_over"}, follow=True)
    assert "You took over the conversation." in taken.content.decode()
    state = _get(alpha, conversation)
    assert (state.owner, state.assignee.email) == ("human", alpha.owner_email)
    assert 'id="conv-owner">Human: owner@alpha.example<' in taken.content.decode()
    back = owner_client.post(url, {"action": "hand_back"}, follow=True)
    assert "The AI agent is back in the conversation." in back.content.decode()
    assert _get(alpha, conversation).owner == "ai" and _get(alpha, conversation).assignee_id is None

    no_ai, _ = _conversation(alpha, humans_only, "Hi")
    refused = owner_client.post(f"/dashboard/inbox/{no_ai}/action/", {"action": "hand_back"})
    assert refused.status_code == 409 and "no AI agent to hand back to" in refused.content.decode()
    assert 'id="hand-back-form" hidden' in owner_client.get(f"/dashboard/inbox/{no_ai}/").content.decode()

    later = (timezone.now() + timedelta(days=2)).replace(second=0, microsecond=0)
    snoozed = owner_client.post(
        url, {"action": "status", "status": "snoozed", "snoozed_until": later.strftime("%Y-%m-%dT%H:%M")}
    )
    assert snoozed.status_code == 302
    state = _get(alpha, conversation)
    assert state.status == "snoozed" and state.snoozed_until == later
    assert owner_client.post(url, {"action": "status", "status": "pending"}).status_code == 302
    assert _get(alpha, conversation).status == "pending" and _get(alpha, conversation).snoozed_until is None

    tagged = owner_client.post(url, {"action": "tags", "tags": "Billing, vip, billing ,  "}, follow=True)
    assert "Tags saved." in tagged.content.decode() and _get(alpha, conversation).tags == ["billing", "vip"]

    past = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    for data, detail in [
        ({"action": "status", "status": "snoozed"}, "Choose until when to snooze"),
        ({"action": "status", "status": "snoozed", "snoozed_until": past}, "Choose a time in the future."),
        ({"action": "status", "status": "snoozed", "snoozed_until": "tomorrow"}, "Enter a valid date/time."),
        ({"action": "status", "status": "closed"}, "Select a valid choice"),
        ({"action": "tags", "tags": "x" * 41}, "at most 40 characters"),
        ({"action": "tags", "tags": ",".join(f"t{i}" for i in range(21))}, "at most 20 tags"),
        ({"action": "explode"}, "Unknown action."),
    ]:
        bad = owner_client.post(url, data)
        assert bad.status_code == 400 and detail in bad.content.decode(), data
    state = _get(alpha, conversation)
    assert (state.status, state.tags) == ("pending", ["billing", "vip"])
    assert owner_client.get(url).status_code == 405


def test_roles_viewers_read_agents_act_admins_manage_inboxes(
    alpha: Any, make_member: Any, login: Any, help_agent: int
) -> None:
    inbox = _inbox(alpha, "Website", agent_id=help_agent)
    conversation, _ = _conversation(alpha, inbox, "Need help")
    viewer = login(alpha, make_member(alpha, "viewer")[0].email)
    for path in (
        "/dashboard/inbox/",
        "/dashboard/inbox/conversations.json",
        f"/dashboard/inbox/{conversation}/",
        f"/dashboard/inbox/{conversation}/messages.json",
        "/dashboard/inboxes/",
        f"/dashboard/inboxes/{inbox.pk}/",
    ):
        assert viewer.get(path).status_code == 200, path
    page = viewer.get(f"/dashboard/inbox/{conversation}/").content.decode()
    assert "Need help" in page and 'id="composer"' not in page and 'id="conversation-actions"' not in page
    assert 'data-can-reply="0"' in page
    assert viewer.post(f"/dashboard/inbox/{conversation}/reply/", {"role": "agent", "text": "Hi"}).status_code == 403
    refused = viewer.post(
        f"/dashboard/inbox/{conversation}/reply/", {"role": "note", "text": "Hi"}, HTTP_ACCEPT="application/json"
    )
    assert refused.status_code == 403 and json.loads(refused.content)["error"]["code"] == "permission_denied"
    assert viewer.post(f"/dashboard/inbox/{conversation}/action/", {"action": "take_over"}).status_code == 403
    settings_page = viewer.get(f"/dashboard/inboxes/{inbox.pk}/").content.decode()
    assert 'id="inbox-settings-readonly"' in settings_page and 'id="inbox-form"' not in settings_page
    assert inbox.widget_key in settings_page and 'id="rotate-key-form"' not in settings_page
    assert 'id="inbox-create-form"' not in viewer.get("/dashboard/inboxes/").content.decode()
    assert viewer.post("/dashboard/inboxes/", {"name": "Nope"}).status_code == 403
    assert viewer.post(f"/dashboard/inboxes/{inbox.pk}/", {"name": "Nope"}).status_code == 403
    assert viewer.post(f"/dashboard/inboxes/{inbox.pk}/rotate-key/").status_code == 403
    assert viewer.post(f"/dashboard/inboxes/{inbox.pk}/active/", {"active": "0"}).status_code == 403
    assert len(_transcript(alpha, conversation)) == 1 and _get(alpha, conversation).owner == "ai"

    agent = login(alpha, make_member(alpha, "agent")[0].email)
    assert agent.post(f"/dashboard/inbox/{conversation}/reply/", {"role": "agent", "text": "On it"}).status_code == 302
    assert agent.post(f"/dashboard/inbox/{conversation}/action/", {"action": "tags", "tags": "a"}).status_code == 302
    assert agent.post(f"/dashboard/inboxes/{inbox.pk}/", {"name": "Nope"}).status_code == 403
    assert agent.post(f"/dashboard/inboxes/{inbox.pk}/rotate-key/").status_code == 403
    with schema_context(alpha.schema):
        assert Inbox.objects.get(pk=inbox.pk).widget_key == inbox.widget_key
        assert not Inbox.objects.filter(name="Nope").exists()


# --- inboxes ----------------------------------------------------------------------------------


def test_admin_creates_configures_rotates_and_deactivates_a_web_chat_inbox(
    alpha: Any, owner_client: Any, help_agent: int
) -> None:
    listing = owner_client.get("/dashboard/inboxes/").content.decode()
    assert "canary-alpha inbox" in listing and 'id="inbox-create-form"' in listing
    form = {
        "name": "Website chat",
        "agent": str(help_agent),
        "title": "Ask us",
        "greeting": "Hi! How can we help?",
        "color": "#112233",
        "text_color": "#FFFFFF",
        "position": "left",
        "allowed_origins": "https://Shop.Example/\nhttps://www.shop.example:443\n\nhttp://localhost:3000",
        "pre_chat_fields": ["name", "email"],
        "business_hours_message": "We reply Mon-Fri 9-17.",
    }
    created = owner_client.post("/dashboard/inboxes/", form)
    assert created.status_code == 302
    inbox_id = int(created["Location"].rstrip("/").rsplit("/", 1)[1])
    with schema_context(alpha.schema):
        inbox = Inbox.objects.get(pk=inbox_id)
    assert (inbox.channel, inbox.agent_id, inbox.is_active) == ("web", help_agent, True)
    assert inbox.settings == {
        "title": "Ask us",
        "greeting": "Hi! How can we help?",
        "color": "#112233",
        "text_color": "#FFFFFF",
        "position": "left",
        "allowed_origins": ["https://shop.example", "https://www.shop.example", "http://localhost:3000"],
        "pre_chat_fields": ["name", "email"],
        "business_hours_message": "We reply Mon-Fri 9-17.",
        "identity_required": False,
    }
    page = owner_client.get(created["Location"]).content.decode()
    snippet = (
        f"&lt;script src=&quot;http://{alpha.host}/static/widget/syntera.js&quot; "
        f"data-key=&quot;{inbox.widget_key}&quot; async&gt;&lt;/script&gt;"
    )
    assert f'<code id="widget-snippet">{snippet}</code>' in page
    assert 'data-copy-target="widget-snippet"' in page and f'href="/dashboard/inboxes/{inbox_id}/demo/"' in page
    assert "https://shop.example\nhttps://www.shop.example\nhttp://localhost:3000</textarea>" in page
    assert re.search(r'value="email"[^>]*checked', page) and not re.search(r'value="phone"[^>]*checked', page)
    listing = owner_client.get("/dashboard/inboxes/").content.decode()
    assert f'<code class="widget-key">{inbox.widget_key}</code>' in listing and "Ava" in listing

    saved = owner_client.post(created["Location"], {**form, "agent": "", "title": "Chat", "pre_chat_fields": []})
    assert saved.status_code == 302
    with schema_context(alpha.schema):
        inbox.refresh_from_db()
    assert inbox.agent_id is None and inbox.settings["title"] == "Chat" and inbox.settings["pre_chat_fields"] == []

    bad = owner_client.post(
        created["Location"],
        {
            **form,
            "allowed_origins": "https://ok.example\nshop.example\nhttps://x.example/path",
            "color": "red",
            "position": "top",
            "pre_chat_fields": ["age"],
            "agent": "999999",
            "name": "",
        },
    )
    assert bad.status_code == 400
    text = bad.content.decode()
    for detail in (
        "Line 2: write an origin such as https://shop.example (no path).",
        "Line 3: write an origin",
        "Pick a colour (#rrggbb).",
        "Select a valid choice. top",
        "Select a valid choice. age",
        "Select a valid choice. That choice is not one of the available choices.",
        "This field is required.",
    ):
        assert detail in text, detail
    with schema_context(alpha.schema):
        inbox.refresh_from_db()
    assert inbox.name == "Website chat" and inbox.settings["color"] == "#112233"

    old_key = inbox.widget_key
    rotated = owner_client.post(f"/dashboard/inboxes/{inbox_id}/rotate-key/", follow=True)
    with schema_context(alpha.schema):
        inbox.refresh_from_db()
    assert inbox.widget_key != old_key and inbox.widget_key in rotated.content.decode()
    assert old_key not in rotated.content.decode()
    off = owner_client.post(f"/dashboard/inboxes/{inbox_id}/active/", {"active": "0"}, follow=True)
    assert "Inbox Website chat deactivated." in off.content.decode() and 'id="activate-form"' in off.content.decode()
    with schema_context(alpha.schema):
        assert Inbox.objects.get(pk=inbox_id).is_active is False
    assert owner_client.post(f"/dashboard/inboxes/{inbox_id}/active/", {"active": "maybe"}).status_code == 400
    owner_client.post(f"/dashboard/inboxes/{inbox_id}/active/", {"active": "1"})
    with schema_context(alpha.schema):
        assert Inbox.objects.get(pk=inbox_id).is_active is True
    assert owner_client.get(f"/dashboard/inboxes/{inbox_id}/rotate-key/").status_code == 405

    # An email inbox has no widget: name and agent only.
    mail = _inbox(alpha, "Mail", channel="email")
    mail_page = owner_client.get(f"/dashboard/inboxes/{mail.pk}/").content.decode()
    assert 'id="widget-install"' not in mail_page and 'name="allowed_origins"' not in mail_page
    assert owner_client.post(f"/dashboard/inboxes/{mail.pk}/", {"name": "Mail desk"}).status_code == 302
    with schema_context(alpha.schema):
        assert Inbox.objects.get(pk=mail.pk).name == "Mail desk"


# --- isolation and escaping --------------------------------------------------------------------


def test_another_tenants_conversation_and_inbox_ids_are_not_found(alpha: Any, beta: Any, owner_client: Any) -> None:
    """Ids are per schema: beta gets more conversations and inboxes than alpha has, and alpha
    asking for those ids finds nothing (and never beta's rows)."""
    for i in range(3):
        inbox = _inbox(beta, f"canary-beta extra {i}")
        _conversation(beta, inbox, f"canary-beta secret {i}")
    with schema_context(beta.schema):
        conversation_id = Conversation.objects.order_by("-pk").first().pk  # type: ignore[union-attr]
        inbox_id = Inbox.objects.order_by("-pk").first().pk  # type: ignore[union-attr]
    with schema_context(alpha.schema):
        assert not Conversation.objects.filter(pk=conversation_id).exists()
        assert not Inbox.objects.filter(pk=inbox_id).exists()
    base = f"/dashboard/inbox/{conversation_id}/"
    responses = [
        owner_client.get(base),
        owner_client.get(base + "messages.json?after=0"),
        owner_client.post(base + "reply/", {"role": "agent", "text": "Hi"}),
        owner_client.post(base + "reply/", {"role": "note", "text": "Hi"}, HTTP_ACCEPT="application/json"),
        owner_client.post(base + "action/", {"action": "take_over"}),
        owner_client.get(f"/dashboard/inboxes/{inbox_id}/"),
        owner_client.post(f"/dashboard/inboxes/{inbox_id}/", {"name": "Mine now"}),
        owner_client.post(f"/dashboard/inboxes/{inbox_id}/rotate-key/"),
        owner_client.post(f"/dashboard/inboxes/{inbox_id}/active/", {"active": "0"}),
    ]
    for response in responses:
        assert response.status_code == 404, response.request["PATH_INFO"]
        assert b"canary-beta" not in response.content
    assert json.loads(responses[1].content)["error"]["code"] == "not_found"
    assert len(_transcript(beta, conversation_id)) == 1
    with schema_context(beta.schema):
        beta_inbox = Inbox.objects.get(pk=inbox_id)
        assert beta_inbox.name == "canary-beta extra 2" and beta_inbox.is_active
    listing = owner_client.get("/dashboard/inbox/?status=any").content + owner_client.get("/dashboard/inboxes/").content
    assert b"canary-beta" not in listing and b"canary-alpha inbox" in listing


def test_hostile_text_is_escaped_in_the_inbox_json_and_admin(
    alpha: Any, owner_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    inbox = _inbox(alpha, HOSTILE)
    conversation, _ = _conversation(alpha, inbox, HOSTILE, name=HOSTILE)
    with schema_context(alpha.schema):
        conversations.message_post(
            conversation_id=conversation, role="note", text=f"note {HOSTILE}", actor=_actor(alpha), client_id="n1"
        )
        conversations.conversation_set_tags(
            actor=_actor(alpha), conversation=Conversation.objects.get(pk=conversation), tags=[HOSTILE[:40]]
        )
    pages = [
        "/dashboard/inbox/",
        f"/dashboard/inbox/{conversation}/",
        "/dashboard/inboxes/",
        f"/dashboard/inboxes/{inbox.pk}/",
        "/admin/conversations/inbox/",
        "/admin/conversations/conversation/",
        f"/admin/conversations/conversation/{conversation}/change/",
        "/admin/conversations/message/",
    ]
    for path in pages:
        response = owner_client.get(path)
        assert response.status_code == 200, path
        body = response.content.decode()
        assert "<script>alert" not in body, path
        assert "&lt;script&gt;alert(" in body, path
    admin = owner_client.get(f"/admin/conversations/conversation/{conversation}/change/").content.decode()
    owner_name = conversations.display_name(_actor(alpha))
    assert '<table id="transcript">' in admin and f"note {ESCAPED}" in admin and f"Private note ({owner_name})" in admin
    listed = owner_client.get("/dashboard/inbox/conversations.json").content
    transcript = owner_client.get(f"/dashboard/inbox/{conversation}/messages.json").content
    for raw in (listed, transcript):
        assert b"<script" not in raw and b"\\u003cscript\\u003e" in raw
    # ...and the text itself is intact once parsed: the page's script shows it with textContent.
    row = json.loads(listed)["conversations"][0]
    assert row["title"] == HOSTILE and row["preview"] == HOSTILE and row["inbox_name"] == HOSTILE
    assert [m["text"] for m in json.loads(transcript)["messages"]] == [HOSTILE, f"note {HOSTILE}"]
    # The tenant admin is read-only.
    assert owner_client.post(f"/admin/conversations/conversation/{conversation}/change/", {}).status_code == 403
    assert owner_client.get("/admin/conversations/message/add/").status_code == 403


def test_anonymous_and_foreign_sessions_get_no_inbox_data(alpha: Any, beta: Any, client_for: Any, login: Any) -> None:
    anonymous = client_for(alpha.host)
    assert anonymous.get("/dashboard/inbox/").status_code == 302
    refused = anonymous.get("/dashboard/inbox/conversations.json")
    assert refused.status_code == 403 and json.loads(refused.content)["error"]["code"] == "not_authenticated"
    with schema_context(alpha.schema):
        canary = Conversation.objects.get(inbox__name="canary-alpha inbox").pk
    assert anonymous.get(f"/dashboard/inbox/{canary}/messages.json").status_code == 403
    assert anonymous.post(f"/dashboard/inbox/{canary}/reply/", {"role": "agent", "text": "x"}).status_code == 302
    assert len(_transcript(alpha, canary)) == 1


# --- the staff WebSocket ---------------------------------------------------------------------


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    from django.db import connection

    schema = connection.schema_name
    async_to_sync(scenario)()
    connection.set_schema(schema)


async def _staff_socket(info: Any, client: Any) -> WebsocketCommunicator:
    from syntera.asgi import application

    cookie = f"sessionid={client.cookies['sessionid'].value}"
    comm = WebsocketCommunicator(
        application,
        "/ws/staff/",
        headers=[
            (b"host", info.host.encode()),
            (b"origin", f"http://{info.host}".encode()),
            (b"cookie", cookie.encode()),
        ],
    )
    assert (await comm.connect())[0]
    hello = await comm.receive_json_from(timeout=3)
    assert hello["type"] == "hello", hello
    return comm


async def _until(comm: WebsocketCommunicator, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for _ in range(20):
        frame = await comm.receive_json_from(timeout=3)
        if check(frame):
            return frame
    raise AssertionError("the expected frame never came")


def test_staff_socket_relays_events_and_takes_typing_and_read(
    alpha: Any, make_member: Any, login: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)
    inbox = _inbox(alpha, "Website")
    conversation, token = _conversation(alpha, inbox, "First")
    staff = login(alpha, make_member(alpha, "agent")[0].email)
    viewer = login(alpha, make_member(alpha, "viewer")[0].email)

    def visitor_writes() -> None:
        with schema_context(alpha.schema), django_capture_on_commit_callbacks(execute=True):
            conversations.message_post(conversation_id=conversation, role="visitor", text="Second", client_id="v9")

    async def scenario() -> None:
        from syntera.asgi import application

        ws = await _staff_socket(alpha, staff)
        visitor = WebsocketCommunicator(
            application,
            f"/ws/widget/?key={inbox.widget_key}&token={token}",
            headers=[(b"host", alpha.host.encode()), (b"origin", f"http://{alpha.host}".encode())],
        )
        assert (await visitor.connect())[0]
        await visitor.send_json_to({"type": "hello"})
        assert (await visitor.receive_json_from(timeout=3))["type"] == "session"

        # A visitor message: the staff socket gets message.created with the summary row.
        await sync_to_async(visitor_writes)()
        event = await _until(ws, lambda f: f["type"] == "message.created")
        row = event["conversation"]
        # (Seq 2 is "<agent> joined": the waiting conversation went to the person who came online.)
        assert row["id"] == conversation and row["preview"] == "Second" and row["unread"] == 2 and row["last_seq"] == 3
        assert row["owner"] == "human" and row["assignee"] is not None

        # The visitor types: staff see it. Staff type: the visitor sees an agent typing.
        await visitor.send_json_to({"type": "typing"})
        assert await _until(ws, lambda f: f["type"] == "visitor.typing") == {
            "type": "visitor.typing",
            "conversation": conversation,
        }
        await ws.send_json_to({"type": "typing", "conversation": conversation})
        assert await _until(visitor, lambda f: f["type"] == "typing") == {"type": "typing", "role": "agent"}

        # Read: unread goes to zero (the ping's pong says the read frame was handled).
        await ws.send_json_to({"type": "read", "conversation": conversation})
        await ws.send_json_to({"type": "ping"})
        assert await _until(ws, lambda f: f["type"] in ("pong", "error")) == {"type": "pong"}

        # Bad frames get an error and the socket stays open.
        for frame, code in [
            ({"type": "typing"}, "invalid_frame"),
            ({"type": "read", "conversation": "7"}, "invalid_frame"),
            ({"type": "read", "conversation": True}, "invalid_frame"),
            ({"type": "read", "conversation": 99_999_999}, "not_found"),
            ({"type": "typing", "conversation": 99_999_999}, "not_found"),
            ({"type": "dance"}, "unknown_type"),
        ]:
            await ws.send_json_to(frame)
            error = await _until(ws, lambda f: f["type"] == "error")
            assert error["code"] == code and error["detail"], frame
        await ws.send_to(text_data="{nope")
        assert (await _until(ws, lambda f: f["type"] == "error"))["code"] == "invalid_json"

        # Viewers read the inbox but neither type to visitors nor mark conversations read.
        watcher = await _staff_socket(alpha, viewer)
        for kind in ("typing", "read"):
            await watcher.send_json_to({"type": kind, "conversation": conversation})
            error = await _until(watcher, lambda f: f["type"] == "error")
            assert error["code"] == "permission_denied", kind
        await watcher.disconnect()
        await visitor.disconnect()
        await ws.disconnect()

    with schema_context(alpha.schema):
        assert Conversation.objects.get(pk=conversation).unread == 1
    run(scenario)
    assert _get(alpha, conversation).unread == 0


def test_staff_socket_forwards_both_event_shapes(alpha: Any, login: Any, monkeypatch: Any) -> None:
    """`{"type":"staff.event","event":{...}}` (the conversation services) and the older
    `{"payload":{...}}` shape both reach the browser as the inner object."""
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)
    owner = login(alpha, alpha.owner_email)

    async def scenario() -> None:
        from channels.layers import get_channel_layer

        ws = await _staff_socket(alpha, owner)
        layer = get_channel_layer()
        await layer.group_send(f"staff.{alpha.schema}", {"type": "staff.event", "event": {"type": "x.one"}})
        await layer.group_send(f"staff.{alpha.schema}", {"type": "staff.event", "payload": {"type": "x.two"}})
        assert await ws.receive_json_from(timeout=3) == {"type": "x.one"}
        assert await ws.receive_json_from(timeout=3) == {"type": "x.two"}
        await ws.disconnect()

    run(scenario)
