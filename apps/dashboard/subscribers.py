"""The staff inbox's subscriber to domain events: turns them into the `staff.event` frames the
dashboard's staff socket forwards (docs/subsystems/realtime.md, docs/subsystems/events.md).

The frames keep their shapes: `{"type": <frame type>, "conversation": {summary row}}`,
`sla.breached` and `message.feedback` with their own fields. They are built once the
dispatcher's batch is committed: the batch's conversations read in one query (fresh: the
row as it is now), the frames published in order over one connection to the channel layer.
They only wake pages up: a page re-reads what it shows, so a frame sent twice (an event
delivered again) is harmless, and one lost (a crash after the commit) costs a delay.
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


def frames(items: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The staff frames of (event type, payload) pairs, in their order; the summary rows are
    read together, once per conversation. An event whose conversation is gone has none."""
    ids = {data["conversation_id"] for type_, data in items if type_ in ROW_FRAMES}
    rows = {c.pk: summary_row(c) for c in Conversation.objects.filter(pk__in=ids).order_by()} if ids else {}
    found: list[dict[str, Any]] = []
    for type_, data in items:
        if type_ == "sla.breached":
            found.append({"type": "sla.breached", "conversation": data["conversation_id"], "kind": data["kind"]})
        elif type_ == "message.feedback":
            found.append(
                {
                    "type": "message.feedback",
                    "conversation": data["conversation_id"],
                    "seq": data["seq"],
                    "helpful": data["helpful"],
                }
            )
        elif data["conversation_id"] in rows:
            found.append({"type": ROW_FRAMES[type_], "conversation": rows[data["conversation_id"]]})
    return found


def _handle(delivery: Delivery) -> list[tuple[str, dict[str, Any]]]:
    return [(delivery.type, delivery.data)]


def _publish(items: list[tuple[str, dict[str, Any]]]) -> None:
    """After the dispatcher's batch is committed: its frames, over one layer connection."""
    group = staff_group(connection.schema_name)  # type: ignore[attr-defined]
    publish_many([(group, {"type": "staff.event", "event": frame}) for frame in frames(items)])


staff_inbox = Subscriber(
    name="staff_inbox",
    types=frozenset({*ROW_FRAMES, "sla.breached", "message.feedback"}),
    handle=_handle,
    after_commit=_publish,
)
