"""The audit trail's subscriber to domain events (docs/subsystems/events.md).

The changes that are domain events and that staff must be able to account for (who took a
conversation, queued, resolved or reopened it, which SLA was breached, which contacts and
leads were created) are audited from their event: the action is the event's type, the actor
the one the service recorded on the outbox row, the data the event's payload plus its id.
The entry is written in the transaction that marks the event delivered, so each event is
audited exactly once. Administrative changes that are no domain event (settings, keys,
members, memory edits, merges) call `apps.audit.services.audit_action` directly.
"""

from __future__ import annotations

from apps.events.dispatch import Delivery, Subscriber

from .services import audit_event_record

# Event type -> (target type, the payload key holding the target's id).
AUDITED = {
    "conversation.queued": ("conversations.conversation", "conversation_id"),
    "conversation.assigned": ("conversations.conversation", "conversation_id"),
    "conversation.handed_back": ("conversations.conversation", "conversation_id"),
    "conversation.resolved": ("conversations.conversation", "conversation_id"),
    "conversation.reopened": ("conversations.conversation", "conversation_id"),
    "sla.breached": ("conversations.conversation", "conversation_id"),
    "contact.created": ("crm.contact", "contact_id"),
    "lead.created": ("crm.lead", "lead_id"),
}


def _handle(delivery: Delivery) -> None:
    target_type, key = AUDITED[delivery.type]
    audit_event_record(
        action=delivery.type,
        actor_user_id=delivery.actor_user_id,
        actor_label=delivery.actor_label,
        target_type=target_type,
        target_id=str(delivery.data[key]),
        data={**delivery.data, "event": delivery.id},
        ip=delivery.actor_ip,
    )


audit_trail = Subscriber(name="audit_trail", types=frozenset(AUDITED), handle=_handle)
