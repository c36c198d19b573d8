"""Writes to tenants: signup (create tenant + schema + domain + owner), plans, slugs.

Deleting a workspace is in `deletion.py`, its export in `export.py`.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.db import transaction
from django_tenants.utils import schema_context, schema_exists

from syntera.errors import ApplicationError

from .models import Domain, Plan, Tenant
from .selectors import forget_host

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$")
RESERVED_SLUGS = frozenset(
    {
        "www",
        "api",
        "admin",
        "public",
        "app",
        "static",
        "media",
        "mail",
        "help",
        "status",
        "dashboard",
        "login",
        "signup",
        "syntera",
        "information_schema",
        "default",
        "test",
    }
)


def schema_name_for(slug: str) -> str:
    return slug.replace("-", "_")


def validate_slug(slug: str) -> str:
    """The slug, cleaned; refused when malformed, reserved or a system name (`pg*` are
    PostgreSQL's own schemas), or taken: by a workspace, by a deleted workspace's tombstone,
    or by any schema that exists in the database (a new workspace never adopts one)."""
    slug = (slug or "").strip().lower()
    if not SLUG_RE.match(slug) or "--" in slug:
        raise ApplicationError(
            "Use 3-40 lowercase letters, digits and single hyphens, starting with a letter.",
            code="invalid_slug",
            fields={"slug": ["Use 3-40 lowercase letters, digits and hyphens, starting with a letter."]},
        )
    schema = schema_name_for(slug)
    if slug in RESERVED_SLUGS or schema in RESERVED_SLUGS or slug.startswith("pg"):
        raise ApplicationError(
            "That workspace address is reserved.", code="slug_reserved", fields={"slug": ["This address is reserved."]}
        )
    known = Tenant.all_objects.filter(slug=slug).exists() or Tenant.all_objects.filter(schema_name=schema).exists()
    if known or schema_exists(schema):
        raise ApplicationError(
            "That workspace address is taken.",
            code="slug_taken",
            status_code=409,
            fields={"slug": ["This address is already taken."]},
        )
    return slug


def plan_default() -> Plan:
    plan = Plan.objects.filter(is_default=True).first()
    if plan is None:
        plan, _ = Plan.objects.get_or_create(
            code="starter", defaults={"name": "Starter", "max_members": 25, "max_api_keys": 25, "is_default": True}
        )
    return plan


def tenant_domain_for_slug(slug: str) -> str:
    return f"{slug}.{settings.TENANT_BASE_DOMAIN}"


@transaction.atomic
def tenant_create(*, name: str, slug: str, plan: Plan | None = None) -> Tenant:
    """Create a tenant with its schema (all tenant migrations applied) and primary domain.

    Runs in one transaction: if anything fails, no schema, row or domain is left behind.
    """
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ApplicationError(
            "Company name is required (at most 120 characters).", fields={"name": ["Required, at most 120 characters."]}
        )
    slug = validate_slug(slug)
    with schema_context("public"):
        tenant = Tenant(name=name, slug=slug, schema_name=schema_name_for(slug), plan=plan or plan_default())
        tenant.save()
        host = tenant_domain_for_slug(slug)
        Domain.objects.create(domain=host, tenant=tenant, is_primary=True)
        transaction.on_commit(lambda: forget_host(host))
    return tenant
