"""The agent statistics' subscriber to domain events (docs/subsystems/events.md).

A visitor's verdict on an AI answer (`message.feedback`) counts on the answering agent's row
for the day it was given; a verdict that replaces an earlier one takes the earlier one back
from that one's day. Counted in the transaction that marks the event delivered: once per event.
"""

from __future__ import annotations

from datetime import date

from apps.events.dispatch import Delivery, Subscriber

from .models import Agent
from .services import agent_feedback_count


def _handle(delivery: Delivery) -> None:
    data = delivery.data
    agent_id = data["agent_id"]
    if agent_id is None or not Agent.objects.filter(pk=agent_id).exists():
        return
    replaces = data["replaces"]
    if replaces is not None:
        agent_feedback_count(
            agent_id=agent_id,
            channel=data["channel"],
            helpful=replaces["helpful"],
            day=date.fromisoformat(replaces["day"]),
            undo=True,
        )
    agent_feedback_count(
        agent_id=agent_id,
        channel=data["channel"],
        helpful=data["helpful"],
        day=date.fromisoformat(delivery.event["created"][:10]),
    )


agent_stats = Subscriber(name="agent_stats", types=frozenset({"message.feedback"}), handle=_handle)
