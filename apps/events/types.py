"""Every domain event type, with its payload schema and its typed constructor
(docs/subsystems/events.md is the catalogue for readers; a test keeps the two equal).

Services build events only through these constructors and write them with
`apps.events.services.emit`, inside the transaction that makes the change. Payloads carry
ids and what changed, not copies of records (a consumer that needs more reads it), except a
message's text, which is the message. Conversation events are ordered by their conversation,
contact and lead events by their contact, knowledge events by their source.
"""

from __future__ import annotations

from typing import Any

from .registry import ID, OPTIONAL_ID, Event, one_of, register, text

CHANNELS = ("web", "api", "email", "sms", "voice")
OWNERS = ("ai", "queue", "human")
STATUSES = ("open", "pending", "resolved", "snoozed")
VISIBLE_ROLES = ("visitor", "ai", "agent", "system")

_CONVERSATION = {"conversation_id": ID}
_CITATION: dict[str, Any] = {
    "type": "object",
    "properties": {"source_id": ID, "title": {"type": "string"}, "url": {"type": "string"}, "chunk_id": ID},
    "required": ["source_id", "title", "url", "chunk_id"],
    "additionalProperties": False,
}

# --- conversations ----------------------------------------------------------------------------

CONVERSATION_CREATED = register(
    "conversation.created",
    description="A conversation got its first message (an opened widget nobody writes in is not one).",
    stream_key="conversation_id",
    **_CONVERSATION,
    inbox_id=ID,
    channel=one_of(*CHANNELS),
    contact_id=OPTIONAL_ID,
    owner=one_of(*OWNERS),
)
CONVERSATION_QUEUED = register(
    "conversation.queued",
    description="The conversation waits in a team's queue for a person.",
    stream_key="conversation_id",
    **_CONVERSATION,
    team_id=OPTIONAL_ID,
    reason=text(300),
    priority={"type": "integer"},
)
CONVERSATION_ASSIGNED = register(
    "conversation.assigned",
    description="A person owns the conversation: they took it over, were assigned, or the queue chose them.",
    stream_key="conversation_id",
    **_CONVERSATION,
    assignee_id=ID,
    via=one_of("takeover", "assignment", "routing"),
)
CONVERSATION_HANDED_BACK = register(
    "conversation.handed_back",
    description="Staff handed the conversation back to its AI agent.",
    stream_key="conversation_id",
    **_CONVERSATION,
    agent_id=OPTIONAL_ID,
)
CONVERSATION_RESOLVED = register(
    "conversation.resolved",
    description="Staff resolved the conversation.",
    stream_key="conversation_id",
    **_CONVERSATION,
    assignee_id=OPTIONAL_ID,
)
CONVERSATION_REOPENED = register(
    "conversation.reopened",
    description="A resolved conversation is open again: the visitor wrote, or staff changed its status.",
    stream_key="conversation_id",
    **_CONVERSATION,
    status=one_of("open", "pending", "snoozed"),
    by=one_of("visitor", "staff"),
)
CONVERSATION_UPDATED = register(
    "conversation.updated",
    description="Something else staff see on the conversation changed (tags, read, contact, status, or where "
    "routing sent it: its intent, its AI agent, its team).",
    stream_key="conversation_id",
    **_CONVERSATION,
    changed={
        "type": "array",
        "minItems": 1,
        "uniqueItems": True,
        "items": one_of("status", "tags", "unread", "contact", "claims", "intent", "agent", "team"),
    },
    status=one_of(*STATUSES),
)
MESSAGE_CREATED = register(
    "message.created",
    description="A message the visitor sees was stored: the visitor's, the AI's, a person's, or a system line.",
    stream_key="conversation_id",
    **_CONVERSATION,
    seq=ID,
    role=one_of(*VISIBLE_ROLES),
    text=text(100_000, min_length=1),
    client_id={"type": ["string", "null"], "maxLength": 64},
    author_id=OPTIONAL_ID,
    author=text(254),
    citations={"type": "array", "items": _CITATION},
)
NOTE_CREATED = register(
    "note.created",
    description="Staff (or the AI's handoff) added a private note; its text is never in an event.",
    stream_key="conversation_id",
    **_CONVERSATION,
    seq=ID,
    author_id=OPTIONAL_ID,
)
MESSAGE_FEEDBACK = register(
    "message.feedback",
    description="The visitor said whether an AI answer helped (a later verdict replaces the earlier one).",
    stream_key="conversation_id",
    **_CONVERSATION,
    seq=ID,
    helpful={"type": "boolean"},
    agent_id=OPTIONAL_ID,
    channel=one_of(*CHANNELS),
    replaces={
        "oneOf": [
            {"type": "null"},
            {
                "type": "object",
                "properties": {"helpful": {"type": "boolean"}, "day": {"type": "string", "format": "date"}},
                "required": ["helpful", "day"],
                "additionalProperties": False,
            },
        ]
    },
)
HANDOFF_REQUESTED = register(
    "handoff.requested",
    description="The AI, the visitor or a routing rule asked for a person.",
    stream_key="conversation_id",
    **_CONVERSATION,
    reason=text(300),
)
AI_ABSTAINED = register(
    "ai.abstained",
    description="The AI agent did not answer the visitor's message from its knowledge.",
    stream_key="conversation_id",
    **_CONVERSATION,
    agent_id=OPTIONAL_ID,
    reply_to=ID,
    reason=text(300),
)
CSAT_RECEIVED = register(
    "csat.received",
    description="The visitor rated the conversation.",
    stream_key="conversation_id",
    **_CONVERSATION,
    rating={"type": "integer", "minimum": 1, "maximum": 5},
    comment=text(2000),
)
SLA_BREACHED = register(
    "sla.breached",
    description="A waiting conversation passed its team's first-response or resolution target.",
    stream_key="conversation_id",
    **_CONVERSATION,
    kind=one_of("first_response", "resolution"),
    team_id=OPTIONAL_ID,
    due_at={"type": "string", "format": "date-time"},
)

