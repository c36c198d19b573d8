"""Public-schema models: plans, tenants and their host names, workspace deletions and exports.

Lives in the public schema (SHARED_APPS). Nothing here may point at a tenant table.
A deleted workspace keeps its `Tenant` row as a tombstone (docs/adr/0015-workspace-deletion.md).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin
from django_tenants.utils import schema_exists


class Plan(models.Model):  # type: ignore[django-manager-missing]
    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=80)
    max_members = models.PositiveIntegerField(default=5)
    max_api_keys = models.PositiveIntegerField(default=10)
    # AI quotas per day; None means the deployment's default (AI_DAILY_REQUESTS / _TOKENS), 0 unlimited.
    ai_daily_requests = models.PositiveIntegerField(null=True, blank=True)
    ai_daily_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class LiveTenantManager(models.Manager["Tenant"]):
    """Workspaces that still exist. A deleted workspace's tombstone is left out, so nothing that
    walks the tenants (`migrate_schemas`, beat sweeps, look-ups by slug) visits a dropped
    schema. `Tenant.all_objects` sees the tombstones too (slug checks, the operator admin)."""

    def get_queryset(self) -> models.QuerySet[Tenant]:
        return super().get_queryset().filter(deleted_at__isnull=True)


class Tenant(TenantMixin):
    """A company using Syntera. `schema_name` is derived from the slug.

    Deletion (apps/workspaces/deletion.py): `purge_after` is set while the workspace waits out its
    grace period (deactivated, restorable); `deleted_at`/`deleted_by` mark the tombstone left
    once its data is purged, which keeps the slug and schema name from ever being reused.
    """

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=40, unique=True)
    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.SET_NULL, related_name="tenants")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    purge_after = models.DateTimeField(null=True, blank=True, help_text="Scheduled for deletion: purged after this.")
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="Deleted: its data was purged.")
    deleted_by = models.CharField(max_length=200, blank=True)

    objects: ClassVar[LiveTenantManager] = LiveTenantManager()  # type: ignore[assignment]
    all_objects: ClassVar[models.Manager[Tenant]] = models.Manager()

    auto_create_schema = True
    auto_drop_schema = False

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    @property
    def deletion_pending(self) -> bool:
        return self.purge_after is not None and self.deleted_at is None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def save(self, *args: Any, **kwargs: Any) -> None:
        from syntera.errors import ApplicationError

        # Tenants created from the admin get the same schema name signup would give them.
        if not self.schema_name:  # type: ignore[has-type]
            self.schema_name = self.slug.replace("-", "_")
        if self._state.adding and self.schema_name != "public" and schema_exists(self.schema_name):
            # django-tenants would silently adopt the schema (and whatever data is left in it).
            # Checked before the row is saved: on a failure after it, django-tenants drops the
            # schema it believes it created.
            raise ApplicationError(
                "That workspace address is taken.", code="slug_taken", status_code=409, fields={"slug": ["Taken."]}
            )
        if not self._state.adding and self.deleted_at is not None:
            # django-tenants re-creates a missing schema on every save of an existing row.
            raise ApplicationError("A deleted workspace cannot be changed.", code="workspace_deleted", status_code=409)
        super().save(*args, **kwargs)

    def delete(self, force_drop: bool = False, *args: Any, **kwargs: Any) -> Any:
        """Refused: deleting the row would leave the schema (and its data) behind. A workspace
        is deleted through `apps.workspaces.deletion`, which keeps the row as a tombstone. Only
        django-tenants' own clean-up of a tenant whose schema failed to build (`force_drop`)
        passes."""
        if not force_drop:
            from syntera.errors import ApplicationError

            raise ApplicationError(
                "A workspace is deleted through its deletion request (manage.py delete_tenant, the "
                "operator admin's actions, or its owner), never as a row.",
                code="use_workspace_deletion",
                status_code=409,
            )
        return super().delete(force_drop, *args, **kwargs)


class Domain(DomainMixin):
    """A host name that resolves to a tenant, e.g. `acme.localhost`."""

    class Meta:
        ordering = ["id"]


class TenantDeletion(models.Model):
    """One request to delete a workspace, from the grace period to the purge.

    `steps` records each purge step as it finishes, so a purge that crashed resumes where it
    stopped. A tenant has at most one open (scheduled or purging) deletion.
    """

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        CANCELLED = "cancelled", "Cancelled"
        PURGING = "purging", "Purging"
        PURGED = "purged", "Purged"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="deletions")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SCHEDULED)
    requested_by = models.CharField(max_length=200)
    requested_via = models.CharField(max_length=20, help_text="dashboard, api, admin or command")
    requested_at = models.DateTimeField(auto_now_add=True)
    purge_after = models.DateTimeField()
    was_active = models.BooleanField(default=True, help_text="Restored on cancellation.")
    notify = models.JSONField(default=list, blank=True, help_text="Owners told of the request and the purge.")
    cancelled_by = models.CharField(max_length=200, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    purge_started_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)
    steps = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(status__in=["scheduled", "purging"]),
                name="tenants_one_open_deletion",
            )
        ]

    def __str__(self) -> str:
        return f"Deletion of {self.tenant.slug} ({self.status})"


def export_upload_path(instance: TenantExport, filename: str) -> str:
    """Exports live under the tenant's own media path, which the purge removes."""
    return f"tenants/{instance.tenant.schema_name}/exports/{filename}"


class TenantExport(models.Model):
    """A downloadable archive of a workspace's data, built by a Celery task."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="exports")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.CharField(max_length=200)
    file = models.FileField(upload_to=export_upload_path, max_length=500, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Export {self.pk} of {self.tenant.slug} ({self.status})"
