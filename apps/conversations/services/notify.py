"""What every conversation write shares: the socket group, the after-commit wake-ups and frames
to the visitor's sockets, `conversation.updated` for staff, and the permission check.

The channel layer only wakes readers: every socket reads what it sends from the store, so a
dropped wake-up delays, never loses. Staff pages, the audit trail and the agents' statistics
hear of changes from the domain events (docs/subsystems/events.md), not from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from typing import Any

from django.db import transaction

from apps.accounts.services import Actor
from apps.events import types as events
from apps.events.services import emit
from apps.tenants.db import connection
from syntera.errors import ApplicationError
from syntera.realtime import publish

from ..models import Conversation

VISIBLE_TO_VISITOR = ("visitor", "ai", "agent", "system")


def conversation_group(schema: str, conversation_id: int) -> str:
    return f"conv.{schema}.{conversation_id}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def current_schema() -> str:
    return str(connection.schema_name)


def require_role(actor: Actor, role: str) -> None:
    if not actor.has_role(role):
        raise ApplicationError("Your role cannot do this.", code="permission_denied", status_code=403)


def summary_row(conversation: Conversation) -> dict[str, Any]:
    """What the staff inbox shows for a conversation (sent with every update)."""
    return {
        "id": conversation.pk,
        "inbox": conversation.inbox_id,
        "channel": conversation.channel,
        "status": conversation.status,
        "owner": conversation.owner,
        "assignee": conversation.assignee_id,
        "unread": conversation.unread,
        "last_seq": conversation.last_seq,
        "last_message_at": conversation.last_message_at.isoformat() if conversation.last_message_at else None,
        "preview": conversation.last_message_preview,
        "tags": list(conversation.tags),
        "contact": conversation.contact_id,
    }


_held = threading.local()


@contextlib.contextmanager
def wakeups_held() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Collect the (group, event) pairs that `_to_sockets` sends after a commit made inside the
    block, instead of publishing them from this thread, for an async caller to send itself.
    `publish` from a database thread waits for the event loop, holding the thread and its
    connection meanwhile (the widget consumer's `_post`: docs/subsystems/realtime.md). A
    commit after the block (an enclosing transaction) publishes as usual."""
    held: list[tuple[str, dict[str, Any]]] = []
    _held.events = held
    try:
        yield held
    finally:
        _held.events = None


def _publish(group: str, event: dict[str, Any]) -> None:
    held = getattr(_held, "events", None)
    if held is None:
        publish(group, event)
    else:
        held.append((group, event))


def _to_sockets(conversation: Conversation, message: dict[str, Any]) -> None:
    """After commit: a message for the conversation's own sockets (the visitor's widget): a
    `conv.wake` (they read the new messages from the store) or a `conv.frame` (handoff,
    status). Never through the outbox: the visitor's path stays direct."""
    group = conversation_group(current_schema(), conversation.pk)
    transaction.on_commit(lambda: _publish(group, message))


def wake(conversation: Conversation, seq: int) -> None:
    _to_sockets(conversation, {"type": "conv.wake", "seq": seq})


def send_frame(conversation: Conversation, frame: dict[str, Any]) -> None:
    _to_sockets(conversation, {"type": "conv.frame", "frame": frame})


def emit_updated(conversation: Conversation, *changed: str, actor: Actor | None = None) -> None:
    """`conversation.updated` for a change staff see; none for a conversation nobody wrote in
    yet, which is no conversation for anyone (docs/adr/0017-anonymous-visitor-limits.md)."""
    if conversation.last_seq > 0:
        emit(
            events.conversation_updated(
                conversation_id=conversation.pk, changed=list(changed), status=conversation.status
            ),
            actor=actor,
        )


def notify_frame(conversation_id: int, frame: dict[str, Any]) -> None:
    """Send an ephemeral frame (delta, typing, handoff) to the conversation's sockets now."""
    publish(conversation_group(current_schema(), conversation_id), {"type": "conv.frame", "frame": frame})
