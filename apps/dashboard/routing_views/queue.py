"""The human queue (accept = take over), SLA events, your presence, and manual assignment
from a conversation's page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts.models import Role
from apps.conversations import services as conversations
from apps.conversations.models import Conversation
from apps.routing import presence, selectors
from syntera.errors import ApplicationError

from ..inbox_views.common import conversation_title
from ..views import member_required
from .common import actor, can, duration, not_found, refuse, safe_next, tenant
from .forms.queue import AssignForm, PresenceForm, QueueFilterForm, SLAFilterForm

SLA_PAGE = 50


def _queue_rows(team_id: int | None) -> list[dict[str, Any]]:
    names = {t.pk: t.name for t in selectors.team_list()}
    rows = []
    for entry in selectors.queue_entries(team_id=team_id):
        c = entry.conversation
        rows.append(
            {
                "id": c.pk,
                "title": conversation_title(c),
                "position": entry.position,
                "priority": c.priority,
                "waited": duration(entry.waited_seconds),
                "waited_seconds": entry.waited_seconds,
                "team": names.get(entry.team_id or 0, "Default team"),
                "channel": c.get_channel_display(),
                "intent": c.intent,
                "preview": c.last_message_preview,
                "url": reverse("dashboard-conversation", args=[c.pk]),
            }
        )
    return rows


def _queue_page(request: HttpRequest, *, status: int = 200, error: str = "") -> HttpResponse:
    form = QueueFilterForm(request.GET)
    team = form.cleaned_data.get("team") if form.is_valid() else None
    context = {
        "form": form,
        "rows": _queue_rows(team.pk if team else None) if form.is_valid() else [],
        "can_accept": can(request, Role.AGENT),
        "error": error,
    }
    return render(request, "dashboard/queue.html", context, status=status if form.is_valid() else 400)


@member_required()
def queue(request: HttpRequest) -> HttpResponse:
    return _queue_page(request)


@require_POST
@member_required()
def queue_accept(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Accept a waiting conversation: take it over (one winner when two people accept)."""
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        return not_found(request, "No such conversation.")
    if not can(request, Role.AGENT):
        return refuse(request, "Viewers cannot accept conversations.")
    try:
        conversations.conversation_take_over(actor=actor(request), conversation=conversation)
    except ApplicationError as exc:
        return _queue_page(request, status=exc.status_code, error=exc.detail)
    messages.success(request, "The conversation is yours.")
    return redirect("dashboard-conversation", conversation_id=conversation.pk)


@member_required()
def sla(request: HttpRequest) -> HttpResponse:
    form = SLAFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "dashboard/routing_sla.html", {"form": form, "page": None, "rows": []}, status=400)
    data = form.cleaned_data
    events = selectors.sla_event_list(
        kind=data.get("kind") or "", state=data.get("state") or "", team_id=data["team"].pk if data["team"] else None
    )
    page = Paginator(events, SLA_PAGE).get_page(data.get("page") or 1)
    rows = [
        {
            "event": e,
            "state": selectors.sla_state(e),
            "url": reverse("dashboard-conversation", args=[e.conversation_id]),
        }
        for e in page
    ]
    query = urlencode({k: v for k, v in request.GET.items() if k != "page" and k in form.fields and v})
    return render(request, "dashboard/routing_sla.html", {"form": form, "page": page, "rows": rows, "query": query})


@require_POST
@member_required(Role.AGENT)
def presence_set(request: HttpRequest) -> HttpResponse:
    """Your status (online / away); the open dashboard tabs keep it alive."""
    form = PresenceForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Your status is online or away.")
        return redirect(safe_next(request, "/dashboard/"))
    schema = str(tenant(request).schema_name)
    wanted = form.cleaned_data["status"]
    user_id = int(request.user.pk or 0)
    before = presence.choose(schema, user_id, wanted)
    if before != wanted:
        presence.announce(schema, user_id, wanted)
    messages.success(request, f"You are {wanted}.")
    return redirect(safe_next(request, "/dashboard/"))


@require_POST
@member_required()
def conversation_assign(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Manual assignment from the conversation page: owners and admins assign anyone, an agent
    a waiting conversation or their own one to a colleague (the service decides)."""
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        return not_found(request, "No such conversation.")
    if not can(request, Role.AGENT):
        return refuse(request, "Viewers cannot assign conversations.")
    form = AssignForm(request.POST, staff=selectors.staff_list(tenant=tenant(request)))
    if not form.is_valid():
        messages.error(request, "Choose a staff member of this workspace to assign the conversation to.")
        return redirect("dashboard-conversation", conversation_id=conversation.pk)
    try:
        conversation = conversations.conversation_assign(
            actor=actor(request), conversation=conversation, user_id=form.cleaned_data["user"]
        )
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        who = conversation.assignee
        name = (who.full_name or who.email) if who else "them"
        messages.success(request, f"Assigned to {name}.")
    return redirect("dashboard-conversation", conversation_id=conversation.pk)
