"""Teams: the list, one team with its members' presence and load, and its settings (members
with capacity, strategy, business hours, SLA targets, out-of-hours message, default)."""

from __future__ import annotations

from django.contrib import messages
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.models import Role
from apps.routing import selectors, services
from apps.routing.models import Team
from syntera.errors import ApplicationError

from ..forms import add_application_error
from ..views import member_required
from .common import actor, can, not_found, refuse, tenant
from .forms.teams import TeamForm


@member_required()
def teams(request: HttpRequest) -> HttpResponse:
    rows = []
    for team in selectors.team_list().order_by("name"):
        members = selectors.team_members(team)
        rows.append(
            {
                "team": team,
                "members": members,
                "online": sum(1 for m in members if m.status == "online"),
                "open_now": selectors.team_is_open(team),
            }
        )
    context = {"rows": rows, "can_manage": can(request, Role.ADMIN)}
    return render(request, "dashboard/teams.html", context)


def _save(request: HttpRequest, form: TeamForm, team: Team | None) -> Team | None:
    try:
        return services.team_save(
            actor=actor(request), team=team, members=form.cleaned_data["members"], **form.team_fields()
        )
    except ApplicationError as exc:
        add_application_error(form, exc)
    except IntegrityError:  # a concurrent save took the name
        form.add_error("name", "Another team has this name.")
    return None


def _page(request: HttpRequest, form: TeamForm, team: Team | None, status: int = 200) -> HttpResponse:
    context = {
        "form": form,
        "team": team,
        "members": selectors.team_members(team) if team is not None else [],
        "open_now": selectors.team_is_open(team) if team is not None else None,
        "can_manage": can(request, Role.ADMIN),
        "staff_count": len(form.staff),
    }
    return render(request, "dashboard/teams_edit.html", context, status=status)


@member_required()
def team_new(request: HttpRequest) -> HttpResponse:
    if not can(request, Role.ADMIN):
        return refuse(request, "Only owners and admins create teams.")
    staff = selectors.staff_list(tenant=tenant(request))
    if request.method != "POST":
        return _page(request, TeamForm(staff=staff), None)
    form = TeamForm(request.POST, staff=staff)
    if form.is_valid() and (team := _save(request, form, None)) is not None:
        messages.success(request, f"Team {team.name} created.")
        return redirect("dashboard-team", team_id=team.pk)
    return _page(request, form, None, status=400)


@member_required()
def team_detail(request: HttpRequest, team_id: int) -> HttpResponse:
    team = selectors.team_get(team_id)
    if team is None:
        return not_found(request, "No such team.")
    staff = selectors.staff_list(tenant=tenant(request))
    if request.method != "POST":
        return _page(request, TeamForm(staff=staff, team=team), team)
    if not can(request, Role.ADMIN):
        return refuse(request, "Only owners and admins change teams.")
    form = TeamForm(request.POST, staff=staff, team=team)
    if form.is_valid() and _save(request, form, team) is not None:
        messages.success(request, "Team saved.")
        return redirect("dashboard-team", team_id=team.pk)
    return _page(request, form, selectors.team_get(team_id), status=400)


@require_POST
@member_required()
def team_delete(request: HttpRequest, team_id: int) -> HttpResponse:
    team = selectors.team_get(team_id)
    if team is None:
        return not_found(request, "No such team.")
    if not can(request, Role.ADMIN):
        return refuse(request, "Only owners and admins delete teams.")
    services.team_delete(actor=actor(request), team=team)
    messages.success(request, f"Team {team.name} deleted.")
    return redirect("dashboard-teams")
