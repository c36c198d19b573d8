"""Public-host pages: company signup (confirmed by an emailed link) and "find your workspace"."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render

from apps.accounts.selectors import account_state
from apps.accounts.services import login_link_create
from apps.accounts.signup import signup_confirm, signup_get_pending, signup_request
from apps.tenants.selectors import primary_domain, tenant_get_by_slug
from syntera.errors import ApplicationError, check_account_rate, check_rate

from .forms import ConfirmSignupForm, FindWorkspaceForm, SignupForm, add_application_error


def tenant_url(host: str, path: str) -> str:
    port = "" if settings.SITE_PORT in (80, 443) else f":{settings.SITE_PORT}"
    return f"{settings.SITE_SCHEME}://{host}{port}{path}"


def _request_port_url(request: HttpRequest, host: str, path: str) -> str:
    """Keep the scheme and the port the visitor used, as their browser sent it in Host (the
    dev server may not be on SITE_PORT; behind a TLS proxy the server's own port is not the
    visitor's)."""
    sent = request.get_host()
    port = sent.rsplit(":", 1)[1] if ":" in sent and not sent.endswith("]") else ""
    return f"{request.scheme}://{host}{':' + port if port.isdigit() else ''}{path}"


def _mail_note() -> str:
    """While DEBUG is on, where this server's emails go instead of a mailbox."""
    if not settings.DEBUG:
        return ""
    if settings.EMAIL_BACKEND.endswith("console.EmailBackend"):
        return (
            "Development server: emails are printed, not sent. Find the link in the output of "
            "`make run` (the worker's lines)."
        )
    if settings.EMAIL_BACKEND.endswith("filebased.EmailBackend"):
        return f"Development server: emails are not sent but written to files in {settings.EMAIL_FILE_PATH}."
    return ""


def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST":
        check_rate(request, group="signup", rate=settings.RATELIMIT_SIGNUP)
        check_account_rate(request, account=request.POST.get("email"))  # confirmation emails per address
        if form.is_valid():
            try:
                signup_request(
                    company_name=form.cleaned_data["company_name"],
                    slug=form.cleaned_data["slug"],
                    email=form.cleaned_data["email"],
                    full_name=form.cleaned_data["full_name"],
                )
            except ApplicationError as exc:
                add_application_error(form, exc)
            else:
                # The same answer whether or not an account has this address.
                return HttpResponseRedirect("/signup/sent/")
    status = 400 if request.method == "POST" else 200
    return render(request, "public/signup.html", {"form": form, "mail_note": _mail_note()}, status=status)


def signup_sent(request: HttpRequest) -> HttpResponse:
    return render(
        request, "public/signup_sent.html", {"mail_note": _mail_note(), "ttl_hours": settings.SIGNUP_CONFIRM_TTL_HOURS}
    )


def signup_confirm_page(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: whoever opens it receives mail at the address, so the page may say
    whether an account has it (and asks for that account's password, or a new one)."""
    try:
        pending = signup_get_pending(token=token)
    except ApplicationError as exc:
        return render(request, "error.html", {"code": exc.code, "detail": exc.detail}, status=exc.status_code)
    form = ConfirmSignupForm(request.POST or None, initial={"company_name": pending.company_name, "slug": pending.slug})
    if request.method == "POST":
        check_rate(request, group="signup-confirm", rate=settings.RATELIMIT_PUBLIC)
        check_account_rate(request, account=pending.email)  # it may prove an existing account's password
        if form.is_valid():
            try:
                result = signup_confirm(
                    token=token,
                    password=form.cleaned_data["password"],
                    company_name=form.cleaned_data["company_name"],
                    slug=form.cleaned_data["slug"],
                )
            except ApplicationError as exc:
                if exc.code.startswith("signup_link_"):
                    return render(
                        request, "error.html", {"code": exc.code, "detail": exc.detail}, status=exc.status_code
                    )
                add_application_error(form, exc)
            else:
                token = login_link_create(user=result.user, tenant=result.tenant)
                host = primary_domain(result.tenant)
                return HttpResponseRedirect(_request_port_url(request, host, f"/login/link/?token={token}"))
    return render(
        request,
        "public/signup_confirm.html",
        {"form": form, "pending": pending, "account": account_state(email=pending.email)},
        status=400 if request.method == "POST" else 200,
    )


def find_workspace(request: HttpRequest) -> HttpResponse:
    form = FindWorkspaceForm(request.POST or None)
    if request.method == "POST":
        check_rate(request, group="find-workspace", rate=settings.RATELIMIT_PUBLIC)
        if form.is_valid():
            tenant = tenant_get_by_slug(form.cleaned_data["slug"])
            if tenant is not None:
                return HttpResponseRedirect(_request_port_url(request, primary_domain(tenant), "/login/"))
            form.add_error("slug", "No workspace has that address.")
    return render(request, "public/find_workspace.html", {"form": form})
