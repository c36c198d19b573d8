"""API keys: create (bounded by the creator's scopes and expiry), revoke with every key they
created, authenticate a presented key.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.audit.services import audit_action
from syntera.errors import ApplicationError

from ..models import APIKey, Role
from ..scopes import ALL_SCOPES
from .actors import Actor
from .common import _sha256


def _clean_scopes(scopes: list[str] | None) -> list[str] | None:
    """The requested scopes, known and de-duplicated; None when none were asked for."""
    if not scopes:
        return None
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise ApplicationError(
            f"Unknown scopes: {', '.join(unknown)}.", fields={"scopes": [f"Choose from: {', '.join(ALL_SCOPES)}."]}
        )
    return sorted(set(scopes))


def _bounded_key_grant(
    *, actor: Actor, scopes: list[str] | None, expires_at: datetime | None
) -> tuple[list[str], datetime | None]:
    """A new key gets at most the creator's scopes, and never outlives a creating key."""
    if scopes is None:
        scopes = sorted(actor.scopes & set(ALL_SCOPES))
    beyond = sorted(set(scopes) - actor.scopes)
    if beyond:
        detail = f"A key cannot have scopes its creator lacks: {', '.join(beyond)}."
        raise ApplicationError(detail, code="permission_denied", status_code=403, fields={"scopes": [detail]})
    limit = actor.key.expires_at if actor.key is not None else None
    if limit is not None:
        if expires_at is None:
            expires_at = limit
        elif expires_at > limit:
            detail = f"A key cannot outlive the key that creates it (expires {limit.isoformat()})."
            raise ApplicationError(detail, code="permission_denied", status_code=403, fields={"expires_at": [detail]})
    return scopes, expires_at


@transaction.atomic
def api_key_create(
    *, actor: Actor, name: str, scopes: list[str] | None = None, expires_at: datetime | None = None
) -> tuple[APIKey, str]:
    """Create a key and return it with its secret, which is never stored or shown again.

    No scopes means the creator's own scopes; asking for more is refused, and a key made by
    a key expires no later than it (and is revoked with it).
    """
    tenant = actor.tenant
    if not actor.has_role(Role.ADMIN):
        raise ApplicationError("Only owners and admins manage API keys.", code="permission_denied", status_code=403)
    actor.require_scope("api_keys:write")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ApplicationError(
            "Name is required (at most 100 characters).", fields={"name": ["Required, at most 100 characters."]}
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("Expiry must be in the future.", fields={"expires_at": ["Must be in the future."]})
    granted, expires_at = _bounded_key_grant(actor=actor, scopes=_clean_scopes(scopes), expires_at=expires_at)
    plan = tenant.plan
    if plan is not None:
        active = APIKey.objects.filter(tenant=tenant, revoked_at__isnull=True).count()
        if active >= plan.max_api_keys:
            raise ApplicationError(
                f"Your plan allows {plan.max_api_keys} active keys.", code="plan_limit", status_code=409
            )
    public_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    raw = f"{settings.API_KEY_PREFIX}{public_id}_{secret}"
    key = APIKey.objects.create(
        tenant=tenant,
        name=name,
        public_id=public_id,
        key_hash=_sha256(raw),
        scopes=granted,
        expires_at=expires_at,
        created_by=actor.user,
        created_by_key=actor.key,
    )
    audit_action(actor, "api_key.created", key, {"name": name, "scopes": key.scopes, "public_id": public_id})
    return key, raw


@transaction.atomic
def api_key_revoke(*, actor: Actor, key: APIKey) -> APIKey:
    """Revoke a key, and with it every key it created (and they created), at once."""
    if not actor.has_role(Role.ADMIN) or key.tenant_id != actor.tenant.pk:
        raise ApplicationError("Only owners and admins manage API keys.", code="permission_denied", status_code=403)
    actor.require_scope("api_keys:write")
    now = timezone.now()
    pending, seen = [key], {key.pk}
    while pending:
        current = pending.pop()
        if current.revoked_at is None:
            current.revoked_at = now
            current.save(update_fields=["revoked_at"])
            data = {"name": current.name, "public_id": current.public_id}
            if current.pk != key.pk:
                data["with"] = key.public_id
            audit_action(actor, "api_key.revoked", current, data)
        children = APIKey.objects.filter(tenant_id=key.tenant_id, created_by_key=current).exclude(pk__in=seen)
        for child in children:
            seen.add(child.pk)
            pending.append(child)
    return key


def api_key_authenticate(raw: str) -> APIKey | None:
    """The active key matching `raw`, or None. Constant-time secret comparison."""
    prefix = settings.API_KEY_PREFIX
    if not raw.startswith(prefix) or len(raw) > 200:
        return None
    public_id, _, secret = raw[len(prefix) :].partition("_")
    if not public_id or not secret:
        return None
    with schema_context("public"):
        key = APIKey.objects.select_related("tenant").filter(public_id=public_id).first()
    if key is None or not hmac.compare_digest(key.key_hash, _sha256(raw)):
        return None
    if not key.is_active or not key.tenant.is_active:
        return None
    now = timezone.now()
    # Write last-used at most once a minute per key; it is informative, not a counter.
    if key.last_used_at is None or now - key.last_used_at > timedelta(seconds=60):
        APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key
