"""Knowledge background jobs. Tasks only call services; the tenant schema travels with them."""

from __future__ import annotations

from celery import shared_task

from apps.tenants.db import in_each_workspace

from . import services


@shared_task(name="knowledge.ingest_source", acks_late=True, reject_on_worker_lost=True)
def ingest_source(source_id: int, run: int) -> str:
    """Time limits: KNOWLEDGE_INGEST_(SOFT_)TIME_LIMIT (settings/celery.py, task annotations)."""
    return services.ingest_source_when_free(source_id=source_id, run=run)


@shared_task(name="knowledge.requeue_due")
def requeue_due() -> int:
    """Beat: per tenant, queue scheduled re-syncs and stalled ingestions."""
    return sum(len(services.sources_due()) for _ in in_each_workspace())
