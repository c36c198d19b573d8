"""The staff inbox's subscriber to domain events: turns them into the `staff.event` frames the
dashboard's staff socket forwards (docs/subsystems/realtime.md, docs/subsystems/events.md).

The frames keep their shapes: `{"type": <frame type>, "conversation": {summary row}}` read
fresh from the conversation when the event is delivered, `sla.breached` and
`message.feedback` with their own fields. They are published once the dispatcher's batch is
committed, all of a batch over one connection to the channel layer. They only wake pages up:
a page re-reads what it shows, so a frame sent twice (an event delivered again) is harmless.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from apps.conversations.models import Conversation
from apps.conversations.services import summary_row
from apps.events.dispatch import Delivery, Subscriber
from syntera.realtime import publish_many, staff_group

# Event type -> the frame type staff pages know (inbox.js, presence.js's data-live-refresh).
ROW_FRAMES = {
    "conversation.created": "conversation.created",
    "message.created": "message.created",
    "note.created": "message.created",
    "conversation.queued": "conversation.queued",
    "conversation.assigned": "conversation.updated",
    "conversation.handed_back": "conversation.updated",
    "conversation.resolved": "conversation.updated",
    "conversation.reopened": "conversation.updated",
    "conversation.updated": "conversation.updated",
    "csat.received": "conversation.updated",
}


def frames_for(delivery: Delivery) -> list[dict[str, Any]]:
    """The staff frames one event becomes (none when its conversation is gone)."""
    data = delivery.data
    if delivery.type == "sla.breached":
        return [{"type": "sla.breached", "conversation": data["conversation_id"], "kind": data["kind"]}]
    if delivery.type == "message.feedback":
        return [
            {
                "type": "message.feedback",
                "conversation": data["conversation_id"],
                "seq": data["seq"],
                "helpful": data["helpful"],
            }
        ]
    conversation = Conversation.objects.filter(pk=data["conversation_id"]).first()
    if conversation is None:
        return []
    return [{"type": ROW_FRAMES[delivery.type], "conversation": summary_row(conversation)}]


def _handle(delivery: Delivery) -> list[tuple[str, dict[str, Any]]]:
    group = staff_group(connection.schema_name)  # type: ignore[attr-defined]
    return [(group, {"type": "staff.event", "event": frame}) for frame in frames_for(delivery)]


staff_inbox = Subscriber(
    name="staff_inbox",
    types=frozenset({*ROW_FRAMES, "sla.breached", "message.feedback"}),
    handle=_handle,
    after_commit=publish_many,
)
