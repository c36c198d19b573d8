"""Intents: the list with a "test a message" box (the detected intent and its confidence),
create, edit and delete."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.models import Role
from apps.routing import intents as detection
from apps.routing import selectors, services
from apps.routing.models import Intent
from syntera.errors import ApplicationError

from ..forms import add_application_error
from ..views import member_required
from .common import actor, can, not_found, refuse
from .forms.intents import IntentForm, IntentTestForm


def _save(request: HttpRequest, form: IntentForm, intent: Intent | None) -> Intent | None:
    data = form.cleaned_data
    try:
        return services.intent_save(
            actor=actor(request),
            intent=intent,
            name=data["name"],
            examples=data["examples"],
            keywords=data["keywords"],
            threshold=data["threshold"],
        )
    except ApplicationError as exc:
        add_application_error(form, exc)
    except IntegrityError:
        form.add_error("name", "Another intent has this name.")
    return None


def _test(request: HttpRequest) -> tuple[IntentTestForm, dict[str, Any] | None]:
    """The "test a message" box (GET `?text=`): what detection finds, as routing would."""
    if "text" not in request.GET:
        return IntentTestForm(), None
    form = IntentTestForm(request.GET)
    if not form.is_valid():
        return form, None
    found = detection.detect(form.cleaned_data["text"])
    if found is None:
        return form, {"intent": None}
    return form, {"intent": found.intent, "confidence": found.confidence, "by": found.by}


@member_required()
def intent_list(request: HttpRequest) -> HttpResponse:
    can_manage = can(request, Role.ADMIN)
    form = IntentForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if not can_manage:
            return refuse(request, "Only owners and admins change intents.")
        status = 400
        if form.is_valid() and (intent := _save(request, form, None)) is not None:
            messages.success(request, f"Intent {intent.name} created.")
            return redirect("dashboard-intents")
    test_form, result = _test(request)
    if test_form.is_bound and test_form.errors:
        status = 400
    context = {
        "intents": selectors.intent_list(),
        "form": form,
        "test_form": test_form,
        "result": result,
        "can_manage": can_manage,
    }
    return render(request, "dashboard/routing_intents.html", context, status=status)


@member_required()
def intent_edit(request: HttpRequest, intent_id: int) -> HttpResponse:
    intent = Intent.objects.filter(pk=intent_id).first()
    if intent is None:
        return not_found(request, "No such intent.")
    can_manage = can(request, Role.ADMIN)
    if request.method == "POST":
        if not can_manage:
            return refuse(request, "Only owners and admins change intents.")
        form = IntentForm(request.POST, intent=intent)
        if form.is_valid() and _save(request, form, intent) is not None:
            messages.success(request, "Intent saved.")
            return redirect("dashboard-intents")
        status = 400
    else:
        form, status = IntentForm(intent=intent), 200
    context = {"intent": intent, "form": form, "can_manage": can_manage}
    return render(request, "dashboard/routing_intent_edit.html", context, status=status)


@require_POST
@member_required()
def intent_delete(request: HttpRequest, intent_id: int) -> HttpResponse:
    intent = Intent.objects.filter(pk=intent_id).first()
    if intent is None:
        return not_found(request, "No such intent.")
    if not can(request, Role.ADMIN):
        return refuse(request, "Only owners and admins delete intents.")
    services.intent_delete(actor=actor(request), intent=intent)
    messages.success(request, f"Intent {intent.name} deleted, with the rules that named it.")
    return redirect("dashboard-intents")
