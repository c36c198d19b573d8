"""Account background jobs: invitation emails, invitation expiry."""

from __future__ import annotations

from celery import shared_task
from django.core.mail import send_mail

from .models import Invitation
from .services import invitations_expire


@shared_task(name="accounts.send_invitation_email", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_invitation_email(invitation_id: int, url: str) -> bool:
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
    return True


@shared_task(name="accounts.expire_invitations")
def expire_invitations() -> int:
    return invitations_expire()


@shared_task(name="accounts.send_email", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_email(subject: str, body: str, to: str) -> bool:
    """Send a plain-text email (password resets and other account notices)."""
    send_mail(subject=subject, message=body, from_email=None, recipient_list=[to])
    return True
