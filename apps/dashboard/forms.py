from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib.auth.forms import PasswordResetForm
from django.template import loader

from apps.accounts.models import Role
from apps.accounts.scopes import ALL_SCOPES
from syntera.errors import ApplicationError


class SignupForm(forms.Form):
    company_name = forms.CharField(max_length=120, label="Company name")
    slug = forms.SlugField(max_length=40, label="Workspace address", help_text="Lowercase letters, digits, hyphens.")
    full_name = forms.CharField(max_length=150, label="Your name", required=False)
    email = forms.EmailField(max_length=254)


class ConfirmSignupForm(forms.Form):
    """The emailed link's page: the workspace (changeable, should its address have been taken
    meanwhile) and the password of the account."""

    company_name = forms.CharField(max_length=120, label="Company name")
    slug = forms.SlugField(max_length=40, label="Workspace address", help_text="Lowercase letters, digits, hyphens.")
    password = forms.CharField(widget=forms.PasswordInput, max_length=256, strip=False)


class LoginForm(forms.Form):
    email = forms.EmailField(max_length=254)
    password = forms.CharField(widget=forms.PasswordInput, max_length=256, strip=False)


class FindWorkspaceForm(forms.Form):
    slug = forms.SlugField(max_length=40, label="Workspace address")


class ProfileForm(forms.Form):
    full_name = forms.CharField(max_length=150, required=False, label="Your name")


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.AGENT)

    def __init__(self, *args: Any, roles: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if roles is not None:  # only the roles the inviter may grant are offered (or accepted)
            self.fields["role"].choices = [(v, label) for v, label in Role.choices if v in roles]  # type: ignore[attr-defined]


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class AcceptInvitationForm(forms.Form):
    full_name = forms.CharField(max_length=150, required=False, label="Your name")
    password = forms.CharField(widget=forms.PasswordInput, max_length=256, strip=False)


class APIKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in ALL_SCOPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unchecked for all of your own scopes.",
    )
    expires_at = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), label="Expires at (UTC)"
    )


def add_application_error(form: forms.Form, exc: ApplicationError) -> None:
    """Show a service's error on the form: field messages on their fields, else on top."""
    for field, messages in exc.fields.items():
        for message in messages:
            form.add_error(field if field in form.fields else None, message)
    if not exc.fields:
        form.add_error(None, exc.detail)


class TenantPasswordResetForm(PasswordResetForm):
    """Password reset on a tenant host: only that tenant's members get a link, and the email
    goes out from a Celery task after commit rather than inside the request."""

    tenant: Any = None

    def get_users(self, email: str) -> Iterator[Any]:
        for user in super().get_users(email):
            if self.tenant is not None and user.memberships.filter(tenant=self.tenant).exists():
                yield user

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict[str, Any],
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        from apps.accounts.tasks import send_email
        from syntera.tasks import enqueue_on_commit

        subject = "".join(loader.render_to_string(subject_template_name, context).splitlines())
        body = loader.render_to_string(email_template_name, context)
        enqueue_on_commit(send_email, subject, body, to_email)
