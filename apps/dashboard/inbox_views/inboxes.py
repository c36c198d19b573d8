"""Inboxes (`/dashboard/inboxes/`): each inbox's channel, AI agent and widget key; creating and
editing a web-chat inbox (the widget's look, allowed sites, pre-chat questions, business-hours
message, whether a signed identity is required), rotating its key and deactivating it; the
one-line snippet that puts the widget on a site, and how the site signs its users' identities
with the inbox's identity secret (shown to owners and admins, rotatable; see
docs/adr/0011-visitor-identity.md). Owners and admins change inboxes (the services check it
too); everyone else reads.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.models import Role
from apps.conversations import abuse, selectors, services
from apps.conversations.identity import identity_secret, inbox_rotate_identity_secret
from apps.conversations.models import Inbox, default_widget_settings
from syntera.errors import ApplicationError

from ..forms import add_application_error
from ..views import member_required
from .common import actor, can, refuse
from .forms import InboxForm


def widget_snippet(request: HttpRequest, inbox: Inbox) -> str:
    """`<script src="http(s)://<tenant host>/static/widget/syntera.js" data-key="..." async>`."""
    static = str(settings.STATIC_URL)
    base = static if static.startswith(("https://", "http://")) else f"{request.scheme}://{request.get_host()}{static}"
    return f'<script src="{base.rstrip("/")}/widget/syntera.js" data-key="{inbox.widget_key}" async></script>'


def abuse_summary(schema: str, inbox: Inbox) -> dict[str, Any]:
    """What the inbox's limits refused, per day (today first), and the limits themselves."""
    days = abuse.counts(schema, inbox.pk)
    return {
        "rows": [{"day": day["day"], "cells": [day[kind] for kind in abuse.KINDS]} for day in days if day["total"]],
        "labels": list(abuse.KINDS.values()),
        "days": len(days),
        "limits": abuse.limits(),
    }


def identified_snippet(request: HttpRequest, inbox: Inbox) -> str:
    """The snippet for a page whose visitor is signed in to the host site: the template
    placeholders are filled by the site's own server (`identity_hash` below)."""
    plain = widget_snippet(request, inbox)
    attributes = (
        ' data-user-id="{{ user.id }}" data-user-email="{{ user.email }}" data-user-name="{{ user.name }}"'
        ' data-user-hash="{{ syntera_hash }}"'
    )
    return plain.replace(" async></script>", attributes + " async></script>")


def _defaults() -> dict[str, Any]:
    initial = default_widget_settings()
    initial["allowed_origins"] = ""
    return initial


@member_required()
def inboxes(request: HttpRequest) -> HttpResponse:
    can_manage = can(request, Role.ADMIN)
    form = InboxForm(request.POST if request.method == "POST" else None, initial=_defaults())
    status = 200
    if request.method == "POST":
        if not can_manage:
            return refuse(request, "Only owners and admins create inboxes.")
        status = 400
        if form.is_valid():
            agent = form.cleaned_data["agent"]
            try:
                inbox = services.inbox_create(
                    actor=actor(request),
                    name=form.cleaned_data["name"],
                    channel=Inbox.Channel.WEB,
                    agent_id=agent.pk if agent else None,
                    **form.widget_settings(),
                )
            except ApplicationError as exc:
                add_application_error(form, exc)
            else:
                messages.success(request, f"Inbox {inbox.name} created. Put the snippet below on your site.")
                return redirect("dashboard-inbox-settings", inbox_id=inbox.pk)
    context = {"inboxes": selectors.inbox_list(), "form": form, "can_manage": can_manage}
    return render(request, "dashboard/inboxes.html", context, status=status)


@member_required()
def inbox_settings(request: HttpRequest, inbox_id: int) -> HttpResponse:
    inbox = get_object_or_404(Inbox.objects.select_related("agent"), pk=inbox_id)
    web = inbox.channel == Inbox.Channel.WEB
    can_manage = can(request, Role.ADMIN)
    posted = request.method == "POST"
    form = InboxForm(request.POST if posted else None, initial=InboxForm.initial_for(inbox), web=web)
    status = 200
    if posted:
        if not can_manage:
            return refuse(request, "Only owners and admins change inboxes.")
        status = 400
        if form.is_valid():
            agent = form.cleaned_data["agent"]
            try:
                services.inbox_update(
                    actor=actor(request),
                    inbox=inbox,
                    name=form.cleaned_data["name"],
                    agent_id=agent.pk if agent else None,
                    **form.widget_settings(),
                )
            except ApplicationError as exc:
                add_application_error(form, exc)
            else:
                messages.success(request, "Inbox saved.")
                return redirect("dashboard-inbox-settings", inbox_id=inbox.pk)
    settings_ = inbox.settings if isinstance(inbox.settings, dict) else {}
    context = {
        "inbox": inbox,
        "form": form,
        "web": web,
        "can_manage": can_manage,
        "snippet": widget_snippet(request, inbox) if web else "",
        "identified_snippet": identified_snippet(request, inbox) if web else "",
        "identity_secret": identity_secret(inbox) if web and can_manage else "",
        "demo_url": f"/dashboard/inboxes/{inbox.pk}/demo/",
        "widget": {**default_widget_settings(), **settings_},
        "conversation_count": inbox.conversations.filter(last_seq__gt=0).count(),
        "abuse": abuse_summary(request.tenant.schema_name, inbox),  # type: ignore[attr-defined]
    }
    return render(request, "dashboard/inboxes_edit.html", context, status=status)


@require_POST
@member_required(Role.ADMIN)
def inbox_rotate_key(request: HttpRequest, inbox_id: int) -> HttpResponse:
    inbox = get_object_or_404(Inbox, pk=inbox_id)
    services.inbox_rotate_key(actor=actor(request), inbox=inbox)
    messages.success(request, "New widget key. Sites still using the old snippet can no longer open the chat.")
    return redirect("dashboard-inbox-settings", inbox_id=inbox.pk)


@require_POST
@member_required(Role.ADMIN)
def inbox_rotate_secret(request: HttpRequest, inbox_id: int) -> HttpResponse:
    """A new identity secret; `confirm` says the admin knows signed identities stop verifying
    until the site uses it."""
    inbox = get_object_or_404(Inbox, pk=inbox_id, channel=Inbox.Channel.WEB)
    if request.POST.get("confirm") != "1":
        detail = "Tick the box to confirm: identities your site signs with the old secret stop verifying."
        return render(request, "error.html", {"code": "invalid", "detail": detail}, status=400)
    inbox_rotate_identity_secret(actor=actor(request), inbox=inbox)
    messages.success(request, "New identity secret. Update your site's server to sign with it.")
    return redirect("dashboard-inbox-settings", inbox_id=inbox.pk)


@require_POST
@member_required(Role.ADMIN)
def inbox_active(request: HttpRequest, inbox_id: int) -> HttpResponse:
    """`active`: "0" deactivates (the widget no longer connects; conversations are kept),
    "1" reactivates."""
    inbox = get_object_or_404(Inbox, pk=inbox_id)
    active = request.POST.get("active")
    if active not in ("0", "1"):
        detail = "active is 0 (deactivate) or 1 (activate)."
        return render(request, "error.html", {"code": "invalid", "detail": detail}, status=400)
    services.inbox_update(actor=actor(request), inbox=inbox, is_active=active == "1")
    messages.success(request, f"Inbox {inbox.name} {'activated' if active == '1' else 'deactivated'}.")
    return redirect("dashboard-inbox-settings", inbox_id=inbox.pk)
