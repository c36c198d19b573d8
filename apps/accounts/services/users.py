"""Accounts and the workspaces they own: signup with a proven address, operator-created
tenants, verified addresses, renaming a workspace.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.audit.services import audit_action
from apps.tenants.models import Tenant
from apps.tenants.selectors import forget_host
from apps.tenants.services import tenant_create
from syntera.errors import ApplicationError

from ..models import Membership, Role, User
from .actors import Actor
from .common import _check_password, _clean_email


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
