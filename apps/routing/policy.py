"""Routing's answers to conversations (`apps.conversations.policy.RoutingPolicy`): which AI
agent or team a first message goes to, by the workspace's rules and the intent detected in it,
and which team and priority a hand-over gets. Decisions only: conversations acts on them."""

from __future__ import annotations

from django.utils import timezone

from apps.conversations.models import Conversation
from apps.conversations.policy import FirstRoute, Handoff

from . import hours, intents
from .models import RoutingRule, Team
from .services import default_team

VIP_PRIORITY = 10


def _rule_matches(rule: RoutingRule, conversation: Conversation, intent: str, language: str) -> bool:
    if rule.intent_id and (rule.intent is None or rule.intent.name != intent):
        return False
    if rule.channel and rule.channel != conversation.channel:
        return False
    if rule.language and rule.language != language:
        return False
    if rule.contact_attribute:
        contact = conversation.contact
        attributes = {**(contact.attributes if contact else {}), **conversation.attributes}
        if str(attributes.get(rule.contact_attribute, "")) != rule.contact_value:
            return False
    if rule.hours != "any":
        team: Team = rule.team or default_team()
        open_now = hours.is_open(team.business_hours, timezone.now())
        if open_now != (rule.hours == "open"):
            return False
    return True


def is_vip(conversation: Conversation) -> bool:
    contact = conversation.contact
    values = [conversation.attributes.get("vip"), contact.attributes.get("vip") if contact else None]
    return any(str(v).lower() in ("1", "true", "yes") for v in values if v is not None) or "vip" in conversation.tags


class RoutingPolicy:
    def first_message(self, conversation: Conversation, text: str, language: str = "en") -> FirstRoute | None:
        """The first active rule that matches the conversation and the intent of `text`; None
        when the workspace has no active rule (the inbox's AI agent answers)."""
        rules = list(RoutingRule.objects.filter(is_active=True).select_related("intent", "team"))
        if not rules:
            return None
        detection = intents.detect(text)
        intent = detection.intent if detection else ""
        confidence = detection.confidence if detection else None
        for rule in rules:
            if _rule_matches(rule, conversation, intent, language):
                return FirstRoute(
                    intent=intent, confidence=confidence, rule=rule.name, agent_id=rule.agent_id, team_id=rule.team_id
                )
        return FirstRoute(intent=intent, confidence=confidence)

    def handoff(self, conversation: Conversation) -> Handoff:
        """The conversation's team (the default team when it has none); VIPs (a `vip` attribute
        of the conversation or its contact, or the tag) go ahead of the queue."""
        team_id = conversation.team_id or default_team().pk
        priority = max(conversation.priority, VIP_PRIORITY if is_vip(conversation) else 0)
        return Handoff(team_id=team_id, priority=priority)
