"""Emitting: every service that changes something writes its events to the workspace's outbox
inside its own transaction, one INSERT per call, and a rolled-back change leaves none. The
events of each service, in the order a consumer sees them."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from apps.conversations import services as conversations
from apps.conversations.models import Conversation
from apps.events import dispatch
from apps.events import types as events
from apps.events.models import OutboxEvent
from apps.events.services import dispatch_soon, emit

from .conftest import last_id, outbox, types_since


def _visitor_writes(conversation: Conversation, text: str, client_id: str) -> None:
    conversations.message_post(conversation_id=conversation.pk, role="visitor", text=text, client_id=client_id)


def test_emit_is_one_insert_in_the_callers_transaction_with_its_actor(owner: Any) -> None:
    first = events.contact_created(contact_id=1, verified=True, source="staff")
    second = events.lead_created(lead_id=2, contact_id=1, origin="api")
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        emit(first, second, actor=owner)
    writes = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(writes) == 1 and writes[0].startswith('INSERT INTO "events_outboxevent"')
    rows = list(OutboxEvent.objects.order_by("-id")[:2])[::-1]
    assert [(r.type, r.stream, r.state) for r in rows] == [
        ("contact.created", "contact:1", "pending"),
        ("lead.created", "contact:1", "pending"),
    ]
    assert rows[0].actor_user_id == owner.user.pk and rows[0].actor_label == owner.label
    assert rows[0].uuid != rows[1].uuid and rows[0].uuid.version == 7


def test_a_rolled_back_transaction_emits_nothing_and_asks_for_no_dispatch(
    owner: Any, web_inbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    conversation, _ = conversations.conversation_start(inbox=web_inbox)
    before = last_id()
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError), transaction.atomic():
        _visitor_writes(conversation, "Hello?", "r1")
        raise RuntimeError("the caller's transaction fails after the message")
    assert types_since(before) == []
    assert not any(getattr(c, "func", None) is dispatch_soon for c in callbacks)
    with django_capture_on_commit_callbacks() as callbacks:
        _visitor_writes(conversation, "Hello?", "r1")
    assert types_since(before) == ["conversation.created", "message.created"]
    assert [c.args for c in callbacks if getattr(c, "func", None) is dispatch_soon] == [("alpha",)]


def test_events_stay_in_their_workspace(owner: Any, web_inbox: Any, beta: Any, recorded: list[Any]) -> None:
    """alpha's events are written in alpha's schema; beta's dispatcher finds none of them and
    delivers nothing; alpha's delivers them with alpha's slug."""
    conversation, _ = conversations.conversation_start(inbox=web_inbox)
    _visitor_writes(conversation, "Is this private?", "i1")
    mine = {str(u) for u in OutboxEvent.objects.filter(state="pending").values_list("uuid", flat=True)}
    assert mine
    with schema_context(beta.schema):
        theirs = {str(u) for u in OutboxEvent.objects.values_list("uuid", flat=True)}
        assert not mine & theirs
        dispatch.run()
    assert not {d.id for d in recorded} & mine
    assert all(d.event["tenant"] == "beta" for d in recorded)
    recorded.clear()
    dispatch.run()
    assert {d.id for d in recorded} >= mine and {d.event["tenant"] for d in recorded} == {"alpha"}


def test_a_conversation_is_an_event_once_someone_writes_in_it(owner: Any, web_inbox: Any) -> None:
    before = last_id()
    conversation, _ = conversations.conversation_start(inbox=web_inbox)
    conversations.conversation_claim(conversation_id=conversation.pk, fields={"name": "Robin"})
    assert types_since(before) == ["contact.created", "contact.updated"]  # the claim's contact, not the chat
    before = last_id()
    _visitor_writes(conversation, "Hello, my order is late", "v1")
    _visitor_writes(conversation, "Hello, my order is late", "v1")  # a retry: stored once, no event
    _visitor_writes(conversation, "It was order 1042", "v2")
    conversations.message_post(conversation_id=conversation.pk, role="note", text="VIP, be quick", actor=owner)
    created, first, second, note = outbox(id__gt=before)
    assert created == (
        "conversation.created",
        {
            "conversation_id": conversation.pk,
            "inbox_id": web_inbox.pk,
            "channel": "web",
            "contact_id": conversation.contact_id or Conversation.objects.get(pk=conversation.pk).contact_id,
            "owner": "queue",
        },
    )
    assert first[0] == "message.created" and first[1]["role"] == "visitor" and first[1]["seq"] == 1
    assert first[1]["text"] == "Hello, my order is late" and first[1]["client_id"] == "v1"
    assert second[0] == "message.created" and second[1]["seq"] == 2
    assert note == ("note.created", {"conversation_id": conversation.pk, "seq": 3, "author_id": owner.user.pk})
    assert "VIP" not in str(OutboxEvent.objects.filter(type="note.created").values_list("data", flat=True))


def test_ownership_transitions_emit_their_events_in_order(owner: Any, make_member: Any, alpha: Any) -> None:
    from apps.agents.services import agent_create

    agent = agent_create(editor=owner, name="Events agent")
    inbox = conversations.inbox_create(actor=owner, name="Events AI", agent_id=agent.pk)
    member, _ = make_member(alpha, "agent")
    connection.set_tenant(owner.tenant)
    conversation, _ = conversations.conversation_start(inbox=inbox)
    _visitor_writes(conversation, "Hi", "v1")

    def step(action: Any) -> list[str]:
        mark = last_id()
        action()
        return types_since(mark)

    def fresh() -> Conversation:
        return Conversation.objects.get(pk=conversation.pk)

    reply = step(
        lambda: conversations.message_post(conversation_id=conversation.pk, role="agent", text="Hello!", actor=owner)
    )
    assert reply == ["conversation.assigned", "message.created"]
    assert outbox(type="conversation.assigned")[-1][1] == {
        "conversation_id": conversation.pk,
        "assignee_id": owner.user.pk,
        "via": "takeover",
    }
    assert step(lambda: conversations.conversation_hand_back(actor=owner, conversation=fresh())) == [
        "conversation.handed_back",
        "message.created",
    ]
    escalated = step(
        lambda: conversations.conversation_escalate(
            conversation_id=conversation.pk, reason="asked for a person", epoch=None
        )
    )
    assert escalated == ["handoff.requested", "conversation.queued"]
    queued = outbox(type="conversation.queued")[-1][1]
    assert queued["reason"] == "asked for a person" and queued["team_id"] == fresh().team_id
    assert step(lambda: conversations.conversation_assign(actor=owner, conversation=fresh(), user_id=member.pk)) == [
        "conversation.assigned",
        "message.created",
    ]
    assert outbox(type="conversation.assigned")[-1][1]["via"] == "assignment"
    resolved = step(lambda: conversations.conversation_set_status(actor=owner, conversation=fresh(), status="resolved"))
    assert resolved == ["conversation.resolved", "message.created"]
    assert outbox(type="conversation.resolved")[-1][1]["assignee_id"] == member.pk
    reopened = step(lambda: _visitor_writes(conversation, "One more thing", "v2"))
    assert reopened == ["conversation.reopened", "message.created"]
    assert outbox(type="conversation.reopened")[-1][1] == {
        "conversation_id": conversation.pk,
        "status": "open",
        "by": "visitor",
    }
    conversations.conversation_set_status(actor=owner, conversation=fresh(), status="resolved")
    assert step(lambda: conversations.conversation_set_status(actor=owner, conversation=fresh(), status="pending")) == [
        "conversation.reopened"
    ]
    assert step(lambda: conversations.conversation_set_status(actor=owner, conversation=fresh(), status="snoozed")) == [
        "conversation.updated"
    ]
    assert step(lambda: conversations.conversation_set_tags(actor=owner, conversation=fresh(), tags=["Billing"])) == [
        "conversation.updated"
    ]
    assert step(lambda: conversations.conversation_set_tags(actor=owner, conversation=fresh(), tags=["billing"])) == []
    assert step(lambda: conversations.conversation_mark_read(actor=owner, conversation=fresh())) == [
        "conversation.updated"
    ]
    assert step(lambda: conversations.conversation_mark_read(actor=owner, conversation=fresh())) == []
    assert step(
        lambda: conversations.conversation_rate(conversation_id=conversation.pk, rating=4, comment="Quick")
    ) == ["csat.received"]
    assert outbox(type="csat.received")[-1][1] == {"conversation_id": conversation.pk, "rating": 4, "comment": "Quick"}
    # The outbox holds them in the order they happened, on one stream.
    streams = set(OutboxEvent.objects.filter(data__conversation_id=conversation.pk).values_list("stream", flat=True))
    assert streams == {f"conversation:{conversation.pk}"}


def test_a_refused_change_emits_nothing(owner: Any, web_inbox: Any, make_member: Any, alpha: Any) -> None:
    from apps.accounts.models import Role
    from apps.accounts.services import Actor
    from syntera.errors import ApplicationError

    viewer_user, _ = make_member(alpha, "viewer")
    viewer = Actor(tenant=owner.tenant, role=Role.VIEWER, user=viewer_user, label=viewer_user.email)
    connection.set_tenant(owner.tenant)
    conversation, _ = conversations.conversation_start(inbox=web_inbox)
    _visitor_writes(conversation, "Hello", "v1")
    before = last_id()
    for attempt in (
        lambda: conversations.conversation_set_status(actor=viewer, conversation=conversation, status="resolved"),
        lambda: conversations.conversation_set_status(actor=owner, conversation=conversation, status="exploded"),
        lambda: conversations.message_post(conversation_id=conversation.pk, role="visitor", text="   \x00 "),
        lambda: conversations.conversation_rate(conversation_id=conversation.pk, rating=9),
        lambda: conversations.answer_feedback(conversation_id=conversation.pk, seq=1, helpful=True),  # not the AI's
    ):
        with pytest.raises(ApplicationError):
            attempt()
    assert types_since(before) == []


def test_crm_changes_emit_contact_and_lead_events(owner: Any) -> None:
    from apps.crm import services as crm

    before = last_id()
    contact = crm.contact_create(actor=owner, name="Dana Smith", email="dana@example.com")
    crm.contact_update(actor=owner, contact=contact, phone="+441234567890", attributes={"plan": "gold"})
    crm.contact_update(actor=owner, contact=contact, phone="+441234567890")  # no change: no event
    crm.contact_memory_set(actor=owner, contact=contact, key="preference", value="email over phone")
    lead = crm.lead_capture(tenant=owner.tenant, contact=None, email="new@example.com", need="A quote")
    visitor = lead.contact
    merged = crm.contact_merge(actor=owner, source=visitor, target=contact)
    found = outbox(id__gt=before)
    assert [t for t, _ in found] == [
        "contact.created",
        "contact.updated",
        "contact.updated",
        "contact.created",
        "contact.updated",
        "lead.created",
        "contact.updated",
    ]
    assert found[0][1] == {"contact_id": contact.pk, "verified": True, "source": "staff"}
    assert found[1][1]["changed"] == ["attributes", "memory", "phone"]
    assert found[2][1]["changed"] == ["memory"]
    assert found[3][1] == {"contact_id": visitor.pk, "verified": False, "source": "conversation"}
    assert found[5][1] == {"lead_id": lead.pk, "contact_id": visitor.pk, "origin": "ai"}
    assert found[6][1]["contact_id"] == merged.pk and found[6][1]["merged_from"] == visitor.pk
    assert OutboxEvent.objects.get(type="lead.created", data__lead_id=lead.pk).stream == f"contact:{visitor.pk}"


def test_knowledge_ingestion_emits_ready_or_failed(owner: Any, django_capture_on_commit_callbacks: Any) -> None:
    from apps.knowledge import services as knowledge
    from apps.knowledge.models import Source

    with django_capture_on_commit_callbacks(execute=True):
        kb = knowledge.knowledge_base_create(editor=owner, name="Events KB")
    before = last_id()
    with django_capture_on_commit_callbacks(execute=True):
        source = knowledge.source_add_text(editor=owner, kb=kb, title="Hours", text="# Hours\n\nWe open at nine.")
    source.refresh_from_db()
    assert source.status == "ready"
    assert outbox(id__gt=before, type="knowledge.source.ready") == [
        (
            "knowledge.source.ready",
            {"source_id": source.pk, "knowledge_base_id": kb.pk, "run": source.run, "chunk_count": source.chunk_count},
        )
    ]
    broken = Source.objects.create(knowledge_base=kb, type="url", title="Gone", url="http://127.0.0.1:9/", run=1)
    before = last_id()
    assert knowledge.ingest_source(source_id=broken.pk, run=broken.run) == "failed"
    ((kind, data),) = outbox(id__gt=before)
    assert kind == "knowledge.source.failed" and data["source_id"] == broken.pk and data["error"]
    assert knowledge.ingest_source(source_id=broken.pk, run=broken.run + 5) == "superseded"
    assert types_since(before + 1) == []
