"""The registry is the contract: the types outside clients subscribe to by name, each with a
JSON Schema that docs/subsystems/events.md shows as is, and every emitted event is checked
against both (EVENTS_VALIDATE is on for the whole suite)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from jsonschema import Draft202012Validator

from apps.events import types
from apps.events.dispatch import subscribers
from apps.events.models import OutboxEvent
from apps.events.registry import ENVELOPE_SCHEMA, REGISTRY, Event, register
from apps.events.services import emit
from apps.events.validation import InvalidEvent, documented_types, envelope_errors, schema_errors

# Named so in the brief's contract: outside clients subscribe to these; none may be renamed.
CONTRACT = [
    "conversation.created",
    "conversation.queued",
    "conversation.assigned",
    "conversation.handed_back",
    "conversation.resolved",
    "conversation.reopened",
    "message.created",
    "handoff.requested",
    "ai.abstained",
    "csat.received",
    "sla.breached",
    "contact.created",
    "contact.updated",
    "lead.created",
    "knowledge.source.ready",
    "knowledge.source.failed",
]
CATALOGUE = Path(django_settings.BASE_DIR) / "docs" / "subsystems" / "events.md"


def _sections() -> dict[str, str]:
    text = CATALOGUE.read_text(encoding="utf-8")
    parts = re.split(r"^### `([a-z_.]+)`\n", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_registry_holds_every_contract_type_by_its_exact_name() -> None:
    assert set(CONTRACT) <= set(REGISTRY)
    for name in REGISTRY:
        assert re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", name), name


def test_every_schema_is_valid_closed_and_requires_its_stream_key() -> None:
    Draft202012Validator.check_schema(ENVELOPE_SCHEMA)
    for name, event_type in REGISTRY.items():
        schema = event_type.schema
        Draft202012Validator.check_schema(schema)
        assert schema["additionalProperties"] is False and schema["title"] == name
        assert set(schema["required"]) == set(schema["properties"])
        assert event_type.stream_key in schema["required"]


def test_the_catalogue_page_documents_every_type_with_its_schema_and_its_consumers() -> None:
    """docs/subsystems/events.md: one section per type (no more, no fewer), its JSON block is
    the registry's schema, and "Consumed by" names exactly the subscribers registered for it."""
    sections = _sections()
    assert list(sections) == list(REGISTRY)
    assert documented_types() == set(REGISTRY)
    registered = subscribers()
    names = {s.name for s in registered}
    for name, body in sections.items():
        (block,) = re.findall(r"```json\n(.*?)\n```", body, flags=re.S)
        assert json.loads(block) == REGISTRY[name].schema, f"{name}: the page's schema differs from the registry's"
        assert "- Emitted by: " in body, name
        (consumed,) = re.findall(r"^- Consumed by: (.*)$", body, flags=re.M)
        mentioned = set(re.findall(r"`([a-z_]+)`", consumed)) & names
        assert mentioned == {s.name for s in registered if name in s.types}, name


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"conversation_id": "7", "rating": 5, "comment": ""}, "conversation_id"),  # a string id
        ({"conversation_id": 7, "rating": 6, "comment": ""}, "rating"),  # out of range
        ({"conversation_id": 7, "rating": 5}, "comment"),  # missing
        ({"conversation_id": 7, "rating": 5, "comment": "", "email": "x@y.example"}, "email"),  # not in the schema
        ({"conversation_id": 7, "rating": 5, "comment": "x" * 2001}, "comment"),  # oversized
        ({"conversation_id": 0, "rating": 5, "comment": ""}, "conversation_id"),  # not an id
        (["conversation_id", 7], "payload"),  # not an object
    ],
)
def test_a_payload_that_does_not_match_its_schema_fails_the_code_that_emits_it(owner: Any, data: Any, why: str) -> None:
    before = OutboxEvent.objects.count()
    with pytest.raises(InvalidEvent) as raised:
        emit(Event(type="csat.received", data=data, stream="conversation:7"))
    assert why in str(raised.value) or why == "payload"
    assert schema_errors("csat.received", data)
    assert OutboxEvent.objects.count() == before


def test_a_type_the_catalogue_does_not_list_fails_when_emitted(owner: Any) -> None:
    undocumented = register(
        "conversation.teleported", description="Not in the catalogue.", stream_key="conversation_id", conversation_id={}
    )
    try:
        with pytest.raises(InvalidEvent, match="does not list it"):
            emit(undocumented.make(conversation_id=7))
    finally:
        del REGISTRY["conversation.teleported"]


def test_an_event_of_no_registered_type_is_refused_even_when_checks_are_off(owner: Any, settings: Any) -> None:
    settings.EVENTS_VALIDATE = False
    before = OutboxEvent.objects.count()
    with pytest.raises(ValueError, match="unknown event type"):
        emit(Event(type="conversation.exploded", data={"conversation_id": 7}, stream="conversation:7"))
    assert OutboxEvent.objects.count() == before


def test_the_constructors_build_valid_payloads_and_order_by_their_entity() -> None:
    built = [
        types.conversation_created(conversation_id=1, inbox_id=2, channel="web", contact_id=None, owner="ai"),
        types.message_created(
            conversation_id=1,
            seq=3,
            role="ai",
            text="Within 30 days.",
            client_id="ai-1-2",
            author_id=None,
            author="",
            citations=[{"source_id": 4, "title": "Returns", "url": "", "chunk_id": 9}],
        ),
        types.message_feedback(conversation_id=1, seq=3, helpful=False, agent_id=5, channel="web", replaces=None),
        types.ai_abstained(conversation_id=1, agent_id=5, reply_to=2, reason="no knowledge"),
        types.contact_updated(contact_id=8, changed=["email", "memory", "email"], verified=False),
        types.lead_created(lead_id=3, contact_id=8, origin="ai"),
        types.knowledge_source_failed(source_id=6, knowledge_base_id=2, run=1, error="x" * 5000),
    ]
    for event in built:
        assert schema_errors(event.type, event.data) == [], event
    assert [e.stream for e in built] == [
        "conversation:1",
        "conversation:1",
        "conversation:1",
        "conversation:1",
        "contact:8",
        "contact:8",
        "source:6",
    ]
    assert built[4].data["changed"] == ["email", "memory"]
    assert len(built[6].data["error"]) == 2000


def test_every_delivered_envelope_matches_the_envelope_schema(owner: Any, web_inbox: Any, recorded: list[Any]) -> None:
    from apps.conversations import services as conversations
    from apps.events import dispatch

    conversation, _ = conversations.conversation_start(inbox=web_inbox)
    with transaction.atomic():
        conversations.message_post(conversation_id=conversation.pk, role="visitor", text="Hello", client_id="e1")
    dispatch.run()
    assert [d.type for d in recorded] == ["conversation.created", "message.created"]
    for delivery in recorded:
        assert envelope_errors(delivery.event) == []
        assert delivery.event["tenant"] == "alpha"
        assert delivery.event["id"][14] == "7"  # a version 7 UUID
