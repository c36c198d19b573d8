"""API permissions: tenant membership + role for people, scopes for API keys."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .authentication import APIKeyPrincipal
from .models import Role
from .scopes import SAFE_METHODS, scopes_for_view


class IsTenantMember(BasePermission):
    """A person who belongs to the tenant, or an API key of the tenant with the view's scopes.

    Views declare `scope_resource` ("members", "api_keys", ... or a tuple of resources; see
    `apps.accounts.scopes.scopes_for_view`) and may declare `write_role` (the least role that
    may change things; default admin) and `read_role` (default viewer). A view that names no
    resource is refused to API keys, unless it declares `needs_no_scope = True` and the call
    only reads (`GET /me/`).
    """

    message = "You do not have access to this."

    def has_permission(self, request: Request, view: Any) -> bool:
        method = "GET" if getattr(view, "reads_only", False) else (request.method or "GET")
        tenant = getattr(request._request, "tenant", None)
        if tenant is None or not request.user or not request.user.is_authenticated:
            return False
        if not hasattr(view, (request.method or "").lower()):
            return True  # the view answers 405: nothing to guard
        if isinstance(request.user, APIKeyPrincipal):
            needed = scopes_for_view(view, method)
            if needed is None:
                if getattr(view, "needs_no_scope", False) and method in SAFE_METHODS:
                    return True
                self.message = "API keys cannot use this endpoint."
                return False
            missing = [scope for scope in needed if scope not in request.user.key.scopes]
            if missing:
                plural = "s" if len(missing) > 1 else ""
                self.message = f"This API key lacks the {', '.join(missing)} scope{plural}."
                return False
            return True
        membership = getattr(request._request, "membership", None)
        if membership is None or membership.tenant_id != tenant.pk:
            return False
        minimum = (
            getattr(view, "read_role", Role.VIEWER)
            if method in SAFE_METHODS
            else getattr(view, "write_role", Role.ADMIN)
        )
        if not membership.has_role(minimum):
            self.message = f"Your role ({membership.role}) cannot do this."
            return False
        return True
