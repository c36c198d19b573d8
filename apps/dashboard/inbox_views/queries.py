"""Reads for the inbox pages (in the tenant's schema, like every query of a tenant host)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.conversations.models import Conversation, Inbox


def conversation_list(
    *,
    user_id: int | None,
    status: str = Conversation.Status.OPEN,
    channel: str = "",
    inbox_id: int | None = None,
    assignee: str = "anyone",
    owner: str = "",
    unread: bool = False,
) -> QuerySet[Conversation]:
    """Conversations for the inbox list, the most recent message first. A conversation shows
    up with its first message (an opened, still empty widget is not a conversation yet)."""
    qs = Conversation.objects.select_related("inbox", "contact", "assignee").filter(last_message_at__isnull=False)
    if status != "any":
        qs = qs.filter(status=status)
    if channel:
        qs = qs.filter(channel=channel)
    if inbox_id is not None:
        qs = qs.filter(inbox_id=inbox_id)
    if assignee == "me":
        qs = qs.filter(assignee_id=user_id)
    elif assignee == "unassigned":
        qs = qs.filter(assignee__isnull=True)
    if owner:
        qs = qs.filter(owner=owner)
    if unread:
        qs = qs.filter(unread__gt=0)
    return qs.order_by("-last_message_at", "-id")


def conversation_get(conversation_id: int) -> Conversation | None:
    return Conversation.objects.select_related("inbox", "contact", "assignee").filter(pk=conversation_id).first()


def inbox_list() -> QuerySet[Inbox]:
    from django.db.models import Count

    return Inbox.objects.select_related("agent").annotate(conversation_count=Count("conversations")).order_by("id")


def filters_query(data: dict[str, Any]) -> str:
    """The list's filters as a query string (without the page), for links and the JSON URL."""
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in data.items() if k != "page" and v not in (None, "")})
