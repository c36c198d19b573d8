"""Attach the user's membership of the host's tenant; refuse sessions from other tenants."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

from syntera.observability import user_var
from syntera.realtime import disconnect_session

from .selectors import membership_get

SESSION_TENANT_KEY = "syntera_tenant"


def end_session(request: HttpRequest) -> None:
    """Log out and close the WebSockets opened with this session."""
    disconnect_session(request.session.session_key)
    logout(request)


class TenantMembershipMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.membership = None  # type: ignore[attr-defined]
        tenant = getattr(request, "tenant", None)
        user = request.user
        if user.is_authenticated:
            user_var.set(str(user.pk))
            session_tenant = request.session.get(SESSION_TENANT_KEY)
            here = tenant.schema_name if tenant is not None else "public"
            if session_tenant is None:
                # A session belongs to the host it was first used on.
                request.session[SESSION_TENANT_KEY] = here
            elif session_tenant != here:
                # A session cookie carried to another host is worthless there.
                end_session(request)
            if tenant is not None and request.user.is_authenticated:
                request.membership = membership_get(user=user, tenant=tenant)  # type: ignore[attr-defined]
        return self.get_response(request)
