from __future__ import annotations

from django.db.models import QuerySet

from .models import AuditEvent


def audit_event_list() -> QuerySet[AuditEvent]:
    """Events of the current tenant schema, newest first."""
    return AuditEvent.objects.select_related("actor").order_by("-id")
