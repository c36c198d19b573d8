"""Reads from agents."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Agent, KnowledgeGap


def agent_list() -> QuerySet[Agent]:
    return Agent.objects.prefetch_related("knowledge_bases")


def knowledge_gaps(agent: Agent, *, dismissed: bool = False) -> QuerySet[KnowledgeGap]:
    """The agent's unanswered questions, most asked first (dismissed ones only if asked for)."""
    return agent.knowledge_gaps.filter(dismissed_at__isnull=not dismissed)
