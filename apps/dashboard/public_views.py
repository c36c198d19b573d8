"""Public-host pages: company signup and "find your workspace"."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render

from apps.accounts.services import login_link_create, signup_company
from apps.tenants.selectors import primary_domain, tenant_get_by_slug
from syntera.errors import ApplicationError, check_account_rate, check_rate

from .forms import FindWorkspaceForm, SignupForm, add_application_error


def tenant_url(host: str, path: str) -> str:
    port = "" if settings.SITE_PORT in (80, 443) else f":{settings.SITE_PORT}"
    return f"{settings.SITE_SCHEME}://{host}{port}{path}"


def _request_port_url(request: HttpRequest, host: str, path: str) -> str:
    """Keep the port the visitor used (the dev server may not be on SITE_PORT)."""
    port = request.get_port()
    suffix = "" if port in ("80", "443") else f":{port}"
    return f"{request.scheme}://{host}{suffix}{path}"


def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST":
        check_rate(request, group="signup", rate=settings.RATELIMIT_SIGNUP)
        check_account_rate(request, account=request.POST.get("email"))  # it may prove an account's password
        if form.is_valid():
            try:
                result = signup_company(
                    company_name=form.cleaned_data["company_name"],
                    slug=form.cleaned_data["slug"],
                    email=form.cleaned_data["email"],
                    password=form.cleaned_data["password"],
                    full_name=form.cleaned_data["full_name"],
                )
            except ApplicationError as exc:
                add_application_error(form, exc)
            else:
                token = login_link_create(user=result.user, tenant=result.tenant)
                host = primary_domain(result.tenant)
                return HttpResponseRedirect(_request_port_url(request, host, f"/login/link/?token={token}"))
    status = 400 if request.method == "POST" else 200
    return render(request, "public/signup.html", {"form": form}, status=status)


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
