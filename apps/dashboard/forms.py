from __future__ import annotations

from django import forms

from apps.accounts.models import Role
from apps.accounts.scopes import ALL_SCOPES
from syntera.errors import ApplicationError


class SignupForm(forms.Form):
    company_name = forms.CharField(max_length=120, label="Company name")
    slug = forms.SlugField(max_length=40, label="Workspace address", help_text="Lowercase letters, digits, hyphens.")
    full_name = forms.CharField(max_length=150, label="Your name", required=False)
    email = forms.EmailField(max_length=254)
    password = forms.CharField(widget=forms.PasswordInput, max_length=256, strip=False)


class LoginForm(forms.Form):
    email = forms.EmailField(max_length=254)
    password = forms.CharField(widget=forms.PasswordInput, max_length=256, strip=False)


class FindWorkspaceForm(forms.Form):
    slug = forms.SlugField(max_length=40, label="Workspace address")


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.AGENT)


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
        help_text="Leave all unchecked for every scope.",
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
