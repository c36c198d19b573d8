"""The staff inbox's subscriber: each domain event becomes the `staff.event` frame the staff
pages already know (docs/subsystems/realtime.md), with the conversation's summary row read
when the event is delivered."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import schema_context

from apps.dashboard.subscribers import ROW_FRAMES, frames, staff_inbox
from apps.events.dispatch import Delivery


def _delivery(type_: str, **data: Any) -> Delivery:
    envelope = {"id": "x", "type": type_, "created": "2026-01-01T00:00:00+00:00", "tenant": "alpha", "data": data}
    return Delivery(event=envelope, actor_user_id=None, actor_label="system", actor_ip=None, attempt=1)


def test_events_become_the_staff_frames_of_before(alpha: Any) -> None:
    from apps.conversations import services as conversations
    from apps.conversations.models import Inbox

    with schema_context(alpha.schema):
        inbox = Inbox.objects.create(name="Frames", channel="api")
        conversation, _ = conversations.conversation_start(inbox=inbox)
        conversations.message_post(conversation_id=conversation.pk, role="visitor", text="Ping", client_id="f1")
        items = [(type_, {"conversation_id": conversation.pk}) for type_ in ROW_FRAMES]
        found = frames(items)
        assert [f["type"] for f in found] == list(ROW_FRAMES.values())
        for frame in found:
            assert frame["conversation"]["id"] == conversation.pk and frame["conversation"]["preview"] == "Ping"
            assert frame["conversation"]["last_seq"] == 1 and frame["conversation"]["unread"] == 1
        assert frames(
            [
                ("sla.breached", {"conversation_id": conversation.pk, "kind": "resolution"}),
                ("message.feedback", {"conversation_id": conversation.pk, "seq": 2, "helpful": False}),
                # A conversation deleted before its event is delivered: no frame, no error.
                ("message.created", {"conversation_id": conversation.pk + 1000}),
                ("note.created", {"conversation_id": conversation.pk}),
            ]
        ) == [
            {"type": "sla.breached", "conversation": conversation.pk, "kind": "resolution"},
            {"type": "message.feedback", "conversation": conversation.pk, "seq": 2, "helpful": False},
            {"type": "message.created", "conversation": found[0]["conversation"]},
        ]
        assert staff_inbox.handle(_delivery("note.created", conversation_id=conversation.pk)) == [
            ("note.created", {"conversation_id": conversation.pk})
        ]


def test_the_staff_inbox_does_not_hear_of_contacts_or_knowledge() -> None:
    assert not staff_inbox.types & {"contact.created", "contact.updated", "lead.created", "knowledge.source.ready"}
