"""The one path every message takes, whatever the channel (docs/subsystems/conversations.md).

`message_post` stores a message through the conversation store (which allocates `seq` and
dedups `client_id`), updates the conversation record under its row lock, emits its domain
events in the same transaction (docs/subsystems/events.md), and after commit wakes the
conversation's sockets and, for a visitor message while the AI owns the conversation, queues
the AI reply (after the routing policy had its say on a first message).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from apps.accounts.services import Actor
from apps.events import types as events
from apps.events.services import emit
from syntera.errors import ApplicationError
from syntera.tasks import enqueue_on_commit

from ..models import Conversation
from ..stores import StoredMessage, get_store
from .notify import current_schema, wake
from .ownership import ai_agent_id, route_first_message, status_event, take_over
from .superseding import note_visitor_message
from .transcript import display_name, message_event
from .visitors import conversation_claim


def message_post(
    *,
    conversation_id: int,
    role: str,
    text: str,
    client_id: str | None = None,
    actor: Actor | None = None,
    citations: Sequence[dict[str, Any]] = (),
    audit: dict[str, Any] | None = None,
    locked: Conversation | None = None,
) -> tuple[StoredMessage, bool]:
    """Store one message and update the conversation; (message, created). Staff messages
    (role agent) take the conversation over from the AI; notes are never shown to the visitor.
    A visitor message while the AI owns the conversation queues the AI's reply. `locked`: the
    conversation as the caller holds it, its row locked in the current transaction and read
    after its last change (the AI turn's commit step), instead of reading it again."""
    text = (text or "").replace("\x00", "").strip()
    if not text:
        raise ApplicationError("A message needs text.", code="invalid", status_code=400, fields={"text": ["Empty."]})
    store = get_store()
    with transaction.atomic():
        if locked is not None and locked.pk == conversation_id and role != "visitor":
            conversation = locked
        else:
            query = Conversation.objects.select_for_update(of=("self",))
            if role == "visitor":
                # The inbox and the agents come along (which agent answers, on which queue),
                # unlocked: only the conversation's row is.
                query = query.select_related("inbox__agent", "agent")
            conversation = query.get(pk=conversation_id)
        _check_owner(conversation, role, actor)
        message, created = store.append(
            schema=current_schema(),
            conversation_id=conversation.pk,
            role=role,
            text=text,
            client_id=client_id,
            author_id=actor.user.pk if actor and actor.user else None,
            author_label=display_name(actor),
            citations=citations,
            audit=audit,
        )
        if not created and message.seq <= conversation.last_seq:
            return message, False
        first = conversation.last_message_at is None and role != "note"
        # (A store outside this transaction, MongoDB, may hold a message whose record update
        # was rolled back: a retry with the same client_id completes it.)
        conversation.last_seq = max(conversation.last_seq, message.seq)
        if role != "note":
            conversation.last_message_at = message.created_at
            conversation.last_message_preview = text[:200]
            conversation.last_role = role
        happened: list[events.Event] = []
        if first:
            happened.append(
                events.conversation_created(
                    conversation_id=conversation.pk,
                    inbox_id=conversation.inbox_id,
                    channel=conversation.channel,
                    contact_id=conversation.contact_id,
                    owner=conversation.owner,
                )
            )
        if role == "visitor":
            conversation.unread += 1
            conversation.visitor_turns += 1
            if conversation.status in (Conversation.Status.RESOLVED, Conversation.Status.SNOOZED):
                happened.append(status_event(conversation, Conversation.Status.OPEN, by="visitor"))
                conversation.status = Conversation.Status.OPEN
        if role == "agent":
            if conversation.owner != Conversation.Owner.HUMAN:
                happened.extend(take_over(conversation, actor))
            if conversation.first_response_at is None:
                conversation.first_response_at = message.created_at
        if role == "agent":
            conversation.save()  # a takeover changes the owner, the assignee, the epoch
        else:
            changed = ["last_seq", "updated_at"]
            if role != "note":
                changed += ["last_message_at", "last_message_preview", "last_role"]
            if role == "visitor":
                changed += ["unread", "visitor_turns", "status"]
            conversation.save(update_fields=changed)
        happened.append(message_event(conversation, message))
        emit(*happened, actor=actor, system_label="visitor" if role == "visitor" else role)
        wake(conversation, message.seq)
        if role == "visitor":
            noted = functools.partial(note_visitor_message, current_schema(), conversation.pk, message.seq)
            transaction.on_commit(noted)
        if role == "visitor" and conversation.owner != Conversation.Owner.AI:
            # Waiting for (or talking to) a person, e.g. after the out-of-hours offer of an email
            # follow-up: what the visitor says about themselves still reaches the contact.
            _learn_from_visitor(conversation, text)
        if role == "visitor" and conversation.owner == Conversation.Owner.AI and ai_agent_id(conversation):
            if conversation.visitor_turns == 1 and route_first_message(conversation, text):
                return message, True
            from apps.agents.selectors import queue_for_provider

            from ..tasks import ai_reply

            agent = conversation.agent or conversation.inbox.agent  # as the routing policy left it
            queue = queue_for_provider(agent.provider if agent is not None else "")
            enqueue_on_commit(ai_reply, conversation.pk, message.seq, conversation.epoch, queue=queue)
    return message, True


def _learn_from_visitor(conversation: Conversation, text: str) -> None:
    from apps.agents.memory import extract_facts

    facts = {k: v for k, v in extract_facts(text) if k in ("name", "email", "phone")}
    if facts:
        conversation_claim(conversation_id=conversation.pk, fields=facts)


def _check_owner(conversation: Conversation, role: str, actor: Actor | None) -> None:
    """Only the owner sends non-note messages: a person replying to a conversation another
    person owns is refused (taking it over is an explicit action)."""
    if role != "agent" or conversation.owner != Conversation.Owner.HUMAN:
        return
    user_id = actor.user.pk if actor and actor.user else None
    if conversation.assignee_id is not None and conversation.assignee_id != user_id:
        raise ApplicationError(
            "Another person owns this conversation; take it over first.", code="not_owner", status_code=409
        )
