"""Writes to accounts: users, memberships, invitations, API keys, one-time login links.

Every change that matters to a tenant is written to that tenant's audit trail.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.audit.services import audit_action, audit_record
from apps.tenants.models import Tenant
from apps.tenants.selectors import forget_host
from apps.tenants.services import tenant_create
from syntera import realtime
from syntera.errors import ApplicationError
from syntera.tasks import enqueue_on_commit

from .models import ROLE_RANK, APIKey, Invitation, Membership, Role, User
from .scopes import ALL_SCOPES, ROLE_SCOPES


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _clean_email(email: str) -> str:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ApplicationError(
            "Enter a valid email address.", fields={"email": ["Enter a valid email address."]}
        ) from exc
    return email


def _check_password(password: str, user: User | None = None) -> None:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ApplicationError(
            "Choose a stronger password.", code="weak_password", fields={"password": list(exc.messages)}
        ) from exc


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError as exc:
        raise ApplicationError(
            f"Unknown role {role!r}.", fields={"role": [f"Choose one of: {', '.join(Role.values)}."]}
        ) from exc


def user_mark_email_verified(*, user: User) -> None:
    """Record that `user` proved they receive mail at their address (they followed a link sent
    to it, or an operator vouched for it). From then on the address counts as theirs."""
    if user.email_verified_at is None:
        user.email_verified_at = timezone.now()
        User.objects.filter(pk=user.pk).update(email_verified_at=user.email_verified_at)


def _account_claim(*, user: User, password: str) -> None:
    """The proven owner of an unverified account's address takes it over: their password
    replaces whatever was set before the address was proven, which also ends the sessions
    opened with the old one (Django checks the password hash on every request)."""
    user.set_password(password)
    user.email_verified_at = timezone.now()
    user.save(update_fields=["password", "email_verified_at"])


@dataclass(frozen=True)
class Signup:
    tenant: Tenant
    user: User


def _owned_tenant(*, name: str, slug: str, email: str, password: str, full_name: str, user: User | None) -> Signup:
    """Create the tenant, then (if needed) the owner's account, the membership and the audit."""
    tenant = tenant_create(name=name, slug=slug)
    if user is None:
        user = User.objects.create_user(email=email, password=password, full_name=full_name[:150])
    Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)
    audit_action(
        Actor(tenant=tenant, role=Role.OWNER, user=user, label=user.email),
        "tenant.created",
        tenant,
        {"slug": tenant.slug},
    )
    return Signup(tenant=tenant, user=user)


@transaction.atomic
def signup_company(*, company_name: str, slug: str, email: str, password: str, full_name: str = "") -> Signup:
    """A tenant (schema, domain) and its owner, in one transaction, for an address already
    proven: the public signup calls it only once its emailed link is followed
    (`apps.accounts.signup.signup_confirm`).

    A new account gets `password`. An unverified account is claimed with it (the proven owner
    of the address replaces a password set by whoever made the account). A verified account
    adds a company by proving its password.
    """
    email = _clean_email(email)
    user = User.objects.filter(email=email).first()
    if user is None or user.email_verified_at is None:
        _check_password(password, user or User(email=email, full_name=full_name))
    elif not user.check_password(password):
        raise ApplicationError(
            "Enter the password of your existing account.",
            code="invalid_credentials",
            status_code=403,
            fields={"password": ["Wrong password for this account."]},
        )
    result = _owned_tenant(name=company_name, slug=slug, email=email, password=password, full_name=full_name, user=user)
    if user is not None and user.email_verified_at is None:
        _account_claim(user=user, password=password)
    user_mark_email_verified(user=result.user)
    return result


@transaction.atomic
def tenant_create_with_owner(
    *, name: str, slug: str, owner_email: str, password: str | None = None, full_name: str = ""
) -> tuple[Signup, str | None]:
    """Operator path (commands): like signup, but an existing account is simply made owner,
    and a new one gets `password` or a generated one, which is returned. A new account counts
    as verified: the operator vouches for the address."""
    email = _clean_email(owner_email)
    user = User.objects.filter(email=email).first()
    generated = None
    if user is None:
        if password is None:
            password = generated = secrets.token_urlsafe(12)
        _check_password(password, User(email=email, full_name=full_name))
    result = _owned_tenant(name=name, slug=slug, email=email, password=password or "", full_name=full_name, user=user)
    if user is None:
        user_mark_email_verified(user=result.user)
    return result, generated


