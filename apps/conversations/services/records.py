"""Staff's housekeeping on a conversation: tags, the unread count, deletion."""

from __future__ import annotations

from django.db import transaction

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.audit.services import audit_action

from ..models import Conversation
from ..stores import get_store
from .notify import current_schema, emit_updated, require_role


@transaction.atomic
def conversation_set_tags(*, actor: Actor, conversation: Conversation, tags: list[str]) -> Conversation:
    require_role(actor, Role.AGENT)
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    tags = sorted({t.strip().lower()[:40] for t in tags if t.strip()})[:20]
    if tags != conversation.tags:
        conversation.tags = tags
        conversation.save(update_fields=["tags", "updated_at"])
        emit_updated(conversation, "tags", actor=actor)
    return conversation


@transaction.atomic
def conversation_mark_read(*, actor: Actor, conversation: Conversation) -> Conversation:
    require_role(actor, Role.AGENT)
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if conversation.unread:
        conversation.unread = 0
        conversation.save(update_fields=["unread", "updated_at"])
        emit_updated(conversation, "unread", actor=actor)
    return conversation


def conversation_delete(*, actor: Actor, conversation: Conversation) -> None:
    require_role(actor, Role.ADMIN)
    get_store().delete_conversation(schema=current_schema(), conversation_id=conversation.pk)
    audit_action(actor, "conversations.deleted", None, {"conversation_id": conversation.pk})
    conversation.delete()
