"""The workspace admin (`/admin/` on a tenant's host): that tenant's data only, read-only, for
its owners and admins. The registrations are in the modules beside this one, one per app.

The operator admin (`django.contrib.admin.site`, `/admin/` on the public host) is for platform
operators and manages tenants, domains, plans and accounts (tenants.py, accounts.py).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from apps.accounts.models import Role
from syntera.errors import check_password_rate


class TenantAdminSite(admin.AdminSite):
    site_header = "Syntera workspace admin"
    site_title = "Syntera admin"
    index_title = "Workspace data"

    def has_permission(self, request: HttpRequest) -> bool:
        membership = getattr(request, "membership", None)
        return bool(membership and request.user.is_active and membership.has_role(Role.ADMIN))

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # No password form here: the dashboard's login (rate limited) is the only one.
        return redirect(f"/login/?next={request.get_full_path()}")

    def password_change(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        if request.method == "POST" and request.user.is_authenticated:  # the old password is checked
            check_password_rate(request, account=request.user.get_username())
        return super().password_change(request, extra_context)


tenant_admin_site = TenantAdminSite(name="tenant_admin")


class TenantScopedAdmin(admin.ModelAdmin):
    """Role-based permissions instead of Django's per-model ones; rows of this tenant only."""

    tenant_field: str | None = "tenant"
    editable = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        if self.tenant_field:
            qs = qs.filter(**{self.tenant_field: request.tenant})  # type: ignore[attr-defined]
        return qs

    def _is_admin(self, request: HttpRequest) -> bool:
        return tenant_admin_site.has_permission(request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._is_admin(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_admin(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TenantScopedInline(admin.TabularInline):  # type: ignore[type-arg]
    """A read-only inline of the workspace admin, seen by those who see the admin."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return tenant_admin_site.has_permission(request)