@dataclass(frozen=True)
class Actor:
    """Who is acting on a tenant: a member (their role, and that role's scopes) or an API key
    (admin rank, narrowed to its own scopes). Services check roles and scopes against this,
    never the edge; nobody can grant more than the actor holds (docs/adr/0013-scopes-bound-grants.md).

    `granted_scopes` None means "what the role allows" (`ROLE_SCOPES`): a member, a command.
    """

    tenant: Tenant
    role: str
    user: User | None = None
    label: str = ""
    ip: str | None = None
    membership_id: int | None = None
    granted_scopes: frozenset[str] | None = None
    key: APIKey | None = None

    @classmethod
    def for_membership(cls, membership: Membership, ip: str | None = None) -> Actor:
        return cls(
            tenant=membership.tenant,
            role=membership.role,
            user=membership.user,
            label=membership.user.email,
            ip=ip,
            membership_id=membership.pk,
        )

    @classmethod
    def for_api_key(cls, key: APIKey, ip: str | None = None) -> Actor:
        return cls(
            tenant=key.tenant,
            role=Role.ADMIN,
            label=f"api-key:{key.name} ({key.public_id})",
            ip=ip,
            granted_scopes=frozenset(key.scopes),
            key=key,
        )

    @property
    def scopes(self) -> frozenset[str]:
        if self.granted_scopes is not None:
            return self.granted_scopes
        return frozenset(ROLE_SCOPES.get(self.role, ()))

    def has_role(self, minimum: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(minimum)]

    def require_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            who = "This API key" if self.key is not None else f"Your role ({self.role})"
            raise ApplicationError(f"{who} lacks the {scope} scope.", code="permission_denied", status_code=403)


def _beyond_actor(*, actor: Actor, role: str) -> str | None:
    """Why `actor` may not give (or manage someone with) `role`; None when it may. A role
    is within reach of an actor who ranks at least as high and holds every one of its scopes;
    the owner role is within reach of owners only."""
    if role == Role.OWNER and actor.role != Role.OWNER:
        return "only an owner can grant or change the owner role"
    if ROLE_RANK[Role(role)] > ROLE_RANK[Role(actor.role)]:
        return f"the {role} role ranks above yours ({actor.role})"
    beyond = sorted(set(ROLE_SCOPES[role]) - actor.scopes)
    if beyond:
        return f"the {role} role has scopes you lack ({', '.join(beyond)})"
    return None


def roles_within_reach(*, actor: Actor) -> list[str]:
    """The roles `actor` may invite or set (and the members it may change), highest first."""
    return [role for role in reversed(Role.values) if _beyond_actor(actor=actor, role=role) is None]


def _guard_role_grant(*, actor: Actor, role: str) -> None:
    reason = _beyond_actor(actor=actor, role=role)
    if reason:
        detail = f"You cannot grant the {role} role: {reason}."
        raise ApplicationError(detail, code="permission_denied", status_code=403, fields={"role": [detail]})


def _guard_member_change(*, actor: Actor, target: Membership, new_role: str | None) -> None:
    if not actor.has_role(Role.ADMIN):
        raise ApplicationError("Only owners and admins manage members.", code="permission_denied", status_code=403)
    actor.require_scope("members:write")
    touching_owner = target.role == Role.OWNER or new_role == Role.OWNER
    if touching_owner and actor.role != Role.OWNER:
        raise ApplicationError(
            "Only an owner can grant or change the owner role.", code="permission_denied", status_code=403
        )
    if target.role == Role.OWNER and new_role != Role.OWNER:
        owners = Membership.objects.filter(tenant=target.tenant, role=Role.OWNER).count()
        if owners <= 1:
            raise ApplicationError("A workspace needs at least one owner.", code="last_owner", status_code=409)
    # Nobody changes or removes a member who has more access than they do, nor grants more.
    reason = _beyond_actor(actor=actor, role=target.role)
    if reason:
        raise ApplicationError(f"You cannot change this member: {reason}.", code="permission_denied", status_code=403)
    if new_role is not None:
        _guard_role_grant(actor=actor, role=new_role)


