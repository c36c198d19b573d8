"""django-tenants: which apps live in the public schema and which in every tenant schema.

See docs/adr/0002-public-and-tenant-schemas.md.
"""

from .env import env_int

SHARED_APPS = [
    "daphne",  # `manage.py runserver` serves the ASGI app (WebSockets included)
    "apps.tenants",
    "apps.accounts",
    # No models: what is done to a whole workspace across the apps (demo, export, deletion).
    # Before django_tenants, whose own `create_tenant`/`delete_tenant` commands ours replace.
    "apps.workspaces",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    # After the admin: its admin templates assume every request has a tenant row.
    "django_tenants",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "channels",
    "apps.dashboard",
]

TENANT_APPS = [
    "django.contrib.contenttypes",
    "apps.events",
    "apps.audit",
    "apps.knowledge",
    "apps.crm",
    "apps.agents",
    "apps.conversations",
    "apps.routing",
]

INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
# Issue `SET search_path` only when the schema actually changes (tested: one per request).
TENANT_LIMIT_SET_CALLS = True

# Deleting a workspace (docs/adr/0015-workspace-deletion.md): days between the request (the
# workspace is switched off at once, restorable) and the purge of its data.
TENANT_DELETION_GRACE_DAYS = env_int("TENANT_DELETION_GRACE_DAYS", 14)
