"""Reads of accounts, memberships, invitations and API keys; always scoped to one tenant."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.tenants.models import Tenant

from .models import APIKey, Invitation, Membership, User


def membership_get(*, user: User, tenant: Tenant | None) -> Membership | None:
    if tenant is None or not user.is_authenticated or not user.is_active:
        return None
    return Membership.objects.filter(user=user, tenant=tenant).select_related("tenant").first()


def membership_list(*, tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.filter(tenant=tenant).select_related("user").order_by("id")


def invitation_list(*, tenant: Tenant) -> QuerySet[Invitation]:
    return Invitation.objects.filter(tenant=tenant).select_related("invited_by").order_by("-id")


def api_key_list(*, tenant: Tenant) -> QuerySet[APIKey]:
    return APIKey.objects.filter(tenant=tenant).select_related("created_by").order_by("-id")


def tenants_for_user(*, user: User) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user, tenant__is_active=True).select_related("tenant").order_by("tenant__name")
    )


def account_state(*, email: str) -> str:
    """ "new" (no account has the address), "verified" or "unverified". Only for someone who
    proved they receive mail at the address (a confirmation or invitation link, the email
    itself): elsewhere the answer would tell strangers who has an account."""
    user = User.objects.filter(email=email).first()
    if user is None:
        return "new"
    return "verified" if user.email_verified_at else "unverified"
