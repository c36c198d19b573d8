"""Account background jobs. Each task only calls a service."""

from __future__ import annotations

from celery import shared_task
from django.core.mail import send_mail

from .services.invitations import invitation_send_email, invitations_expire
from .signup import signup_send_email, signups_expire


@shared_task(name="accounts.send_invitation_email", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_invitation_email(invitation_id: int, url: str) -> bool:
    return invitation_send_email(invitation_id=invitation_id, url=url)


@shared_task(name="accounts.expire_invitations")
def expire_invitations() -> int:
    return invitations_expire()


@shared_task(name="accounts.send_signup_email", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_signup_email(pending_id: int, url: str) -> bool:
    return signup_send_email(pending_id=pending_id, url=url)


@shared_task(name="accounts.expire_signups")
def expire_signups() -> int:
    return signups_expire()


@shared_task(name="accounts.send_email", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_email(subject: str, body: str, to: str) -> bool:
    """Send a plain-text email (password resets and other account notices)."""
    send_mail(subject=subject, message=body, from_email=None, recipient_list=[to])
    return True
