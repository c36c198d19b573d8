"""Conversation background jobs (queue `llm`): the AI's replies. Tasks only call services."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="conversations.ai_reply", acks_late=True)
def ai_reply(conversation_id: int, trigger_seq: int, epoch: int) -> str:
    return services.ai_reply(conversation_id=conversation_id, trigger_seq=trigger_seq, epoch=epoch)
