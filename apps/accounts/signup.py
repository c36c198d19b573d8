"""Writes of the self-service signup: a pending signup, its confirmation email, and the
workspace created when the emailed link is followed (docs/subsystems/tenancy.md#signup).

Nothing is created for an address until its owner follows the link: no account that could
squat the address, no workspace. The answer to the signup form is the same whether or not an
account has the address; only the email's wording differs, and it is chosen when the email
is sent, in the worker, not while answering the form.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from apps.tenants.services import validate_slug
from syntera.errors import ApplicationError
from syntera.tasks import enqueue_on_commit

from .models import PendingSignup
from .selectors import account_state
from .services.common import _clean_email, _sha256
from .services.users import Signup, signup_company


def signup_confirm_url(*, token: str) -> str:
    port = "" if settings.SITE_PORT in (80, 443) else f":{settings.SITE_PORT}"
    return f"{settings.SITE_SCHEME}://{settings.TENANT_BASE_DOMAIN}{port}/signup/confirm/{token}/"


def _clean_company_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ApplicationError(
            "Company name is required (at most 120 characters).",
            fields={"company_name": ["Required, at most 120 characters."]},
        )
    return name


@transaction.atomic
def signup_request(*, company_name: str, slug: str, email: str, full_name: str = "") -> tuple[PendingSignup, str]:
    """Check the form (the company name, a free workspace address, an email's form), keep it as
    a pending signup and email the confirmation link after commit. Returns the pending signup
    and its one-time token (only its hash is stored)."""
    email = _clean_email(email)
    company_name = _clean_company_name(company_name)
    slug = validate_slug(slug)  # workspace addresses are public (they are host names)
    token = secrets.token_urlsafe(32)
    pending = PendingSignup.objects.create(
        email=email,
        company_name=company_name,
        slug=slug,
        full_name=(full_name or "").strip()[:150],
        token_hash=_sha256(token),
        expires_at=timezone.now() + timedelta(hours=settings.SIGNUP_CONFIRM_TTL_HOURS),
    )
    from .tasks import send_signup_email

    enqueue_on_commit(send_signup_email, pending.pk, signup_confirm_url(token=token))
    return pending, token


def signup_send_email(*, pending_id: int, url: str) -> bool:
    """Email a pending signup its confirmation link, worded for the address's account state.
    Runs in a Celery worker; False (nothing sent) when the signup was completed or expired."""
    pending = PendingSignup.objects.filter(pk=pending_id).first()
    if pending is None or pending.status != "pending":
        return False
    state = account_state(email=pending.email)
    expires = f"The link expires at {pending.expires_at:%Y-%m-%d %H:%M} UTC and works once."
    ignore = "If it wasn't you, ignore this email: nothing is created and nothing changes."
    if state == "new":
        subject = f"Confirm your email to create {pending.company_name} on Syntera"
        body = (
            f"Someone asked to create the workspace {pending.company_name} on Syntera with this address.\n\n"
            f"To confirm it is yours, open this link and choose a password:\n{url}\n\n{expires}\n\n{ignore}"
        )
    else:
        step = "enter your password" if state == "verified" else "choose a password for your account"
        subject = f"Add {pending.company_name} to your Syntera account"
        body = (
            f"Someone asked to create the workspace {pending.company_name} on Syntera with this address, "
            "which already has a Syntera account.\n\n"
            f"To add the workspace to your account, open this link and {step}:\n{url}\n\n"
            f'Forgot your password? Use "Forgot password" on the login page of one of your workspaces.\n\n'
            f"{expires}\n\n{ignore}"
        )
    send_mail(subject=subject, message=body, from_email=None, recipient_list=[pending.email])
    return True


def signup_get_pending(*, token: str) -> PendingSignup:
    pending = PendingSignup.objects.filter(token_hash=_sha256(token or "")).first()
    if pending is None:
        raise ApplicationError("This confirmation link is not valid.", code="signup_link_invalid", status_code=404)
    if pending.status == "completed":
        raise ApplicationError(
            "This confirmation link has already been used. Log in to your workspace.",
            code="signup_link_used",
            status_code=410,
        )
    if pending.status == "expired":
        raise ApplicationError(
            "This confirmation link has expired. Sign up again for a new one.",
            code="signup_link_expired",
            status_code=410,
        )
    return pending


@transaction.atomic
def signup_confirm(*, token: str, password: str, company_name: str, slug: str) -> Signup:
    """Follow a confirmation link: the address is proven, so create the workspace and its owner
    (`signup_company`: a new account, a claimed unverified one, or a verified one that gives its
    password). The name and address may differ from the pending signup's (one taken meanwhile
    is chosen again). Nothing is written if anything fails; the link then still works."""
    pending = signup_get_pending(token=token)
    pending = PendingSignup.objects.select_for_update().get(pk=pending.pk)
    if pending.completed_at:  # followed twice at once: the first one won
        raise ApplicationError(
            "This confirmation link has already been used.", code="signup_link_used", status_code=410
        )
    result = signup_company(
        company_name=_clean_company_name(company_name),
        slug=slug,
        email=pending.email,
        password=password,
        full_name=pending.full_name,
    )
    pending.completed_at = timezone.now()
    pending.tenant = result.tenant
    pending.save(update_fields=["completed_at", "tenant"])
    return result


def signups_expire() -> int:
    """Delete pending signups a week past their expiry (used or not): their links are dead, and
    the addresses and names they hold are no longer needed."""
    cutoff = timezone.now() - timedelta(days=7)
    deleted, _ = PendingSignup.objects.filter(expires_at__lt=cutoff).delete()
    return deleted
