"""Deleting a workspace: request, grace period, purge, tombstone.
See docs/adr/0015-workspace-deletion.md and docs/subsystems/tenancy.md ("Deleting a workspace").

- `tenant_deletion_request`: an owner (typing the slug) or an operator asks. The workspace is
  deactivated at once: `is_active` off and `purge_after` set, its hosts cached anew, its open
  sockets closed, its owners emailed; everything is audited in its own trail.
- `tenant_deletion_cancel`: during the grace period, an owner or an operator restores it.
- `tenant_purge` (beat: `tenants.purge_due`): once `purge_after` has passed, the steps of
  PURGE_STEPS (purge.py) run in order, each recorded in `TenantDeletion.steps` when done, so a purge that
  crashed resumes where it stopped, and running it again is harmless. The first step marks the
  tenant deleted (its tombstone), so nothing reaches the workspace while the rest is removed.

The tenant row is never deleted: its slug and schema name stay taken for good.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.accounts.models import Membership, Role
from apps.accounts.services import Actor
from apps.accounts.tasks import send_email
from apps.audit.services import audit_record
from apps.tenants.db import connection
from apps.tenants.models import Tenant, TenantDeletion
from apps.tenants.selectors import forget_host, tenant_domains, tenant_url
from syntera import realtime
from syntera.errors import ApplicationError
from syntera.tasks import enqueue_on_commit

from . import purge

logger = logging.getLogger(__name__)

PURGE_STEPS = ("mark", *(step for step, _ in purge.STEPS))
VIAS = ("dashboard", "api", "admin", "command")
# pg_try_advisory_lock key space of purges (one lock per deletion request).
PURGE_LOCK_BASE = 0x5E1E7E << 32


def _who(*, tenant: Tenant, actor: Actor | None, operator: str) -> str:
    """The label of whoever may delete or restore this workspace: one of its owners (a person,
    not an API key) or a platform operator; anyone else is refused."""
    if actor is None:
        if not operator:
            raise ApplicationError(
                "Only an owner or an operator can do this.", code="permission_denied", status_code=403
            )
        return operator[:200]
    if actor.tenant.pk != tenant.pk or actor.role != Role.OWNER or actor.user is None:
        raise ApplicationError(
            "Only an owner of this workspace can delete it or cancel its deletion.",
            code="permission_denied",
            status_code=403,
        )
    return actor.label


def _audit(tenant: Tenant, action: str, who: str, actor: Actor | None, data: dict[str, Any]) -> None:
    audit_record(
        tenant=tenant,
        action=action,
        actor=actor.user if actor else None,
        actor_label=who,
        data=data,
        ip=actor.ip if actor else None,
    )


def _forget_hosts_on_commit(hosts: list[str]) -> None:
    def forget() -> None:
        for host in hosts:
            forget_host(host)

    transaction.on_commit(forget)


def _tell(emails: list[str], subject: str, body: str) -> None:
    """Email people after commit (from the public schema: the workspace's own tasks are off)."""
    with schema_context("public"):
        for email in emails:
            enqueue_on_commit(send_email, subject, body, email)


def _owners(tenant: Tenant) -> list[str]:
    return sorted(Membership.objects.filter(tenant_id=tenant.pk, role=Role.OWNER).values_list("user__email", flat=True))


@transaction.atomic
def tenant_deletion_request(
    *,
    tenant: Tenant,
    confirm: str,
    via: str,
    actor: Actor | None = None,
    operator: str = "",
    export: bool = False,
) -> TenantDeletion:
    """Schedule the workspace's deletion after the grace period (TENANT_DELETION_GRACE_DAYS)
    and deactivate it now. `confirm` must be the workspace's slug. `export` (owners) also
    queues an export of its data, downloadable during the grace period."""
    who = _who(tenant=tenant, actor=actor, operator=operator)
    if (confirm or "").strip().lower() != tenant.slug:
        raise ApplicationError(
            f"Type the workspace address ({tenant.slug}) to confirm.",
            code="confirmation_mismatch",
            fields={"confirm": [f"Type {tenant.slug} to confirm."]},
        )
    with schema_context("public"):
        locked = Tenant.all_objects.select_for_update().get(pk=tenant.pk)
        if locked.deleted_at is not None:
            raise ApplicationError("This workspace was deleted.", code="workspace_deleted", status_code=409)
        if locked.purge_after is not None:
            raise ApplicationError(
                f"This workspace is already scheduled for deletion on {locked.purge_after:%Y-%m-%d %H:%M} UTC.",
                code="deletion_scheduled",
                status_code=409,
            )
        purge_after = timezone.now() + timedelta(days=settings.TENANT_DELETION_GRACE_DAYS)
        owners = _owners(locked)
        request = TenantDeletion.objects.create(
            tenant=locked,
            requested_by=who,
            requested_via=via if via in VIAS else "api",
            purge_after=purge_after,
            was_active=locked.is_active,
            notify=owners,
        )
        Tenant.all_objects.filter(pk=locked.pk).update(is_active=False, purge_after=purge_after)
        hosts = tenant_domains(locked)
    tenant.is_active, tenant.purge_after = False, purge_after
    _audit(tenant, "tenant.deletion_requested", who, actor, {"purge_after": purge_after.isoformat(), "via": via})
    if export and actor is not None:
        from .export import tenant_export_request

        tenant_export_request(actor=actor)
    _forget_hosts_on_commit(hosts)
    transaction.on_commit(lambda: realtime.close_tenant_sockets(tenant.schema_name))
    link = tenant_url(tenant, "/dashboard/workspace/")
    _tell(
        owners,
        f"{tenant.name} ({tenant.slug}) is scheduled for deletion",
        f"{who} asked to delete the workspace {tenant.name} ({tenant.slug}) on Syntera.\n\n"
        f"It is switched off now, and all of its data (conversations, contacts, knowledge, agents, "
        f"files) will be deleted for good on {purge_after:%Y-%m-%d %H:%M} UTC.\n\n"
        f"Until then an owner can download an export of its data or cancel the deletion: {link}\n",
    )
    logger.info("workspace %s scheduled for deletion by %s (purge after %s)", tenant.schema_name, who, purge_after)
    return request


@transaction.atomic
def tenant_deletion_cancel(
    *, tenant: Tenant, via: str, actor: Actor | None = None, operator: str = ""
) -> TenantDeletion:
    """Restore a workspace during its grace period, as it was before the request."""
    who = _who(tenant=tenant, actor=actor, operator=operator)
    with schema_context("public"):
        request = (
            TenantDeletion.objects.select_for_update()
            .filter(tenant_id=tenant.pk, status=TenantDeletion.Status.SCHEDULED)
            .first()
        )
        if request is None:
            raise ApplicationError(
                "This workspace is not scheduled for deletion (or its purge has started).",
                code="no_deletion_scheduled",
                status_code=409,
            )
        request.status = TenantDeletion.Status.CANCELLED
        request.cancelled_by, request.cancelled_at = who, timezone.now()
        request.save(update_fields=["status", "cancelled_by", "cancelled_at"])
        Tenant.all_objects.filter(pk=tenant.pk).update(is_active=request.was_active, purge_after=None)
        hosts = tenant_domains(tenant)
    tenant.is_active, tenant.purge_after = request.was_active, None
    _audit(tenant, "tenant.deletion_cancelled", who, actor, {"via": via})
    _forget_hosts_on_commit(hosts)
    _tell(
        _owners(tenant),
        f"Deletion of {tenant.name} ({tenant.slug}) cancelled",
        f"{who} cancelled the deletion of the workspace {tenant.name} ({tenant.slug}). "
        f"It works again as before: {tenant_url(tenant, '/dashboard/')}\n",
    )
    return request


@transaction.atomic
def tenant_deletion_end_grace(*, request: TenantDeletion, operator: str) -> TenantDeletion:
    """An operator ends the grace period now (the purge follows: `tenant_purge`)."""
    now = timezone.now()
    TenantDeletion.objects.filter(pk=request.pk, status=TenantDeletion.Status.SCHEDULED).update(purge_after=now)
    Tenant.all_objects.filter(pk=request.tenant_id, deleted_at__isnull=True).update(purge_after=now)
    audit_record(tenant=request.tenant, action="tenant.deletion_grace_ended", actor_label=operator[:200])
    request.refresh_from_db()
    return request


def tenant_deletions_due() -> list[int]:
    """Deletions to purge now: grace period over, or a purge that did not finish."""
    return list(
        TenantDeletion.objects.filter(
            status__in=(TenantDeletion.Status.SCHEDULED, TenantDeletion.Status.PURGING),
            purge_after__lte=timezone.now(),
        )
        .order_by("id")
        .values_list("id", flat=True)
    )


@contextlib.contextmanager
def _purge_lock(deletion_id: int) -> Iterator[bool]:
    """One purge of a deletion at a time, across workers; released if the worker dies."""
    key = PURGE_LOCK_BASE + deletion_id
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def tenant_purge(*, deletion_id: int, by: str = "") -> TenantDeletion:
    """Purge a workspace whose grace period is over, step by step (PURGE_STEPS). Idempotent and
    resumable: a finished step is skipped, a failed one is retried on the next run (beat), and
    a purged or cancelled request is returned as it is. `by` names an operator who purged it
    early; otherwise the tombstone names who asked for the deletion."""
    connection.set_schema_to_public()
    with _purge_lock(deletion_id) as acquired:
        request = TenantDeletion.objects.select_related("tenant").get(pk=deletion_id)
        if not acquired or request.status in (TenantDeletion.Status.PURGED, TenantDeletion.Status.CANCELLED):
            return request
        if "mark" not in request.steps and not _mark(request, by or request.requested_by):
            return request  # still in its grace period
        tenant = Tenant.all_objects.get(pk=request.tenant_id)
        for step, run in purge.STEPS:
            if step in request.steps:
                continue
            try:
                run(tenant)
            except Exception as exc:
                logger.exception("purge of workspace %s failed at step %s", tenant.schema_name, step)
                request.last_error = f"{step}: {type(exc).__name__}: {exc}"[:2000]
                TenantDeletion.objects.filter(pk=request.pk).update(last_error=request.last_error)
                raise
            request.steps[step] = timezone.now().isoformat()
            TenantDeletion.objects.filter(pk=request.pk).update(steps=request.steps)
        request.status, request.purged_at, request.last_error = TenantDeletion.Status.PURGED, timezone.now(), ""
        request.save(update_fields=["status", "purged_at", "last_error"])
    _tell(
        list(request.notify),
        f"{tenant.name} ({tenant.slug}) was deleted",
        f"The workspace {tenant.name} ({tenant.slug}) and all of its data were deleted from Syntera "
        f"on {request.purged_at:%Y-%m-%d %H:%M} UTC, as {request.requested_by} asked.\n",
    )
    logger.info("workspace %s purged", tenant.schema_name)
    return request


@transaction.atomic
def _mark(request: TenantDeletion, who: str) -> bool:
    """Start the purge if it is due and was not cancelled: the tenant becomes a tombstone now
    (its hosts, keys, sockets and tasks are refused from here on). False when not due."""
    locked = TenantDeletion.objects.select_for_update().get(pk=request.pk)
    if locked.status != TenantDeletion.Status.SCHEDULED or locked.purge_after > timezone.now():
        request.status = locked.status
        return False
    now = timezone.now()
    Tenant.all_objects.filter(pk=locked.tenant_id).update(is_active=False, deleted_at=now, deleted_by=who[:200])
    locked.status, locked.purge_started_at = TenantDeletion.Status.PURGING, now
    locked.steps = {**locked.steps, "mark": now.isoformat()}
    locked.save(update_fields=["status", "purge_started_at", "steps"])
    request.status, request.purge_started_at, request.steps = locked.status, now, locked.steps
    _forget_hosts_on_commit(tenant_domains(request.tenant))
    return True
