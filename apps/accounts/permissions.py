"""API permissions: tenant membership + role for people, scopes for API keys."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .authentication import APIKeyPrincipal
from .models import Role
from .scopes import scope_for

SAFE = {"GET", "HEAD", "OPTIONS"}


class IsTenantMember(BasePermission):
    """A person who belongs to the tenant, or an API key of the tenant with the view's scope.

    Views declare `scope_resource` ("members", "api_keys", ...) and may declare
    `write_role` (the least role that may change things; default admin) and `read_role`
    (default viewer).
    """

    message = "You do not have access to this."

    def has_permission(self, request: Request, view: Any) -> bool:
        # A view may declare `reads_only = True`: its POST (e.g. search) changes nothing, so
        # it needs read access only.
        method = "GET" if getattr(view, "reads_only", False) else (request.method or "GET")
        tenant = getattr(request._request, "tenant", None)
        if tenant is None or not request.user or not request.user.is_authenticated:
            return False
        if isinstance(request.user, APIKeyPrincipal):
            resource = getattr(view, "scope_resource", None)
            if resource is None:
                return True
            needed = scope_for(resource, method)
            if needed not in request.user.key.scopes:
                self.message = f"This API key lacks the {needed} scope."
                return False
            return True
        membership = getattr(request._request, "membership", None)
        if membership is None or membership.tenant_id != tenant.pk:
            return False
        minimum = getattr(view, "read_role", Role.VIEWER) if method in SAFE else getattr(view, "write_role", Role.ADMIN)
        if not membership.has_role(minimum):
            self.message = f"Your role ({membership.role}) cannot do this."
            return False
        return True
