"""Reads of public tenant data."""

from __future__ import annotations

import contextlib

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet

from apps.tenants.db import connection

from .models import Domain, Tenant, TenantDeletion, TenantExport

HOST_CACHE_SECONDS = 60
OPEN_DELETION = (TenantDeletion.Status.SCHEDULED, TenantDeletion.Status.PURGING)


def _host_key(host: str) -> str:
    return f"tenant-host:{host}"


def tenant_for_host(host: str) -> Tenant | None:
    """The tenant serving `host`, or None. Cached (public cache namespace) for a minute."""
    if connection.schema_name != "public":
        connection.set_schema_to_public()
    key = _host_key(host)
    try:
        cached = cache.get(key)
    except Exception:  # cache down: fall back to the database
        cached = None
    if cached is not None:
        return cached or None
    domain = Domain.objects.select_related("tenant").filter(domain=host).first()
    tenant = domain.tenant if domain else None
    with contextlib.suppress(Exception):  # a cache outage only costs a lookup next time
        cache.set(key, tenant or False, HOST_CACHE_SECONDS)
    return tenant


def forget_host(host: str) -> None:
    connection.set_schema_to_public()
    cache.delete(_host_key(host))


def tenant_get_by_slug(slug: str) -> Tenant | None:
    """The live workspace with that slug (a deleted workspace's tombstone is not one)."""
    return Tenant.objects.filter(slug=slug).exclude(schema_name="public").first()


def tenant_url(tenant: Tenant, path: str = "/") -> str:
    """An absolute link into the workspace, for emails and printed output."""
    port = "" if settings.SITE_PORT in (80, 443) else f":{settings.SITE_PORT}"
    return f"{settings.SITE_SCHEME}://{primary_domain(tenant)}{port}{path}"


def deletion_open(tenant: Tenant) -> TenantDeletion | None:
    """The workspace's scheduled (or purging) deletion, if any."""
    return TenantDeletion.objects.filter(tenant_id=tenant.pk, status__in=OPEN_DELETION).order_by("-id").first()


def workspace_accepts_work(schema: str) -> bool:
    """False for a workspace scheduled for deletion, deleted or unknown: background work sent
    for it is dropped (syntera/celery.py)."""
    tenant = Tenant.all_objects.filter(schema_name=schema).first()
    return tenant is not None and tenant_accepts_work(tenant)


def tenant_accepts_work(tenant: Tenant) -> bool:
    """`workspace_accepts_work` of a row already read (a task's pre-run hook reads it)."""
    return tenant.deleted_at is None and tenant.purge_after is None


def tenant_export_list(tenant: Tenant) -> QuerySet[TenantExport]:
    return TenantExport.objects.filter(tenant_id=tenant.pk).order_by("-id")


def primary_domain(tenant: Tenant) -> str:
    domain = tenant.domains.filter(is_primary=True).first() or tenant.domains.first()
    return domain.domain if domain else ""


def tenant_domains(tenant: Tenant) -> list[str]:
    """The tenant's domain names, as stored (tombstones' too)."""
    return list(Domain.objects.filter(tenant_id=tenant.pk).values_list("domain", flat=True))


def tenant_hosts(tenant: Tenant) -> list[str]:
    """Every host name the tenant is served on: its domains, each also with `www.` (the host
    middleware serves `www.<domain>` as `<domain>`)."""
    if connection.schema_name != "public":
        connection.set_schema_to_public()
    domains = [d.lower() for d in Domain.objects.filter(tenant=tenant).values_list("domain", flat=True)]
    return domains + [f"www.{d}" for d in domains if not d.startswith("www.")]
