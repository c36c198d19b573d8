"""Dashboard pages for AI agents: the list, every setting with the prompt versions, and the
workspace's AI settings (provider credentials, usage against the quota). The test chat is in
test_chat.py.

Writes go through apps/agents/services.py, which enforces the roles; the pages only hide
forms from roles that cannot use them. See docs/subsystems/agents.md.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.agents import guardrails, services
from apps.agents import selectors as agent_selectors
from apps.agents.api.serializers import AgentImportInput
from apps.agents.models import Agent, KnowledgeGap, ProviderCredential, UsageCounter
from apps.agents.providers import PROVIDER_MODULES, capabilities_for
from syntera.errors import ApplicationError, flatten_errors

from ..forms import add_application_error
from ..views import member_required
from .forms import VARIABLES_HELP, AgentCreateForm, AgentForm, CredentialForm


def _actor(request: HttpRequest) -> Actor:
    return Actor.for_membership(request.membership, ip=request.META.get("REMOTE_ADDR"))  # type: ignore[attr-defined]


def _can(request: HttpRequest, role: str) -> bool:
    return bool(request.membership.has_role(role))  # type: ignore[attr-defined]


def _refuse(request: HttpRequest, detail: str) -> HttpResponse:
    return render(request, "error.html", {"code": "permission_denied", "detail": detail}, status=403)


@member_required()
def agents(request: HttpRequest) -> HttpResponse:
    can_manage = _can(request, Role.ADMIN)
    form = AgentCreateForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if not can_manage:
            return _refuse(request, "Only owners and admins change agents.")
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                agent = services.agent_create(
                    editor=_actor(request),
                    name=data["name"],
                    instructions=data["instructions"],
                    knowledge_bases=[kb.pk for kb in data["knowledge_bases"]],
                )
            except ApplicationError as exc:
                add_application_error(form, exc)
            else:
                messages.success(request, f"Agent {agent.name} created. Review its settings below.")
                return redirect("dashboard-agent", agent_id=agent.pk)
    recent = agent_selectors.recent_turns(PERFORMANCE_DAYS)
    gaps = agent_selectors.open_gap_counts()
    rows = [(agent, recent.get(agent.pk), gaps.get(agent.pk, 0)) for agent in agent_selectors.agent_list()]
    context = {"form": form, "rows": rows, "can_manage": can_manage, "days": PERFORMANCE_DAYS}
    return render(request, "dashboard/agent_list.html", context, status=status)


GAPS_SHOWN = 50
PERFORMANCE_DAYS = 30


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _field_diff(before: Any, after: Any) -> list[tuple[str, str]]:
    """A line diff of one setting as (kind, line): kind is "del", "add", "ctx" or "hunk"."""
    lines = difflib.unified_diff(_as_text(before).splitlines(), _as_text(after).splitlines(), lineterm="", n=2)
    kinds = {"-": "del", "+": "add", " ": "ctx", "@": "hunk"}
    return [(kinds.get(line[:1], "ctx"), line) for line in lines if not line.startswith(("---", "+++"))]


def _versions(agent: Agent) -> list[dict[str, Any]]:
    """The latest 50 prompt versions with the settings each changed from the one before, and
    a line diff of each change."""
    versions = list(agent.versions.order_by("-number")[:51])
    rows = []
    for version, previous in zip(versions, [*versions[1:], None][: len(versions)], strict=True):
        before = previous.snapshot if previous is not None else {}
        changed = sorted(k for k in version.snapshot if previous is None or before.get(k) != version.snapshot[k])
        rows.append(
            {
                "version": version,
                "changed": changed if previous is not None else ["(first version)"],
                "diffs": [(k, _field_diff(before.get(k, ""), version.snapshot[k])) for k in changed]
                if previous is not None
                else [],
                "json": json.dumps(version.snapshot, indent=2, sort_keys=True, ensure_ascii=False),
            }
        )
    return rows[:50]


def _performance(agent: Agent) -> dict[str, Any]:
    """The last PERFORMANCE_DAYS days, with each day's stacked bars: (kind, y, height) in a
    0-100 SVG box, heights in % of the busiest day, answered at the bottom. Drawn as SVG
    rectangles, not styled boxes: the Content-Security-Policy allows no inline style."""
    performance = agent_selectors.agent_performance(agent, days=PERFORMANCE_DAYS)
    peak = max((d["turns"] for d in performance["by_day"]), default=0) or 1
    for day in performance["by_day"]:
        bottom = 100.0
        day["bars"] = []
        for kind in ("answered", "abstained", "escalated"):
            height = round(100 * day[kind] / peak, 1)
            if height:
                bottom = round(bottom - height, 1)
                day["bars"].append((kind, bottom, height))
    return performance


@member_required()
def agent_edit(request: HttpRequest, agent_id: int) -> HttpResponse:
    agent = get_object_or_404(agent_selectors.agent_list(), pk=agent_id)
    can_manage = _can(request, Role.ADMIN)
    status = 200
    if request.method == "POST":
        if not can_manage:
            return _refuse(request, "Only owners and admins change agents.")
        form = AgentForm(request.POST)
        status = 400
        if form.is_valid():
            before = agent.prompt_version
            try:
                agent = services.agent_update(editor=_actor(request), agent=agent, **form.service_fields(agent))
            except ApplicationError as exc:
                add_application_error(form, exc)
            else:
                versioned = f" New prompt version {agent.prompt_version}." if agent.prompt_version != before else ""
                messages.success(request, f"Settings saved.{versioned}")
                return redirect("dashboard-agent", agent_id=agent.pk)
    else:
        form = AgentForm(initial=AgentForm.initial_for(agent))
    context = {
        "agent": agent,
        "form": form,
        "can_manage": can_manage,
        "can_test": _can(request, Role.AGENT),
        "versions": _versions(agent),
        "gaps": list(agent_selectors.knowledge_gaps(agent)[:GAPS_SHOWN]),
        "performance": _performance(agent),
        "variables_help": VARIABLES_HELP,
    }
    return render(request, "dashboard/agent_edit.html", context, status=status)


@require_POST
@member_required(Role.ADMIN)
def agent_delete(request: HttpRequest, agent_id: int) -> HttpResponse:
    agent = get_object_or_404(Agent, pk=agent_id)
    services.agent_delete(editor=_actor(request), agent=agent)
    messages.success(request, f"Agent {agent.name} deleted.")
    return redirect("dashboard-agents")


MAX_IMPORT_BYTES = 1024 * 1024


@member_required()
def agent_export(request: HttpRequest, agent_id: int) -> HttpResponse:
    """The agent's settings as a JSON file to download (`agents/import` reads it back)."""
    agent = get_object_or_404(agent_selectors.agent_list(), pk=agent_id)
    body = json.dumps(agent_selectors.agent_export(agent), indent=2, ensure_ascii=False)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    filename = f"{slugify(agent.name) or 'agent'}.agent.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_POST
