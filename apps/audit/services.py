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


def audit_event_record(
    *,
    action: str,
    actor_user_id: int | None,
    actor_label: str,
    target_type: str,
    target_id: str,
    data: dict[str, Any],
    ip: str | None,
) -> AuditEvent:
    """Append an entry to the current tenant's audit trail from a domain event (the audit
    trail's event subscriber): the actor is known by id, and may have been deleted since."""
    actor_field = AuditEvent._meta.get_field("actor")
    user_model: Any = actor_field.related_model
    exists = actor_user_id is not None and user_model.objects.filter(pk=actor_user_id).exists()
    return AuditEvent.objects.create(
        action=action[:64],
        actor_id=actor_user_id if exists else None,
        actor_label=(actor_label or "system")[:200],
        target_type=target_type[:64],
        target_id=target_id[:64],
        data=data,
        ip_address=ip,
    )