@transaction.atomic
def membership_set_role(*, actor: Actor, membership: Membership, role: str) -> Membership:
    new_role = _role(role)
    _guard_member_change(actor=actor, target=membership, new_role=new_role)
    old = membership.role
    membership.role = new_role
    membership.save(update_fields=["role"])
    audit_action(
        actor, "member.role_changed", membership, {"email": membership.user.email, "from": old, "to": new_role}
    )
    return membership


@transaction.atomic
def membership_remove(*, actor: Actor, membership: Membership) -> None:
    if actor.membership_id != membership.pk:
        _guard_member_change(actor=actor, target=membership, new_role=None)
    elif (
        membership.role == Role.OWNER
        and Membership.objects.filter(tenant=membership.tenant, role=Role.OWNER).count() <= 1
    ):
        raise ApplicationError("A workspace needs at least one owner.", code="last_owner", status_code=409)
    audit_action(actor, "member.removed", membership, {"email": membership.user.email, "role": membership.role})
    realtime.disconnect_user(membership.tenant.schema_name, membership.user_id)
    membership.delete()


# --- invitations ---------------------------------------------------------------------------


def invitation_url(*, tenant: Tenant, token: str) -> str:
    from apps.tenants.selectors import primary_domain

    port = "" if settings.SITE_PORT in (80, 443) else f":{settings.SITE_PORT}"
    return f"{settings.SITE_SCHEME}://{primary_domain(tenant)}{port}/invite/{token}/"


@transaction.atomic
def invitation_create(*, actor: Actor, email: str, role: str = Role.AGENT) -> tuple[Invitation, str]:
    """Invite `email` to the actor's tenant. Returns the invitation and its one-time token.

    The invitation email is sent by a Celery task after commit.
    """
    tenant = actor.tenant
    if not actor.has_role(Role.ADMIN):
        raise ApplicationError("Only owners and admins invite members.", code="permission_denied", status_code=403)
    actor.require_scope("invitations:write")
    email = _clean_email(email)
    new_role = _role(role)
    _guard_role_grant(actor=actor, role=new_role)
    if Membership.objects.filter(tenant=tenant, user__email=email).exists():
        raise ApplicationError(
            "This person is already a member.",
            code="already_member",
            status_code=409,
            fields={"email": ["Already a member of this workspace."]},
        )
    plan = tenant.plan
    if plan is not None:
        pending = Invitation.objects.filter(
            tenant=tenant, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
        ).count()
        if Membership.objects.filter(tenant=tenant).count() + pending >= plan.max_members:
            raise ApplicationError(f"Your plan allows {plan.max_members} members.", code="plan_limit", status_code=409)
    # A new invitation to the same address replaces the pending one.
    Invitation.objects.filter(tenant=tenant, email=email, accepted_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        tenant=tenant,
        email=email,
        role=new_role,
        token_hash=_sha256(token),
        invited_by=actor.user,
        expires_at=timezone.now() + timedelta(hours=settings.INVITATION_TTL_HOURS),
    )
    audit_action(actor, "invitation.created", invitation, {"email": email, "role": new_role})
    from .tasks import send_invitation_email

    enqueue_on_commit(send_invitation_email, invitation.pk, invitation_url(tenant=tenant, token=token))
    return invitation, token


def invitation_send_email(*, invitation_id: int, url: str) -> bool:
    """Email a pending invitation its link and note it in the tenant's audit trail.

    Runs in a Celery worker, inside the inviting tenant's schema. Returns False (sends
    nothing) when the invitation was revoked, accepted or expired in the meantime.
    """
    invitation = Invitation.objects.select_related("tenant", "invited_by").filter(pk=invitation_id).first()
    if invitation is None or invitation.status != "pending":
        return False
    inviter = invitation.invited_by.email if invitation.invited_by else "A teammate"
    send_mail(
        subject=f"You're invited to {invitation.tenant.name} on Syntera",
        message=(
            f"{inviter} invited you to join {invitation.tenant.name} on Syntera as {invitation.role}.\n\n"
            f"Accept the invitation: {url}\n\n"
            f"The link expires at {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
        ),
        from_email=None,
        recipient_list=[invitation.email],
    )
    audit_record(
        tenant=invitation.tenant,
        action="invitation.email_sent",
        actor_label="system",
        target=invitation,
        data={"email": invitation.email},
    )
    return True