# --- CRM --------------------------------------------------------------------------------------

CONTACT_FIELDS = ("name", "email", "phone", "company", "attributes", "external_id", "verified", "memory")
CONTACT_CREATED = register(
    "contact.created",
    description="A contact was created: by staff or an integrator, a signed identity, or a visitor's claims.",
    stream_key="contact_id",
    contact_id=ID,
    verified={"type": "boolean"},
    source=one_of("staff", "verified", "conversation"),
)
CONTACT_UPDATED = register(
    "contact.updated",
    description="A contact's identity, attributes, verification or memory changed, or another contact was merged in.",
    stream_key="contact_id",
    contact_id=ID,
    changed={"type": "array", "minItems": 1, "uniqueItems": True, "items": one_of(*CONTACT_FIELDS)},
    verified={"type": "boolean"},
    merged_from=OPTIONAL_ID,
)
LEAD_CREATED = register(
    "lead.created",
    description="A lead was captured for a contact.",
    stream_key="contact_id",
    lead_id=ID,
    contact_id=ID,
    origin=text(40),
)

# --- knowledge --------------------------------------------------------------------------------

SOURCE_READY = register(
    "knowledge.source.ready",
    description="An ingestion of a knowledge source finished: its chunks answer questions.",
    stream_key="source_id",
    source_id=ID,
    knowledge_base_id=ID,
    run=ID,
    chunk_count={"type": "integer", "minimum": 0},
)
SOURCE_FAILED = register(
    "knowledge.source.failed",
    description="An ingestion of a knowledge source failed; `error` says why in plain words.",
    stream_key="source_id",
    source_id=ID,
    knowledge_base_id=ID,
    run=ID,
    error=text(2000),
)


# --- constructors -----------------------------------------------------------------------------


def conversation_created(
    *, conversation_id: int, inbox_id: int, channel: str, contact_id: int | None, owner: str
) -> Event:
    return CONVERSATION_CREATED.make(
        conversation_id=conversation_id, inbox_id=inbox_id, channel=channel, contact_id=contact_id, owner=owner
    )


def conversation_queued(*, conversation_id: int, team_id: int | None, reason: str, priority: int) -> Event:
    return CONVERSATION_QUEUED.make(
        conversation_id=conversation_id, team_id=team_id, reason=reason[:300], priority=priority
    )


