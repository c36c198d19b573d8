"""One-time login links: signup on the public host hands over to the dashboard on the tenant host."""

from __future__ import annotations

import secrets
from typing import Any

from django.core.cache import cache
from django_tenants.utils import schema_context

from apps.tenants.models import Tenant

from ..models import Membership, User
from .common import _sha256

LOGIN_LINK_SECONDS = 120


def login_link_create(*, user: User, tenant: Tenant) -> str:
    token = secrets.token_urlsafe(32)
    with schema_context("public"):
        cache.set(f"login-link:{_sha256(token)}", {"user": user.pk, "tenant": tenant.pk}, LOGIN_LINK_SECONDS)
    return token


def login_link_consume(*, token: str, tenant: Tenant) -> User | None:
    """The user a link was made for, once; None if unknown, used, expired or for another tenant."""
    with schema_context("public"):
        key = f"login-link:{_sha256(token or '')}"
        data: dict[str, Any] | None = cache.get(key)
        cache.delete(key)
    if not data or data.get("tenant") != tenant.pk:
        return None
    user = User.objects.filter(pk=data["user"], is_active=True).first()
    if user is None or not Membership.objects.filter(user=user, tenant=tenant).exists():
        return None
    return user
