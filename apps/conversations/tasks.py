"""Conversation background jobs: the AI's replies (queue `llm`) and the removal of empty
conversations (beat). Tasks only call services."""

from __future__ import annotations

from celery import shared_task
from django_tenants.utils import get_tenant_model, tenant_context

from . import services


@shared_task(name="conversations.ai_reply", acks_late=True)
def ai_reply(conversation_id: int, trigger_seq: int, epoch: int) -> str:
    return services.ai_reply(conversation_id=conversation_id, trigger_seq=trigger_seq, epoch=epoch)


@shared_task(name="conversations.requeue_stalled_turns")
def requeue_stalled_turns() -> int:
    """Beat: in every workspace, send again the AI turns whose worker died (AI_STALL_SECONDS)."""
    sent = 0
    for tenant in get_tenant_model().objects.exclude(schema_name="public").filter(is_active=True):
        with tenant_context(tenant):
            sent += services.turns_requeue_stalled()
    return sent


@shared_task(name="conversations.purge_empty")
def purge_empty() -> int:
    """Beat: in every workspace, remove conversations nobody wrote in (EMPTY_CONVERSATION_TTL_HOURS)."""
    removed = 0
    for tenant in get_tenant_model().objects.exclude(schema_name="public").filter(is_active=True):
        with tenant_context(tenant):
            removed += services.conversations_purge_empty()
    return removed