@member_required(Role.ADMIN)
def agent_import(request: HttpRequest) -> HttpResponse:
    """A new agent from an exported file; knowledge bases are matched by name (checked by the
    API's own `AgentImportInput`, so the page and the API accept the same documents)."""
    upload = request.FILES.get("file")
    if upload is None or (upload.size or 0) > MAX_IMPORT_BYTES:
        messages.error(request, "Choose an exported agent file (.json, at most 1 MB).")
        return redirect("dashboard-agents")
    try:
        document = json.loads(upload.read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        messages.error(request, "That file is not JSON: choose a file exported from an agent's page.")
        return redirect("dashboard-agents")
    data = AgentImportInput(
        data={**document, "name": request.POST.get("name", "")} if isinstance(document, dict) else {}
    )
    if not data.is_valid():
        problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in flatten_errors(data.errors).items())
        messages.error(request, f"The agent was not imported. {problems}")
        return redirect("dashboard-agents")
    fields, names = data.to_import()
    agent, missing = services.agent_import(editor=_actor(request), settings=fields, knowledge_base_names=names)
    note = f" No knowledge base here is called {', '.join(missing)}: attach the right ones below." if missing else ""
    messages.success(request, f"Agent {agent.name} imported.{note}")
    return redirect("dashboard-agent", agent_id=agent.pk)


@require_POST
@member_required(Role.ADMIN)
def agent_duplicate(request: HttpRequest, agent_id: int) -> HttpResponse:
    agent = get_object_or_404(Agent, pk=agent_id)
    try:
        copy = services.agent_duplicate(editor=_actor(request), agent=agent, name=request.POST.get("name", ""))
    except ApplicationError as exc:
        messages.error(request, exc.detail)
        return redirect("dashboard-agent", agent_id=agent.pk)
    messages.success(request, f"{copy.name} created with the settings of {agent.name}.")
    return redirect("dashboard-agent", agent_id=copy.pk)


@require_POST
@member_required(Role.ADMIN)
def agent_version_restore(request: HttpRequest, agent_id: int, number: int) -> HttpResponse:
    agent = get_object_or_404(Agent, pk=agent_id)
    try:
        agent = services.agent_restore_version(editor=_actor(request), agent=agent, number=number)
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Settings of version {number} restored as version {agent.prompt_version}.")
    return redirect("dashboard-agent", agent_id=agent.pk)


