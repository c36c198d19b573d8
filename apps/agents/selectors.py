"""Reads from agents."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Agent


def agent_list() -> QuerySet[Agent]:
    return Agent.objects.prefetch_related("knowledge_bases")
