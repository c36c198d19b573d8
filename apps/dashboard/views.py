"""Tenant dashboard pages: login, overview, members and invitations, API keys, audit log."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordChangeForm
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.accounts import selectors, services
from apps.accounts.middleware import SESSION_TENANT_KEY, end_session
from apps.accounts.models import Role
from apps.audit.selectors import audit_event_list
from syntera.errors import (
    ApplicationError,
    check_account_rate,
    check_password_rate,
    check_password_reset_rate,
    check_rate,
)

from .forms import (
    AcceptInvitationForm,
    APIKeyForm,
    InviteForm,
    LoginForm,
    ProfileForm,
    RoleForm,
    TenantPasswordResetForm,
    add_application_error,
)

View = Callable[..., HttpResponse]


def member_required(minimum: str = Role.VIEWER) -> Callable[[View], View]:
    """Page needs a logged-in member of this host's tenant with at least `minimum` role."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = getattr(request, "membership", None)
            if membership is None:
                if request.user.is_authenticated:
                    end_session(request)
                return redirect(f"{settings.LOGIN_URL}?next={request.path}")
            if not membership.has_role(minimum):
                return render(
                    request,
                    "error.html",
                    {"code": "permission_denied", "detail": f"Your role ({membership.role}) cannot open this page."},
                    status=403,
                )
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def _actor(request: HttpRequest) -> services.Actor:
    return services.Actor.for_membership(request.membership, ip=request.META.get("REMOTE_ADDR"))  # type: ignore[attr-defined]


def _login(request: HttpRequest, user: Any) -> None:
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session[SESSION_TENANT_KEY] = request.tenant.schema_name  # type: ignore[attr-defined]


def login_view(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request.POST or None)
    next_url = request.POST.get("next") or request.GET.get("next") or "/dashboard/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/dashboard/"
    if request.method == "POST":
        check_password_rate(request, account=request.POST.get("email"))
        if form.is_valid():
            user = authenticate(
                request, email=form.cleaned_data["email"].lower(), password=form.cleaned_data["password"]
            )
            if user is not None and selectors.membership_get(user=user, tenant=request.tenant) is not None:  # type: ignore[attr-defined]
                _login(request, user)
                return HttpResponseRedirect(next_url)
            form.add_error(None, "Wrong email or password for this workspace.")
    return render(
        request,
        "dashboard/login.html",
        {"form": form, "next": next_url},
        status=400 if request.method == "POST" else 200,
    )


def login_link(request: HttpRequest) -> HttpResponse:
    check_rate(request, group="login-link", rate=settings.RATELIMIT_PUBLIC)
    user = services.login_link_consume(token=request.GET.get("token", ""), tenant=request.tenant)  # type: ignore[attr-defined]
    if user is None:
        messages.error(request, "That sign-in link is no longer valid. Log in with your password.")
        return redirect(settings.LOGIN_URL)
    _login(request, user)
    return redirect("/dashboard/")


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    end_session(request)
    return redirect(settings.LOGIN_URL)


