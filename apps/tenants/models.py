"""Public-schema models: plans, tenants and their host names.

Lives in the public schema (SHARED_APPS). Nothing here may point at a tenant table.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


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


class Tenant(TenantMixin):
    """A company using Syntera. `schema_name` is derived from the slug."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=40, unique=True)
    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.SET_NULL, related_name="tenants")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    auto_create_schema = True
    auto_drop_schema = False

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Tenants created from the admin get the same schema name signup would give them.
        if not self.schema_name:  # type: ignore[has-type]
            self.schema_name = self.slug.replace("-", "_")
        super().save(*args, **kwargs)


class Domain(DomainMixin):
    """A host name that resolves to a tenant, e.g. `acme.localhost`."""

    class Meta:
        ordering = ["id"]
