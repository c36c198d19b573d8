"""The routing policy conversations ask: where a first message goes, and which team and
priority a hand-over gets (docs/adr/0020-one-way-layers.md).

The policy decides; conversations acts on its answers (apps/conversations/services/ownership.py).
Its implementation is named by CONVERSATIONS_ROUTING_POLICY, the routing app's by default, so
routing depends on conversations and never the reverse. A policy reads and returns; the only
rows it may write are its own (the default team, created on first need).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from .models import Conversation


@dataclass(frozen=True)
class FirstRoute:
    """Where a conversation's first visitor message goes: the intent found in it and, when a
    rule matched, the AI agent that answers or the team it waits for (at most one)."""

    intent: str = ""
    confidence: float | None = None
    rule: str = ""
    agent_id: int | None = None
    team_id: int | None = None


@dataclass(frozen=True)
class Handoff:
    """The queue a conversation handed to people waits in, and its priority there."""

    team_id: int | None
    priority: int


class RoutingPolicy(Protocol):
    def first_message(self, conversation: Conversation, text: str) -> FirstRoute | None:
        """None when nothing routes first messages (the conversation's AI answers)."""
        ...

    def handoff(self, conversation: Conversation) -> Handoff: ...


class NoRouting:
    """No routing app: the AI owning a conversation answers it, and a hand-over keeps the
    conversation's team and priority."""

    def first_message(self, conversation: Conversation, text: str) -> FirstRoute | None:
        return None

    def handoff(self, conversation: Conversation) -> Handoff:
        return Handoff(team_id=conversation.team_id, priority=conversation.priority)


def current() -> RoutingPolicy:
    """The configured policy (CONVERSATIONS_ROUTING_POLICY, a dotted path to its class)."""
    path = getattr(settings, "CONVERSATIONS_ROUTING_POLICY", "")
    policy: RoutingPolicy = import_string(path)() if path else NoRouting()
    return policy
