"""The one write path for the audit trail."""

from __future__ import annotations

from typing import Any

from django.db import models
from django_tenants.utils import schema_context

from .models import AuditEvent


def audit_record(
    *,
    tenant: Any,
    action: str,
    actor: Any = None,
    actor_label: str = "",
    target: models.Model | None = None,
    data: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Append an event to `tenant`'s audit trail (written in that tenant's schema)."""
    label = actor_label or (getattr(actor, "email", "") if actor is not None else "system")
    with schema_context(tenant.schema_name):
        return AuditEvent.objects.create(
            action=action,
            actor=actor if actor is not None and getattr(actor, "pk", None) else None,
            actor_label=label[:200],
            target_type=target._meta.label_lower if target is not None else "",
            target_id=str(target.pk) if target is not None else "",
            data=data or {},
            ip_address=ip,
        )


def audit_action(
    actor: Any,
    action: str,
    target: models.Model | None = None,
    data: dict[str, Any] | None = None,
    *,
    tenant: Any = None,
    system_label: str = "system",
) -> AuditEvent:
    """`audit_record` for an `apps.accounts.services.Actor` (a person or an API key), or, when
    `actor` is None, for the platform itself (`system_label`) in `tenant` (default: the tenant
    of the current connection)."""
    if actor is None:
        from django.db import connection

        return audit_record(
            tenant=tenant or connection.tenant,  # type: ignore[attr-defined]
            action=action,
            actor_label=system_label,
            target=target,
            data=data,
        )
    return audit_record(
        tenant=actor.tenant,
        action=action,
        actor=actor.user,
        actor_label=actor.label,
        target=target,
        data=data,
        ip=actor.ip,
    )
