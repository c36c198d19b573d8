"""Routing's subscribers to domain events (docs/subsystems/events.md).

- `handoff`: a conversation handed to people (`conversation.queued`) gets its SLA clocks, the
  visitor is told what happens next, and someone is assigned when a person is free.
- `sla`: a person's reply (`message.created`, role agent) meets the first-response target, a
  resolve (`conversation.resolved`) the resolution target, at the time of the event.

Both run in the transaction that marks the event delivered: once per event.
"""

from __future__ import annotations

from datetime import datetime

from apps.events.dispatch import Delivery, Subscriber

from . import services
from .models import SLAEvent


def _created(delivery: Delivery) -> datetime:
    return datetime.fromisoformat(str(delivery.event["created"]))


def _handoff(delivery: Delivery) -> None:
    services.handoff_followup(conversation_id=delivery.data["conversation_id"], queued_at=_created(delivery))


def _sla(delivery: Delivery) -> None:
    data = delivery.data
    if delivery.type == "message.created":
        if data["role"] == "agent":
            services.sla_met(
                conversation_id=data["conversation_id"], kind=SLAEvent.Kind.FIRST_RESPONSE, at=_created(delivery)
            )
        return
    services.sla_met(conversation_id=data["conversation_id"], kind=SLAEvent.Kind.RESOLUTION, at=_created(delivery))


handoff = Subscriber(name="routing_handoff", types=frozenset({"conversation.queued"}), handle=_handoff)
sla = Subscriber(name="routing_sla", types=frozenset({"message.created", "conversation.resolved"}), handle=_sla)
