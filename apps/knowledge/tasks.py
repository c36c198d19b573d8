"""Knowledge background jobs. Tasks only call services; the tenant schema travels with them."""

from __future__ import annotations

from celery import shared_task
from django_tenants.utils import get_tenant_model, tenant_context

from . import services


@shared_task(name="knowledge.ingest_source", acks_late=True, reject_on_worker_lost=True)
def ingest_source(source_id: int, run: int) -> str:
    """Time limits: KNOWLEDGE_INGEST_(SOFT_)TIME_LIMIT (settings/celery.py, task annotations)."""
    return services.ingest_source_when_free(source_id=source_id, run=run)


@shared_task(name="knowledge.requeue_due")
def requeue_due() -> int:
    """Beat: per tenant, queue scheduled re-syncs and stalled ingestions."""
    count = 0
    for tenant in get_tenant_model().objects.exclude(schema_name="public").filter(is_active=True):
        with tenant_context(tenant):
            count += len(services.sources_due())
    return count
