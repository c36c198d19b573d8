"""Event delivery tasks (docs/subsystems/events.md). Tasks only call the dispatcher and the
services; each workspace's work runs in its own schema.

- `events.dispatch` (queue `events`, sent after a commit that wrote events): deliver the
  workspace's outbox. The schema travels in the task's headers like every task's, and as its
  argument, which is checked against them.
- `events.sweep` (beat, every EVENTS_SWEEP_INTERVAL seconds): crash recovery and retries. Every
  workspace with deliverable events (a dispatch lost with its worker, a back-off that ended)
  gets a dispatch.
- `events.purge` (beat, hourly): delivered events older than EVENTS_RETENTION_DAYS go.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import get_tenant_model, tenant_context

from . import dispatch as dispatcher
from .models import OutboxEvent
from .services import dispatch_soon, events_purge_delivered

logger = logging.getLogger(__name__)


@shared_task(name="events.dispatch", acks_late=True, ignore_result=True)
def dispatch(schema: str) -> dict[str, Any]:
    if connection.schema_name != schema:  # type: ignore[attr-defined]
        # Sent without its header (by hand): run where the argument says, never elsewhere.
        with tenant_context(get_tenant_model().objects.get(schema_name=schema)):
            return dispatch(schema)
    report = dispatcher.run(budget_seconds=settings.EVENTS_DISPATCH_SECONDS)
    if report.more:
        dispatch_soon(schema)  # the rest in a new task: other workspaces get their turn between
    return report.as_dict()


def _schemas_with_work(schemas: list[str]) -> list[str]:
    """Which of `schemas` have pending events that are due: one statement per hundred
    workspaces. (A workspace whose only due events wait behind a back-off gets a dispatch
    that finds nothing to do.)"""
    table = OutboxEvent._meta.db_table
    found: list[str] = []
    quote = connection.ops.quote_name
    now = timezone.now()
    for start in range(0, len(schemas), 100):
        chunk = schemas[start : start + 100]
        parts = [
            f"SELECT %s WHERE EXISTS (SELECT 1 FROM {quote(s)}.{quote(table)} "  # noqa: S608 (quoted names)
            "WHERE state = 'pending' AND available_at <= %s)"
            for s in chunk
        ]
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts), [value for s in chunk for value in (s, now)])
            found.extend(row[0] for row in cursor.fetchall())
    return found


@shared_task(name="events.sweep", ignore_result=True)
def sweep() -> list[str]:
    """Beat: a dispatch for every active workspace with deliverable events."""
    schemas = list(
        get_tenant_model()
        .objects.exclude(schema_name="public")
        .filter(is_active=True)
        .values_list("schema_name", flat=True)
    )
    found = _schemas_with_work(schemas)
    for schema in found:
        dispatch_soon(schema)
    return found


@shared_task(name="events.purge", ignore_result=True)
def purge() -> int:
    """Beat: in every workspace, delete delivered events past EVENTS_RETENTION_DAYS."""
    removed = 0
    for tenant in get_tenant_model().objects.exclude(schema_name="public"):
        with tenant_context(tenant):
            removed += events_purge_delivered()
    return removed
