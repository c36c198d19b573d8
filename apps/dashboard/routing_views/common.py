"""Helpers shared by the routing pages."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from apps.accounts.services import Actor


def actor(request: HttpRequest) -> Actor:
    return Actor.for_membership(request.membership, ip=request.META.get("REMOTE_ADDR"))  # type: ignore[attr-defined]


def tenant(request: HttpRequest) -> Any:
    return request.tenant  # type: ignore[attr-defined]


def can(request: HttpRequest, role: str) -> bool:
    return bool(request.membership.has_role(role))  # type: ignore[attr-defined]


def refuse(request: HttpRequest, detail: str) -> HttpResponse:
    return render(request, "error.html", {"code": "permission_denied", "detail": detail}, status=403)


def not_found(request: HttpRequest, detail: str) -> HttpResponse:
    return render(request, "error.html", {"code": "not_found", "detail": detail}, status=404)


def safe_next(request: HttpRequest, fallback: str) -> str:
    """The `next` address of a form, if it stays on this site."""
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return fallback


def duration(seconds: int) -> str:
    """A waiting time for people: 45 s, 3 min, 2 h 05 min, 3 d 4 h."""
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
