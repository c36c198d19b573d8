"""API authentication: API keys, tenant-bound JWTs and dashboard sessions.

Tenant rules (docs/adr/0003-tenant-resolution.md): an API key decides the tenant; on a
tenant host it must be that tenant's key. A JWT carries the tenant it was issued for and
is only accepted on that tenant's host, for a user who is still a member. A session is
only accepted on a host whose tenant the user belongs to.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication, get_authorization_header
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from apps.tenants.db import connection
from syntera.errors import check_rate
from syntera.observability import tenant_var, user_var

from .models import APIKey, Membership, User
from .selectors import membership_get
from .services.api_keys import api_key_authenticate


class APIKeyPrincipal:
    """The request.user of an API-key call: not a person, but answers the same questions."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False
    pk = None
    id = None
    email = ""

    def __init__(self, key: APIKey) -> None:
        self.key = key

    def __str__(self) -> str:
        return f"api-key:{self.key.public_id}"


def _bearer(request: Request) -> str | None:
    header = get_authorization_header(request).split()
    if len(header) != 2 or header[0].lower() != b"bearer":
        return None
    try:
        return header[1].decode()
    except UnicodeDecodeError as exc:
        raise exceptions.AuthenticationFailed("Malformed credentials.") from exc


def _set_tenant(request: Request, tenant: Any) -> None:
    request._request.tenant = tenant  # type: ignore[attr-defined]
    connection.set_tenant(tenant)
    tenant_var.set(tenant.schema_name)


class APIKeyAuthentication:
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        token = _bearer(request)
        if not token or not token.startswith(settings.API_KEY_PREFIX):
            return None
        key = api_key_authenticate(token)
        if key is None:
            # Failed guesses are limited per client address.
            check_rate(request._request, group="api-key-failures", rate=settings.RATELIMIT_API_AUTH_FAILURES)
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key.")
        host_tenant = getattr(request._request, "tenant", None)
        if host_tenant is not None and host_tenant.pk != key.tenant_id:
            raise exceptions.PermissionDenied("This API key belongs to another workspace.")
        _set_tenant(request, key.tenant)
        check_rate(
            request._request,
            group="api-key",
            rate=settings.RATELIMIT_API_KEY,
            key=lambda _g, _r: key.public_id,  # type: ignore[arg-type]
        )
        user_var.set(f"key:{key.public_id}")
        return APIKeyPrincipal(key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class TenantJWTAuthentication(JWTAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        token = _bearer(request)
        if not token or token.startswith(settings.API_KEY_PREFIX):
            return None
        try:
            validated = self.get_validated_token(token.encode())
        except (InvalidToken, TokenError) as exc:
            raise exceptions.AuthenticationFailed("Invalid or expired token.") from exc
        tenant = getattr(request._request, "tenant", None)
        if tenant is None or validated.get("tenant") != tenant.schema_name:
            raise exceptions.PermissionDenied("This token was issued for another workspace.")
        user = self.get_user(validated)
        assert isinstance(user, User)
        if not jwt_matches_password(token=validated, user=user):
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        membership = membership_get(user=user, tenant=tenant)
        if membership is None:
            raise exceptions.PermissionDenied("You are not a member of this workspace.")
        request._request.membership = membership  # type: ignore[attr-defined]
        user_var.set(str(user.pk))
        return user, validated


class TenantSessionAuthentication(SessionAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        membership = getattr(request._request, "membership", None)
        if membership is None:
            return None
        return result


def _password_stamp(user: User) -> str:
    # An HMAC of the password hash (Django's session check uses the same): a new password,
    # from a reset or from the proven owner taking over an unverified account, ends the JWTs
    # issued before it, as it ends sessions.
    return user.get_session_auth_hash()[:24]


def jwt_matches_password(*, token: Any, user: User) -> bool:
    return hmac.compare_digest(str(token.get("pwd", "")), _password_stamp(user))


def jwt_pair_for(*, user: User, membership: Membership) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    refresh["tenant"] = membership.tenant.schema_name
    refresh["pwd"] = _password_stamp(user)  # copied into every access token made from it
    return {"access": str(refresh.access_token), "refresh": str(refresh)}
