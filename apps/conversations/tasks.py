"""Conversation background jobs: the AI's replies (queues `llm`, `llm_local`), and on beat the
turns whose worker died and the removal of empty conversations. Tasks only call services."""

from __future__ import annotations

from celery import shared_task

from apps.tenants.db import in_each_workspace

from . import services


@shared_task(name="conversations.ai_reply", acks_late=True)
def ai_reply(conversation_id: int, trigger_seq: int, epoch: int) -> str:
    return services.ai_reply(conversation_id=conversation_id, trigger_seq=trigger_seq, epoch=epoch)


@shared_task(name="conversations.requeue_stalled_turns")
def requeue_stalled_turns() -> int:
    """Beat: in every workspace, send again the AI turns whose worker died (AI_STALL_SECONDS)."""
    return sum(services.turns_requeue_stalled() for _ in in_each_workspace())


@shared_task(name="conversations.purge_empty")
def purge_empty() -> int:
    """Beat: in every workspace, remove conversations nobody wrote in (EMPTY_CONVERSATION_TTL_HOURS)."""
    return sum(services.conversations_purge_empty() for _ in in_each_workspace())
