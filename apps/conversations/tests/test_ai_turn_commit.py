"""An AI turn commits all or nothing (docs/adr/0019-ai-turn-commit.md).

The runtime computes the turn without writing; `ai_reply` stores the reply and every side
effect the turn wants (a lead, contact memory, the visitor's claims, a knowledge gap, usage,
the agent's statistics, their audit records, their domain events) in the one transaction that checks the reply
still applies. Each test runs a turn that wants all of these written, disturbs it after the
turn was computed and before it is stored (a person takes over, the conversation is
resolved, the visitor writes again, the provider breaks off), and compares every table a
turn can write before and after. The undisturbed turn shows that the same turn does write
them all, so an unchanged table means the discard kept it clean.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from apps.agents import runtime
from apps.agents.models import AgentDailyStats, KnowledgeGap, UsageCounter
from apps.agents.tests.conftest import on_standin
from apps.audit.models import AuditEvent
from apps.conversations import services
from apps.conversations.models import Conversation
from apps.conversations.stores import get_store
from apps.crm.models import Contact, Lead
from apps.events.models import OutboxEvent
from tests.standins.openai_server import OpenAIStandIn

# The domain events a turn can emit (a disturbing act emits its own: an assignment, a status,
# the visitor's or the system's messages).
TURN_EVENTS = {
    "ai.abstained",
    "lead.created",
    "contact.created",
    "contact.updated",
    "conversation.updated",
    "handoff.requested",
}

# Unanswerable (a knowledge gap), with an address (a lead) and a name (memory, claims).
OFFLINE_ASK = "Do you ship to Antarctica? I'm Ola Nordmann, email ola@example.no"
OPENAI_ASK = "I'm Ola Nordmann, ola@example.no, I want 200 jackets. How long does standard shipping take?"


def written(conversation_id: int) -> dict[str, Any]:
    """Every row a turn can write: CRM, knowledge gaps, usage, the agent's statistics, the
    audit trail (not the disturbing act's own `conversations.*` records), the domain events
    a turn emits, the conversation's AI state and the AI messages of its transcript."""
    conversation = Conversation.objects.get(pk=conversation_id)
    messages = get_store().after(schema=connection.schema_name, conversation_id=conversation_id, after_seq=0)
    return {
        "contacts": list(
            Contact.objects.order_by("pk").values_list("pk", "name", "email", "phone", "company", "memory", "verified")
        ),
        "leads": list(Lead.objects.order_by("pk").values_list("pk", "contact_id", "need", "origin")),
        "gaps": list(KnowledgeGap.objects.order_by("pk").values_list("question", "count", "unknown_words")),
        "usage": list(UsageCounter.objects.values_list("day", "requests", "prompt_tokens", "completion_tokens")),
        "stats": list(
            AgentDailyStats.objects.order_by("pk").values_list(
                "channel", "turns", "answered", "abstained", "escalated", "unanswered", "prompt_tokens"
            )
        ),
        "audit": list(
            AuditEvent.objects.exclude(action__startswith="conversations.")
            .order_by("pk")
            .values_list("action", "target_type", "target_id", "data")
        ),
        "events": [
            (row.type, row.data)
            for row in OutboxEvent.objects.order_by("id")
            if row.type in TURN_EVENTS or (row.type == "message.created" and row.data["role"] == "ai")
        ],
        "conversation": (
            conversation.summary,
            conversation.attributes,
            conversation.abstentions,
            conversation.claims,
            conversation.contact_id,
        ),
        "ai_messages": [(m.seq, m.text) for m in messages if m.role == "ai"],
    }


def _take_over(owner: Any, conversation_id: int) -> None:
    services.conversation_take_over(actor=owner, conversation=Conversation.objects.get(pk=conversation_id))


def _resolve(owner: Any, conversation_id: int) -> None:
    conversation = Conversation.objects.get(pk=conversation_id)
    services.conversation_set_status(actor=owner, conversation=conversation, status="resolved")


def _write_again(owner: Any, conversation_id: int) -> None:
    services.message_post(conversation_id=conversation_id, role="visitor", text="Also, gloves?", client_id="v2")


DISTURBANCES: dict[str, tuple[Callable[[Any, int], None], str]] = {
    "a person took over": (_take_over, "discarded: ownership changed"),
    "the conversation was resolved": (_resolve, "discarded: ownership changed"),
    "a newer visitor message": (_write_again, "discarded: superseded"),
}


def disturb_after_compute(monkeypatch: Any, act: Callable[[], None]) -> None:
    """Run `act` once the turn is computed, before `ai_reply` stores it: the window a
    takeover, a resolve or the visitor's next message can fall into."""
    real = runtime.run_turn

    def turn(**kwargs: Any) -> Iterator[Any]:
        for event in real(**kwargs):
            if isinstance(event, runtime.TurnResult):
                act()
            yield event

    monkeypatch.setattr(runtime, "run_turn", turn)


def visit(inbox: Any, text: str, contact: Contact | None = None) -> Conversation:
    conversation, _ = services.conversation_start(inbox=inbox)
    if contact is not None:
        Conversation.objects.filter(pk=conversation.pk).update(contact=contact)
    services.message_post(conversation_id=conversation.pk, role="visitor", text=text, client_id="v1")
    return Conversation.objects.get(pk=conversation.pk)


def reply(conversation: Conversation) -> str:
    return services.ai_reply(conversation_id=conversation.pk, trigger_seq=1, epoch=conversation.epoch)


def _known_contact() -> Contact:
    """A visitor's own contact from an earlier conversation: what they say now changes its memory."""
    return Contact.objects.create(verified=False, name="Ola", email="ola@example.no")


# --- the offline responder ----------------------------------------------------------------------


@pytest.mark.parametrize("with_contact", [False, True], ids=["new visitor", "known contact"])
def test_a_stored_offline_turn_writes_every_side_effect(inbox: Any, with_contact: bool) -> None:
    """The control for the discard tests: the same turn, undisturbed, writes them all."""
    conversation = visit(inbox, OFFLINE_ASK, _known_contact() if with_contact else None)
    before = written(conversation.pk)
    assert reply(conversation) == "replied: abstained"
    after = written(conversation.pk)
    changed = {table for table in after if after[table] != before[table]}
    expected = {"contacts", "gaps", "usage", "stats", "audit", "events", "conversation", "ai_messages"}
    assert changed == expected | (set() if with_contact else {"leads"})
    emitted = [event for event in after["events"] if event not in before["events"]]
    assert (
        "ai.abstained",
        {
            "conversation_id": conversation.pk,
            "agent_id": inbox.agent_id,
            "reply_to": 1,
            "reason": runtime.BELOW_THRESHOLD,
        },
    ) in emitted
    assert [t for t, _ in emitted if t == "message.created"] == ["message.created"]
    actions = {row[0] for row in after["audit"][len(before["audit"]) :]}
    assert "crm.memory_learned" in actions
    if not with_contact:
        # Audited from these events by the audit trail's subscriber once they are delivered.
        assert {"contact.created", "lead.created"} <= {t for t, _ in emitted}
        # The lead's contact is now the conversation's: staff and integrations are told.
        assert any(t == "conversation.updated" and "contact" in data["changed"] for t, data in emitted)
        lead = Lead.objects.get()
        assert lead.contact.email == "ola@example.no" and lead.contact.name == "Ola Nordmann"
    stored = Conversation.objects.get(pk=conversation.pk)
    assert stored.claims["email"] == "ola@example.no" and stored.contact_id is not None
    assert len(after["ai_messages"]) == 1
    ai_audit = get_store().after(schema=connection.schema_name, conversation_id=conversation.pk, after_seq=1)[0].audit
    # What the turn taught the contact, on the message (a new visitor's lead already holds it).
    assert ai_audit["memory"]["learned"] == (["email", "name"] if with_contact else [])
    assert KnowledgeGap.objects.get().question == OFFLINE_ASK


@pytest.mark.parametrize("with_contact", [False, True], ids=["new visitor", "known contact"])
@pytest.mark.parametrize("disturbance", list(DISTURBANCES))
def test_a_discarded_offline_turn_leaves_nothing_behind(
    inbox: Any, owner: Any, monkeypatch: Any, disturbance: str, with_contact: bool
) -> None:
    act, outcome = DISTURBANCES[disturbance]
    conversation = visit(inbox, OFFLINE_ASK, _known_contact() if with_contact else None)
    before = written(conversation.pk)
    disturb_after_compute(monkeypatch, lambda: act(owner, conversation.pk))
    assert reply(conversation) == outcome
    assert written(conversation.pk) == before


# --- the OpenAI provider (through the stand-in) ----------------------------------------------------


@pytest.fixture
def openai_inbox(inbox: Any, settings: Any, standin: OpenAIStandIn) -> Any:
    on_standin(inbox.agent, settings, standin)
    return inbox


def _model_takes_a_lead(standin: OpenAIStandIn, answer: dict[str, Any] | None = None) -> None:
    """A model that records the visitor as a lead and notes their plan, then answers."""
    lead = {"name": "Ola Nordmann", "email": "ola@example.no", "need": "200 jackets"}
    standin.reply(tool_calls=[("capture_lead", lead), ("set_attributes", {"attributes": {"plan": "bulk"}})])
    standin.reply(**(answer or {"text": "Thanks Ola. Standard shipping takes 3 to 5 business days [1]."}))


def test_a_stored_openai_turn_writes_the_lead_the_model_took(openai_inbox: Any, standin: OpenAIStandIn) -> None:
    conversation = visit(openai_inbox, OPENAI_ASK)
    before = written(conversation.pk)
    _model_takes_a_lead(standin)
    assert reply(conversation) == "replied: answered"
    after = written(conversation.pk)
    changed = {table for table in after if after[table] != before[table]}
    assert changed == {"contacts", "leads", "usage", "stats", "audit", "events", "conversation", "ai_messages"}
    emitted = {t for t, _ in after["events"]}
    assert {"message.created", "lead.created", "contact.created"} <= emitted and "ai.abstained" not in emitted
    lead = Lead.objects.select_related("contact").get()
    assert (lead.need, lead.contact.email, lead.contact.verified) == ("200 jackets", "ola@example.no", False)
    stored = Conversation.objects.get(pk=conversation.pk)
    assert stored.contact_id == lead.contact_id and stored.attributes == {"plan": "bulk"}
    second = standin.chat_requests[1]["messages"][-2]["content"]
    assert json.loads(second)["status"] == "captured"  # what the model was told
    (usage,) = after["usage"]
    assert usage[1] == 1 and usage[2] > 0  # one turn, the tokens of both rounds


@pytest.mark.parametrize("disturbance", list(DISTURBANCES))
def test_a_discarded_openai_turn_leaves_no_lead_behind(
    openai_inbox: Any, owner: Any, standin: OpenAIStandIn, monkeypatch: Any, disturbance: str
) -> None:
    act, outcome = DISTURBANCES[disturbance]
    conversation = visit(openai_inbox, OPENAI_ASK)
    before = written(conversation.pk)
    _model_takes_a_lead(standin)
    disturb_after_compute(monkeypatch, lambda: act(owner, conversation.pk))
    assert reply(conversation) == outcome
    assert len(standin.chat_requests) == 2  # the model did call capture_lead and answer
    assert written(conversation.pk) == before


def test_a_provider_failing_midway_leaves_only_the_honest_abstention(openai_inbox: Any, standin: OpenAIStandIn) -> None:
    """The model took a lead, then its answer broke off: the visitor is told the AI could not
    answer, and nothing the failed turn wanted is kept (no lead, contact, memory, claims,
    attributes, gap, usage or statistics)."""
    conversation = visit(openai_inbox, OPENAI_ASK)
    before = written(conversation.pk)
    _model_takes_a_lead(standin, {"text": "Thanks Ola. Standard shipping takes 3 to 5", "break_after": 4})
    assert reply(conversation) == "replied: abstained"
    after = written(conversation.pk)
    ((_seq, text),) = after.pop("ai_messages")
    assert "can't answer right now" in text and "member of the team?" in text  # told plainly, offered a person
    emitted = [t for t, _ in after.pop("events")[len(before.pop("events")) :]]
    assert emitted == ["message.created", "ai.abstained"]  # no lead.created, no contact.created
    summary, attributes, abstentions, claims, contact_id = before.pop("conversation")
    assert after.pop("conversation") == (summary, attributes, abstentions + 1, claims, contact_id)
    before.pop("ai_messages")
    assert after == before
    stored = get_store().after(schema=connection.schema_name, conversation_id=conversation.pk, after_seq=1)
    assert stored[0].audit["reason"] == "the AI provider failed" and stored[0].audit["provider_error"]


def test_a_reply_superseded_while_it_streams_stops_the_model(
    openai_inbox: Any, standin: OpenAIStandIn, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The visitor writes again while the answer streams: the stream is cut within about
    UNWANTED_CHECK_SECONDS instead of running to its end, and nothing of the turn is stored."""
    from apps.conversations import tasks

    monkeypatch.setattr(tasks.ai_reply, "apply_async", lambda *args, **kwargs: None)  # the newer turn
    conversation = visit(openai_inbox, OPENAI_ASK)
    before = written(conversation.pk)
    words = " ".join(f"word{i}" for i in range(80))
    standin.reply(f"Standard shipping takes 3 to 5 business days [1]. {words}", pace=0.05)  # about 4 s
    sent = {"deltas": 0}
    real_notify = services.ai.notify_frame

    def notify(conversation_id: int, frame: dict[str, Any]) -> None:
        real_notify(conversation_id, frame)
        if frame["type"] == "delta":
            sent["deltas"] += 1
            if sent["deltas"] == 3:
                with django_capture_on_commit_callbacks(execute=True):  # as it commits in production
                    services.message_post(
                        conversation_id=conversation_id, role="visitor", text="hello?", client_id="v2"
                    )

    monkeypatch.setattr(services.ai, "notify_frame", notify)
    started = time.monotonic()
    outcome = reply(conversation)
    assert outcome == "discarded: superseded"
    assert time.monotonic() - started < 2.5
    assert sent["deltas"] < 40
    after = written(conversation.pk)
    assert after["ai_messages"] == before["ai_messages"] == [] and after["usage"] == before["usage"]


@pytest.mark.parametrize("role", ["visitor", "ai", "note"])
def test_a_message_writes_only_the_conversations_message_columns(inbox: Any, role: str) -> None:
    """Storing a message updates the columns a message changes (its seq, the preview, the
    counters), not the whole conversation row with its JSON attributes and claims: the cost of
    every visitor message and every AI reply. What it changes reads back right."""
    from django.test.utils import CaptureQueriesContext

    conversation = visit(inbox, "Hello there")
    with CaptureQueriesContext(connection) as queries:
        services.message_post(conversation_id=conversation.pk, role=role, text="Where is my parcel?")
    (update,) = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "conversations_conv')]
    columns = set(update.split(" SET ", 1)[1].split(" WHERE ", 1)[0].replace('"', "").split(", "))
    assert not any(c.startswith(("attributes", "claims", "summary", "inbox_id", "owner")) for c in columns), columns
    after = Conversation.objects.get(pk=conversation.pk)
    assert after.last_seq == 2 and after.updated_at > conversation.updated_at
    if role != "note":
        assert (after.last_role, after.last_message_preview) == (role, "Where is my parcel?")
    assert after.visitor_turns == (2 if role == "visitor" else 1)
