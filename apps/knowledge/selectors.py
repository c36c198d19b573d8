"""Reads of knowledge in the current tenant schema."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import KnowledgeBase, Source


def knowledge_base_list() -> QuerySet[KnowledgeBase]:
    return KnowledgeBase.objects.order_by("id")


def source_list(*, kb: KnowledgeBase) -> QuerySet[Source]:
    return Source.objects.filter(knowledge_base=kb).order_by("id")