@member_required()
def home(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    context = {
        "member_count": selectors.membership_list(tenant=tenant).count(),
        "key_count": selectors.api_key_list(tenant=tenant).filter(revoked_at__isnull=True).count(),
        "recent_events": audit_event_list()[:10],
        "workspaces": selectors.tenants_for_user(user=request.user),  # type: ignore[arg-type]
    }
    return render(request, "dashboard/home.html", context)


@member_required()
def members(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    reach = services.roles_within_reach(actor=_actor(request))
    form = InviteForm(request.POST or None, roles=reach)
    invite_link = None
    if request.method == "POST":
        if not request.membership.has_role(Role.ADMIN):  # type: ignore[attr-defined]
            return render(
                request,
                "error.html",
                {"code": "permission_denied", "detail": "Only owners and admins invite members."},
                status=403,
            )
        if form.is_valid():
            try:
                invitation, token = services.invitation_create(
                    actor=_actor(request), email=form.cleaned_data["email"], role=form.cleaned_data["role"]
                )
            except ApplicationError as exc:
                add_application_error(form, exc)
            else:
                invite_link = services.invitation_url(tenant=tenant, token=token)
                messages.success(request, f"Invitation sent to {invitation.email}.")
                form = InviteForm(roles=reach)
    context = {
        "form": form,
        "members": selectors.membership_list(tenant=tenant),
        "invitations": selectors.invitation_list(tenant=tenant)[:50],
        "invite_link": invite_link,
        "roles": [(value, label) for value, label in Role.choices if value in reach],
        "reach": reach,
        "can_manage": request.membership.has_role(Role.ADMIN),  # type: ignore[attr-defined]
    }
    return render(request, "dashboard/members.html", context)


@require_POST
@member_required(Role.ADMIN)
def member_update(request: HttpRequest, member_id: int) -> HttpResponse:
    membership = get_object_or_404(selectors.membership_list(tenant=request.tenant), pk=member_id)  # type: ignore[attr-defined]
    try:
        if request.POST.get("action") == "remove":
            services.membership_remove(actor=_actor(request), membership=membership)
            messages.success(request, f"{membership.user.email} was removed.")
        else:
            form = RoleForm(request.POST)
            if not form.is_valid():
                raise ApplicationError("Choose a valid role.")
            services.membership_set_role(actor=_actor(request), membership=membership, role=form.cleaned_data["role"])
            messages.success(request, f"{membership.user.email} is now {form.cleaned_data['role']}.")
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    return redirect("dashboard-members")


@require_POST
@member_required(Role.ADMIN)
def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = get_object_or_404(selectors.invitation_list(tenant=request.tenant), pk=invitation_id)  # type: ignore[attr-defined]
    services.invitation_revoke(actor=_actor(request), invitation=invitation)
    messages.success(request, f"Invitation for {invitation.email} revoked.")
    return redirect("dashboard-members")


def accept_invitation(request: HttpRequest, token: str) -> HttpResponse:
    check_rate(request, group="invitation", rate=settings.RATELIMIT_PUBLIC)
    try:
        invitation = services.invitation_get_pending(token=token)
        if invitation.tenant_id != request.tenant.pk:  # type: ignore[attr-defined]
            raise ApplicationError("This invitation link is not valid.", code="invitation_invalid", status_code=404)
    except ApplicationError as exc:
        return render(request, "error.html", {"code": exc.code, "detail": exc.detail}, status=exc.status_code)
    # The link holder receives mail at the address: only a verified account asks for its password.
    existing = selectors.account_state(email=invitation.email) == "verified"
    form = AcceptInvitationForm(request.POST or None)
    if request.method == "POST":  # an existing account's password is checked: a login attempt
        check_account_rate(request, account=invitation.email)
    if request.method == "POST" and form.is_valid():
        try:
            membership = services.invitation_accept(
                token=token,
                tenant=request.tenant,  # type: ignore[attr-defined]
                password=form.cleaned_data["password"],  # type: ignore[attr-defined]
                full_name=form.cleaned_data["full_name"],
                user=request.user if request.user.is_authenticated else None,  # type: ignore[arg-type]
            )
        except ApplicationError as exc:
            add_application_error(form, exc)
        else:
            _login(request, membership.user)
            messages.success(request, f"Welcome to {request.tenant.name}.")  # type: ignore[attr-defined]
            return redirect("/dashboard/")
    return render(
        request,
        "dashboard/accept_invitation.html",
        {"form": form, "invitation": invitation, "existing": existing},
        status=400 if request.method == "POST" else 200,
    )


@member_required(Role.ADMIN)
def api_keys(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    form = APIKeyForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        try:
            _key, new_key = services.api_key_create(
                actor=_actor(request),
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"] or None,
                expires_at=form.cleaned_data["expires_at"],
            )
        except ApplicationError as exc:
            add_application_error(form, exc)
        else:
            form = APIKeyForm()
    return render(
        request,
        "dashboard/api_keys.html",
        {
            "form": form,
            "new_key": new_key,
            "keys": selectors.api_key_list(tenant=tenant),
        },
    )


@require_POST
@member_required(Role.ADMIN)
def api_key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(selectors.api_key_list(tenant=request.tenant), pk=key_id)  # type: ignore[attr-defined]
    services.api_key_revoke(actor=_actor(request), key=key)
    messages.success(request, f"Key {key.name} revoked. It stops working immediately.")
    return redirect("dashboard-api-keys")


@member_required(Role.ADMIN)
def audit_log(request: HttpRequest) -> HttpResponse:
    events = audit_event_list()
    action = request.GET.get("action", "")[:64]
    if action:
        events = events.filter(action=action)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    return render(request, "dashboard/audit.html", {"page": page, "action": action})


class PasswordResetView(auth_views.PasswordResetView):
    form_class = TenantPasswordResetForm
    template_name = "dashboard/password_reset.html"
    email_template_name = "dashboard/password_reset_email.txt"
    subject_template_name = "dashboard/password_reset_subject.txt"
    success_url = "/password-reset/sent/"

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        check_password_reset_rate(request, account=request.POST.get("email"))
        return super().post(request, *args, **kwargs)

    def get_form(self, form_class: Any = None) -> Any:
        form = super().get_form(form_class)
        form.tenant = self.request.tenant  # type: ignore[attr-defined]
        return form


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "dashboard/password_reset_confirm.html"
    success_url = "/login/"

    def dispatch(self, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if kwargs.get("token") != self.reset_url_token or self.request.method == "POST":  # a token is tried
            check_password_reset_rate(self.request, account=kwargs.get("uidb64"))
        return super().dispatch(*args, **kwargs)

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        services.user_mark_email_verified(user=form.user)  # the link came to the address
        messages.success(self.request, "Your password was changed. Log in with the new one.")
        return response


@member_required()
def account(request: HttpRequest) -> HttpResponse:
    """The person's own settings: name and password."""
    user = request.membership.user  # type: ignore[attr-defined]
    profile = ProfileForm(
        request.POST if request.POST.get("form") == "profile" else None, initial={"full_name": user.full_name}
    )
    password = PasswordChangeForm(user, request.POST if request.POST.get("form") == "password" else None)
    if request.method == "POST" and password.is_bound:  # the old password is checked
        check_password_rate(request, account=user.email)
    if request.method == "POST":
        if profile.is_bound and profile.is_valid():
            user.full_name = profile.cleaned_data["full_name"]
            user.save(update_fields=["full_name"])
            messages.success(request, "Profile saved.")
            return redirect("dashboard-account")
        if password.is_bound and password.is_valid():
            password.save()
            update_session_auth_hash(request, password.user)
            messages.success(request, "Password changed.")
            return redirect("dashboard-account")
    return render(
        request,
        "dashboard/account.html",
        {"profile": profile, "password": password},
        status=400 if request.method == "POST" else 200,
    )