def invitation_get_pending(*, token: str) -> Invitation:
    invitation = Invitation.objects.select_related("tenant").filter(token_hash=_sha256(token or "")).first()
    if invitation is None or invitation.status == "revoked":
        raise ApplicationError("This invitation link is not valid.", code="invitation_invalid", status_code=404)
    if invitation.status == "accepted":
        raise ApplicationError("This invitation has already been used.", code="invitation_used", status_code=410)
    if invitation.status == "expired":
        raise ApplicationError(
            "This invitation has expired. Ask for a new one.", code="invitation_expired", status_code=410
        )
    return invitation


@transaction.atomic
def invitation_accept(
    *, token: str, tenant: Tenant, password: str, full_name: str = "", user: User | None = None
) -> Membership:
    """Accept an invitation on its tenant's host.

    A new person sets a password; an existing account proves it with its password (or is
    already logged in as the invited address).
    """
    invitation = invitation_get_pending(token=token)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.tenant_id != tenant.pk:
        raise ApplicationError("This invitation link is not valid.", code="invitation_invalid", status_code=404)
    if invitation.accepted_at:
        raise ApplicationError("This invitation has already been used.", code="invitation_used", status_code=410)
    existing = User.objects.filter(email=invitation.email).first()
    if user is not None and user.is_authenticated and user.email != invitation.email:
        raise ApplicationError(
            f"This invitation is for {invitation.email}. Log out and open the link again.",
            code="invitation_wrong_user",
            status_code=403,
        )
    # Following the emailed link proves the address: a new account, or an unverified one (which
    # its real owner claims with a password of their own), never needs an earlier password.
    if existing is None:
        _check_password(password, User(email=invitation.email, full_name=full_name))
        existing = User.objects.create_user(email=invitation.email, password=password, full_name=full_name[:150])
    elif user is not None and user.pk == existing.pk:
        pass
    elif existing.email_verified_at is None:
        _check_password(password, existing)
        _account_claim(user=existing, password=password)
    elif not existing.check_password(password):
        raise ApplicationError(
            "Enter the password of your existing account.",
            code="invalid_credentials",
            status_code=403,
            fields={"password": ["Wrong password for this account."]},
        )
    user_mark_email_verified(user=existing)
    membership, _ = Membership.objects.get_or_create(user=existing, tenant=tenant, defaults={"role": invitation.role})
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    audit_action(
        Actor(tenant=tenant, role=membership.role, user=existing, label=existing.email),
        "invitation.accepted",
        invitation,
        {"email": invitation.email, "role": membership.role},
    )
    return membership


@transaction.atomic
def invitation_revoke(*, actor: Actor, invitation: Invitation) -> Invitation:
    if not actor.has_role(Role.ADMIN):
        raise ApplicationError("Only owners and admins manage invitations.", code="permission_denied", status_code=403)
    actor.require_scope("invitations:write")
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        audit_action(actor, "invitation.revoked", invitation, {"email": invitation.email})
    return invitation


def invitations_expire() -> int:
    """Mark long-expired pending invitations revoked so their tokens can never be replayed."""
    cutoff = timezone.now() - timedelta(days=30)
    return Invitation.objects.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__lt=cutoff).update(
        revoked_at=timezone.now()
    )


# --- API keys ------------------------------------------------------------------------------


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


# --- one-time login links (signup on the public host → dashboard on the tenant host) ------


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


@transaction.atomic
def workspace_rename(*, actor: Actor, name: str) -> Tenant:
    if not actor.has_role(Role.ADMIN):
        raise ApplicationError(
            "Only owners and admins change workspace settings.", code="permission_denied", status_code=403
        )
    actor.require_scope("tenant:write")
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ApplicationError(
            "Name is required (at most 120 characters).", fields={"name": ["Required, at most 120 characters."]}
        )
    tenant = actor.tenant
    old = tenant.name
    with schema_context("public"):
        Tenant.objects.filter(pk=tenant.pk).update(name=name)
        hosts = list(tenant.domains.values_list("domain", flat=True))

    def forget() -> None:
        for host in hosts:
            forget_host(host)

    transaction.on_commit(forget)
    tenant.name = name
    audit_action(actor, "tenant.renamed", tenant, {"from": old, "to": name})
    return tenant
