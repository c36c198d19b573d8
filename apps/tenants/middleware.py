"""Resolve the tenant from the request host (docs/subsystems/tenancy.md).

Unlike django-tenants' stock middleware, the host → tenant lookup is served from the cache
when warm, so a request touches the database search path once: when the view first queries
the tenant's schema (`TENANT_LIMIT_SET_CALLS`). Public hosts (signup, public admin) get the
public URLconf; an unknown host gets a 404. A workspace scheduled for deletion answers only
what its owners and admins need meanwhile (GRACE_PATHS: log in, its settings page with the
export and the cancel button, and `/api/v1/tenant/`); everything else says it is going away.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, JsonResponse
from django.shortcuts import render
from django.urls import set_urlconf

from apps.tenants.db import connection
from syntera.errors import error_body
from syntera.observability import tenant_var

from .selectors import tenant_for_host

# What a workspace scheduled for deletion still serves (views check the roles as always).
GRACE_PATHS = (
    "/login/",
    "/logout/",
    "/static/",
    "/dashboard/workspace/",
    "/api/v1/auth/token/",
    "/api/v1/tenant/",
)


def is_public_host(host: str) -> bool:
    return host in settings.PUBLIC_HOSTS or host == settings.TENANT_BASE_DOMAIN


def _not_found(request: HttpRequest, detail: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", detail), status=404)
    return HttpResponseNotFound(detail.encode(), content_type="text/plain")


def _scheduled_for_deletion(request: HttpRequest, tenant: Any) -> HttpResponse:
    detail = (
        f"This workspace is scheduled for deletion on {tenant.purge_after:%Y-%m-%d %H:%M} UTC. "
        "Its owners and admins can download its export, and its owners can cancel the deletion, "
        "at /dashboard/workspace/."
    )
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("scheduled_for_deletion", detail), status=404)
    # The page shows no workspace navigation.
    request.tenant = None  # type: ignore[attr-defined]
    return render(request, "error.html", {"code": "scheduled_for_deletion", "detail": detail}, status=404)


class TenantHostMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        connection.set_schema_to_public()
        host = request.get_host().split(":")[0].lower()
        if host.startswith("www."):
            host = host[4:]
        tenant = tenant_for_host(host)
        if tenant is None:
            if not is_public_host(host):
                return _not_found(request, "No workspace is served at this address.")
            request.tenant = None  # type: ignore[attr-defined]
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
            set_urlconf(request.urlconf)
            return self.get_response(request)
        if tenant.deleted_at is not None:
            return _not_found(request, "This workspace was deleted.")
        if tenant.purge_after is not None and not request.path.startswith(GRACE_PATHS):
            return _scheduled_for_deletion(request, tenant)
        if not tenant.is_active and tenant.purge_after is None:
            return _not_found(request, "This workspace is not active.")
        request.tenant = tenant  # type: ignore[attr-defined]
        tenant.domain_url = host
        connection.set_tenant(tenant)
        tenant_var.set(tenant.schema_name)
        return self.get_response(request)
