"""Invitations: create (emailed after commit), look up by token, accept, revoke, expire."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_action, audit_record
from apps.tenants.models import Tenant
from syntera.errors import ApplicationError
from syntera.tasks import enqueue_on_commit

from ..models import Invitation, Membership, Role, User
from .actors import Actor, _guard_role_grant
from .common import _check_password, _clean_email, _role, _sha256
from .users import _account_claim, user_mark_email_verified


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
    from ..tasks import send_invitation_email

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
