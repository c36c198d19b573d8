"""The operator admin's password forms (django.contrib.admin on the public host), rate limited
like every other place a password is tried (docs/adr/0013-scopes-bound-grants.md). What the
operator admin manages is registered in tenants.py and accounts.py."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from syntera.errors import check_password_rate


def login(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    if request.method == "POST":
        check_password_rate(request, account=request.POST.get("username"))
    return admin.site.login(request, **kwargs)


def password_change(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    if request.method == "POST" and request.user.is_authenticated:  # the old password is checked
        check_password_rate(request, account=request.user.get_username())
    return admin.site.admin_view(admin.site.password_change)(request, **kwargs)