def conversation_assigned(*, conversation_id: int, assignee_id: int, via: str) -> Event:
    return CONVERSATION_ASSIGNED.make(conversation_id=conversation_id, assignee_id=assignee_id, via=via)


def conversation_handed_back(*, conversation_id: int, agent_id: int | None) -> Event:
    return CONVERSATION_HANDED_BACK.make(conversation_id=conversation_id, agent_id=agent_id)


def conversation_resolved(*, conversation_id: int, assignee_id: int | None) -> Event:
    return CONVERSATION_RESOLVED.make(conversation_id=conversation_id, assignee_id=assignee_id)


def conversation_reopened(*, conversation_id: int, status: str, by: str) -> Event:
    return CONVERSATION_REOPENED.make(conversation_id=conversation_id, status=status, by=by)


def conversation_updated(*, conversation_id: int, changed: list[str], status: str) -> Event:
    return CONVERSATION_UPDATED.make(conversation_id=conversation_id, changed=sorted(set(changed)), status=status)


def message_created(
    *,
    conversation_id: int,
    seq: int,
    role: str,
    text: str,
    client_id: str | None,
    author_id: int | None,
    author: str,
    citations: list[dict[str, Any]],
) -> Event:
    return MESSAGE_CREATED.make(
        conversation_id=conversation_id,
        seq=seq,
        role=role,
        text=text,
        client_id=client_id,
        author_id=author_id,
        author=author[:254],
        citations=citations,
    )


def note_created(*, conversation_id: int, seq: int, author_id: int | None) -> Event:
    return NOTE_CREATED.make(conversation_id=conversation_id, seq=seq, author_id=author_id)


def message_feedback(
    *,
    conversation_id: int,
    seq: int,
    helpful: bool,
    agent_id: int | None,
    channel: str,
    replaces: tuple[bool, str] | None,
) -> Event:
    """`replaces`: the earlier verdict this one replaces (helpful, the ISO day it was given)."""
    return MESSAGE_FEEDBACK.make(
        conversation_id=conversation_id,
        seq=seq,
        helpful=helpful,
        agent_id=agent_id,
        channel=channel,
        replaces=None if replaces is None else {"helpful": replaces[0], "day": replaces[1]},
    )


def handoff_requested(*, conversation_id: int, reason: str) -> Event:
    return HANDOFF_REQUESTED.make(conversation_id=conversation_id, reason=reason[:300])


def ai_abstained(*, conversation_id: int, agent_id: int | None, reply_to: int, reason: str) -> Event:
    return AI_ABSTAINED.make(conversation_id=conversation_id, agent_id=agent_id, reply_to=reply_to, reason=reason[:300])


def csat_received(*, conversation_id: int, rating: int, comment: str) -> Event:
    return CSAT_RECEIVED.make(conversation_id=conversation_id, rating=rating, comment=comment[:2000])


def sla_breached(*, conversation_id: int, kind: str, team_id: int | None, due_at: str) -> Event:
    return SLA_BREACHED.make(conversation_id=conversation_id, kind=kind, team_id=team_id, due_at=due_at)


def contact_created(*, contact_id: int, verified: bool, source: str) -> Event:
    return CONTACT_CREATED.make(contact_id=contact_id, verified=verified, source=source)


def contact_updated(*, contact_id: int, changed: list[str], verified: bool, merged_from: int | None = None) -> Event:
    return CONTACT_UPDATED.make(
        contact_id=contact_id, changed=sorted(set(changed)), verified=verified, merged_from=merged_from
    )


def lead_created(*, lead_id: int, contact_id: int, origin: str) -> Event:
    return LEAD_CREATED.make(lead_id=lead_id, contact_id=contact_id, origin=origin[:40])


def knowledge_source_ready(*, source_id: int, knowledge_base_id: int, run: int, chunk_count: int) -> Event:
    return SOURCE_READY.make(source_id=source_id, knowledge_base_id=knowledge_base_id, run=run, chunk_count=chunk_count)


def knowledge_source_failed(*, source_id: int, knowledge_base_id: int, run: int, error: str) -> Event:
    return SOURCE_FAILED.make(source_id=source_id, knowledge_base_id=knowledge_base_id, run=run, error=error[:2000])
