"""Template tags for routing parts of shared pages: the presence toggle in the navigation and
the routing panel of a conversation (intent, team, queue place, manual assignment)."""

from __future__ import annotations

from typing import Any

from django import template

from apps.accounts.models import Role
from apps.conversations.models import Conversation
from apps.routing import presence, selectors

register = template.Library()


@register.inclusion_tag("dashboard/routing_presence_toggle.html", takes_context=True)
def presence_toggle(context: template.Context) -> dict[str, Any]:
    request = context.get("request")
    membership = getattr(request, "membership", None)
    tenant = getattr(request, "tenant", None)
    if request is None or membership is None or tenant is None:
        return {"show": False, "live": False}
    if not membership.has_role(Role.AGENT):  # viewers take no conversations: live pages only
        return {"show": False, "live": True}
    status = presence.status_of(tenant.schema_name, request.user.pk)
    return {
        "show": True,
        "live": True,
        # Between pages the person may be offline for a moment: show what they will be.
        "status": status if status != "offline" else presence.chosen(tenant.schema_name, request.user.pk),
        "user_id": request.user.pk,
        "next": request.get_full_path(),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("dashboard/routing_conversation_panel.html", takes_context=True)
def routing_panel(context: template.Context, conversation: Conversation) -> dict[str, Any]:
    request = context.get("request")
    membership = getattr(request, "membership", None)
    if request is None or membership is None:
        return {"show": False}
    user_id = request.user.pk
    is_admin = membership.has_role(Role.ADMIN)
    own = conversation.owner == Conversation.Owner.HUMAN and conversation.assignee_id == user_id
    can_assign = membership.has_role(Role.AGENT) and (is_admin or own or conversation.owner != Conversation.Owner.HUMAN)
    staff = selectors.staff_list(tenant=request.tenant) if can_assign else []
    entry = selectors.queue_entry(conversation)
    team = conversation.team
    if team is None and entry is not None and entry.team_id:
        team = selectors.team_get(entry.team_id)
    confidence = conversation.intent_confidence
    return {
        "show": True,
        "conversation": conversation,
        "team": team,
        "intent": conversation.intent,
        "confidence": round(confidence * 100) if confidence is not None else None,
        "position": entry.position if entry else None,
        "can_assign": can_assign,
        "reassign": conversation.owner == Conversation.Owner.HUMAN and conversation.assignee_id is not None,
        "staff": [m for m in staff if m.user_id != conversation.assignee_id],
        "csrf_token": context.get("csrf_token"),
    }