@require_POST
@member_required(Role.ADMIN)
def knowledge_gap_dismiss(request: HttpRequest, agent_id: int, gap_id: int) -> HttpResponse:
    gap = get_object_or_404(KnowledgeGap, pk=gap_id, agent_id=agent_id)
    services.knowledge_gap_dismiss(editor=_actor(request), gap=gap)
    messages.success(request, "Question dismissed until it is asked again.")
    return redirect(f"{reverse('dashboard-agent', args=[agent_id])}#gaps")


@require_POST
@member_required(Role.ADMIN)
def knowledge_gap_answer(request: HttpRequest, agent_id: int, gap_id: int) -> HttpResponse:
    gap = get_object_or_404(KnowledgeGap, pk=gap_id, agent_id=agent_id)
    raw_kb = request.POST.get("knowledge_base", "")
    try:
        faq = services.knowledge_gap_answer(
            editor=_actor(request),
            gap=gap,
            answer=request.POST.get("answer", "")[:20000],
            question=request.POST.get("question", "")[:1000],
            knowledge_base_id=int(raw_kb) if raw_kb.isdigit() and len(raw_kb) < 10 else None,
        )
    except ApplicationError as exc:
        messages.error(request, f"The answer was not saved: {exc.detail}")
    else:
        messages.success(
            request,
            f"Answer added to \u201c{faq.title}\u201d in {faq.knowledge_base.name}; "
            "the agent uses it as soon as it is indexed.",
        )
    return redirect(f"{reverse('dashboard-agent', args=[agent_id])}#gaps")


def _provider_label(provider: str) -> str:
    return dict(Agent.Provider.choices).get(provider, provider)


def _credential_providers() -> list[str]:
    return [p for p in PROVIDER_MODULES if capabilities_for(p).needs_credentials]


@member_required(Role.ADMIN)
def ai_settings(request: HttpRequest) -> HttpResponse:
    stored = {c.provider: c for c in ProviderCredential.objects.all()}
    forms_by_provider = {
        p: CredentialForm(prefix=p, initial={f: getattr(stored.get(p), f, "") for f in ("base_url", "organization")})
        for p in _credential_providers()
    }
    status = 200
    if request.method == "POST":
        provider = request.POST.get("provider", "")
        if provider not in forms_by_provider:
            return render(request, "error.html", {"code": "invalid", "detail": "Unknown provider."}, status=400)
        form = forms_by_provider[provider] = CredentialForm(request.POST, prefix=provider)
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            if not data["api_key"] and not getattr(stored.get(provider), "api_key_encrypted", ""):
                form.add_error("api_key", "Enter the API key (a local server that needs none accepts any value).")
            else:
                try:
                    services.provider_credential_set(editor=_actor(request), provider=provider, **data)
                except ApplicationError as exc:
                    add_application_error(form, exc)
                else:
                    messages.success(request, f"{_provider_label(provider)} credentials saved.")
                    return redirect("dashboard-ai-settings")
    counter = UsageCounter.objects.filter(day=timezone.localdate()).first()
    quota = guardrails.quota_for(request.tenant)  # type: ignore[attr-defined]
    requests = getattr(counter, "requests", 0)
    tokens = getattr(counter, "prompt_tokens", 0) + getattr(counter, "completion_tokens", 0)
    context = {
        "providers": [(p, _provider_label(p), forms_by_provider[p], stored.get(p)) for p in forms_by_provider],
        "deployment_key": bool(settings.OPENAI_API_KEY),
        "usage": {
            "requests": requests,
            "tokens": tokens,
            "request_quota": quota.requests,
            "token_quota": quota.tokens,
            "request_percent": min(100, round(100 * requests / quota.requests)) if quota.requests else 0,
            "token_percent": min(100, round(100 * tokens / quota.tokens)) if quota.tokens else 0,
        },
        "history": UsageCounter.objects.order_by("-day")[:14],
    }
    return render(request, "dashboard/ai_settings.html", context, status=status)


@require_POST
@member_required(Role.ADMIN)
def ai_credential_delete(request: HttpRequest, provider: str) -> HttpResponse:
    credential = get_object_or_404(ProviderCredential, provider=provider)
    services.provider_credential_delete(editor=_actor(request), credential=credential)
    messages.success(
        request,
        f"{_provider_label(provider)} credentials deleted. Agents set to it use the deployment's key, "
        "or answer offline without one.",
    )
    return redirect("dashboard-ai-settings")
