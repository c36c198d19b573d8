"""Reads of public tenant data."""

from __future__ import annotations

import contextlib

from django.core.cache import cache

from apps.tenants.db import connection

from .models import Domain, Tenant

HOST_CACHE_SECONDS = 60


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
    return Tenant.objects.filter(slug=slug).exclude(schema_name="public").first()


def primary_domain(tenant: Tenant) -> str:
    domain = tenant.domains.filter(is_primary=True).first() or tenant.domains.first()
    return domain.domain if domain else ""


def tenant_hosts(tenant: Tenant) -> list[str]:
    """Every host name the tenant is served on: its domains, each also with `www.` (the host
    middleware serves `www.<domain>` as `<domain>`)."""
    if connection.schema_name != "public":
        connection.set_schema_to_public()
    domains = [d.lower() for d in Domain.objects.filter(tenant=tenant).values_list("domain", flat=True)]
    return domains + [f"www.{d}" for d in domains if not d.startswith("www.")]
