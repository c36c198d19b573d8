"""Routing rules: the ordered list (conditions → target) with moving up and down, create,
edit and delete."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.models import Role
from apps.routing import selectors, services
from apps.routing.models import RoutingRule
from syntera.errors import ApplicationError

from ..forms import add_application_error
from ..views import member_required
from .common import actor, can, not_found, refuse
from .forms.rules import RuleForm


def conditions(rule: RoutingRule) -> list[str]:
    """A rule's conditions in words ("any conversation" when it has none)."""
    parts = []
    if rule.intent_id and rule.intent is not None:
        parts.append(f"intent is {rule.intent.name}")
    if rule.channel:
        parts.append(f"channel is {rule.channel}")
    if rule.language:
        parts.append(f"language is {rule.language}")
    if rule.contact_attribute:
        parts.append(f"contact {rule.contact_attribute} is “{rule.contact_value}”")
    if rule.hours == "open":
        parts.append("during business hours")
    elif rule.hours == "closed":
        parts.append("outside business hours")
    return parts or ["any conversation"]


def target(rule: RoutingRule) -> str:
    if rule.team_id and rule.team is not None:
        return f"Team: {rule.team.name}"
    if rule.agent_id and rule.agent is not None:
        return f"AI agent: {rule.agent.name}"
    return "—"


def _rows() -> list[dict[str, Any]]:
    return [{"rule": r, "conditions": conditions(r), "target": target(r)} for r in selectors.rule_list()]


def _save(request: HttpRequest, form: RuleForm, rule: RoutingRule | None) -> RoutingRule | None:
    fields = form.rule_fields()
    if rule is None and "position" not in fields:
        last = RoutingRule.objects.order_by("-position").values_list("position", flat=True).first()
        fields["position"] = 0 if last is None else last + 1
    try:
        return services.rule_save(actor=actor(request), rule=rule, **fields)
    except ApplicationError as exc:
        if "agent" in exc.fields or "team" in exc.fields:  # one select stands for both here
            exc.fields = {"target": ["Choose a team or an AI agent."]}
        add_application_error(form, exc)
    return None


@member_required()
def rule_list(request: HttpRequest) -> HttpResponse:
    can_manage = can(request, Role.ADMIN)
    form = RuleForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if not can_manage:
            return refuse(request, "Only owners and admins change routing rules.")
        status = 400
        if form.is_valid() and (rule := _save(request, form, None)) is not None:
            messages.success(request, f"Rule {rule.name} added.")
            return redirect("dashboard-rules")
    context = {"rows": _rows(), "form": form, "can_manage": can_manage}
    return render(request, "dashboard/routing_rules.html", context, status=status)


@member_required()
def rule_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = RoutingRule.objects.filter(pk=rule_id).first()
    if rule is None:
        return not_found(request, "No such rule.")
    can_manage = can(request, Role.ADMIN)
    status = 200
    if request.method == "POST":
        if not can_manage:
            return refuse(request, "Only owners and admins change routing rules.")
        form = RuleForm(request.POST, rule=rule)
        if form.is_valid() and _save(request, form, rule) is not None:
            messages.success(request, "Rule saved.")
            return redirect("dashboard-rules")
        status = 400
    else:
        form = RuleForm(rule=rule)
    context = {"rule": rule, "form": form, "can_manage": can_manage}
    return render(request, "dashboard/routing_rule_edit.html", context, status=status)


@require_POST
@member_required()
def rule_move(request: HttpRequest, rule_id: int) -> HttpResponse:
    """`direction` up or down: swap places with the neighbour, numbering the list 0, 1, 2..."""
    if not can(request, Role.ADMIN):
        return refuse(request, "Only owners and admins change routing rules.")
    direction = request.POST.get("direction")
    if direction not in ("up", "down"):
        messages.error(request, "Move a rule up or down.")
        return redirect("dashboard-rules")
    with transaction.atomic():
        rules = list(RoutingRule.objects.select_for_update().order_by("position", "id"))
        index = next((i for i, r in enumerate(rules) if r.pk == rule_id), None)
        if index is None:
            return not_found(request, "No such rule.")
        other = index - 1 if direction == "up" else index + 1
        if 0 <= other < len(rules):
            rules[index], rules[other] = rules[other], rules[index]
        who = actor(request)
        for position, rule in enumerate(rules):
            if rule.position != position:
                services.rule_save(actor=who, rule=rule, position=position)
    return redirect("dashboard-rules")


@require_POST
@member_required()
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = RoutingRule.objects.filter(pk=rule_id).first()
    if rule is None:
        return not_found(request, "No such rule.")
    if not can(request, Role.ADMIN):
        return refuse(request, "Only owners and admins delete routing rules.")
    services.rule_delete(actor=actor(request), rule=rule)
    messages.success(request, f"Rule {rule.name} deleted.")
    return redirect("dashboard-rules")
