"""Reads of conversations that the REST API, the staff pages and the admin share (in the
tenant's schema, like every query of a tenant host)."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from apps.tenants.db import connection

from .models import Conversation, Inbox
from .stores import StoredMessage, get_store


def conversations_listed() -> QuerySet[Conversation]:
    """Conversations as staff and integrators list them: from their first message on (an
    opened, still empty widget is not a conversation yet)."""
    return Conversation.objects.select_related("inbox", "contact", "assignee").filter(last_message_at__isnull=False)


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
    """The inbox list's conversations, the most recent message first; `assignee` is anyone,
    me (`user_id`) or unassigned; `status` "any" lists every status."""
    qs = conversations_listed()
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
    """Every inbox with its AI agent and its number of conversations."""
    return Inbox.objects.select_related("agent").annotate(conversation_count=Count("conversations")).order_by("id")


def messages_page(
    conversation_id: int, *, after_seq: int | None = None, before_seq: int | None = None, limit: int = 100
) -> list[StoredMessage]:
    """A page of the transcript, in seq order: the `limit` messages just before `before_seq`
    (the latest when it is None and `after_seq` is too), else those after `after_seq`."""
    store = get_store()
    schema = str(connection.schema_name)
    if before_seq is not None or after_seq is None:
        return store.before(schema=schema, conversation_id=conversation_id, before_seq=before_seq, limit=limit)
    return store.after(schema=schema, conversation_id=conversation_id, after_seq=after_seq, limit=limit)
