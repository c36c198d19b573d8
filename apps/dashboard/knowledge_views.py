"""Dashboard pages for knowledge: bases, sources with live progress, FAQ editing, playground."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.knowledge import search as search_service
from apps.knowledge import services
from apps.knowledge.embeddings import provider_names
from apps.knowledge.extractors import ACCEPTED_EXTENSIONS
from apps.knowledge.models import KnowledgeBase, Source
from apps.knowledge.selectors import knowledge_base_list, source_list
from syntera.errors import ApplicationError

from .forms import add_application_error
from .views import member_required


def _actor(request: HttpRequest) -> Actor:
    return Actor.for_membership(request.membership, ip=request.META.get("REMOTE_ADDR"))  # type: ignore[attr-defined]


class KnowledgeBaseForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    embedding_model = forms.ChoiceField(choices=[(n, n) for n in provider_names()], initial="local-minilm")


class UploadForm(forms.Form):
    file = forms.FileField(help_text=f"Accepted: {', '.join(ACCEPTED_EXTENSIONS)}")
    title = forms.CharField(max_length=300, required=False)
    faq_csv = forms.BooleanField(required=False, label="This CSV is an FAQ (question and answer columns)")


class URLForm(forms.Form):
    url = forms.URLField(max_length=2000, label="Page or sitemap URL")
    title = forms.CharField(max_length=300, required=False)
    crawl = forms.BooleanField(required=False, label="Crawl the site (same host, robots.txt respected)")
    max_pages = forms.IntegerField(min_value=1, max_value=10000, required=False, label="At most this many pages")
    sync_interval_hours = forms.IntegerField(
        min_value=0, max_value=8760, required=False, label="Re-sync every N hours (empty: never)"
    )


class TextForm(forms.Form):
    title = forms.CharField(max_length=300)
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), max_length=1_000_000)


class FAQForm(forms.Form):
    title = forms.CharField(max_length=300, initial="FAQ")
    entries = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}),
        max_length=2_000_000,
        help_text="One entry per block: a line starting with Q: and the next with A:, "
        "blocks separated by a blank line.",
    )


def parse_faq_text(text: str) -> list[dict[str, str]]:
    """'Q: ...\\nA: ...' blocks (blank-line separated) → entries; answers may span lines."""
    entries = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        block = block.strip()
        if not block:
            continue
        question, _, answer = block.partition("\nA:")
        entries.append({"question": question.removeprefix("Q:").strip(), "answer": answer.strip()})
    return entries


def faq_text(source: Source) -> str:
    return "\n\n".join(f"Q: {e.question}\nA: {e.answer}" for e in source.faq_entries.all())


@member_required()
def knowledge_list(request: HttpRequest) -> HttpResponse:
    form = KnowledgeBaseForm(request.POST or None)
    if request.method == "POST":
        if not request.membership.has_role(Role.ADMIN):  # type: ignore[attr-defined]
            return render(
                request,
                "error.html",
                {"code": "permission_denied", "detail": "Only owners and admins change knowledge."},
                status=403,
            )
        if form.is_valid():
            try:
                kb = services.knowledge_base_create(editor=_actor(request), **form.cleaned_data)
            except ApplicationError as exc:
                add_application_error(form, exc)
            else:
                return redirect("dashboard-knowledge-base", kb_id=kb.pk)
    from django.db.models import Count

    bases = knowledge_base_list().annotate(
        source_count=Count("sources", distinct=True), chunk_count=Count("chunks", distinct=True)
    )
    return render(request, "dashboard/knowledge_list.html", {"form": form, "bases": bases})


@member_required()
def knowledge_base(request: HttpRequest, kb_id: int) -> HttpResponse:
    kb = get_object_or_404(KnowledgeBase, pk=kb_id)
    forms_by_kind: dict[str, forms.Form] = {
        "upload": UploadForm(),
        "url": URLForm(),
        "text": TextForm(),
        "faq": FAQForm(),
    }
    status = 200
    if request.method == "POST":
        if not request.membership.has_role(Role.ADMIN):  # type: ignore[attr-defined]
            return render(
                request,
                "error.html",
                {"code": "permission_denied", "detail": "Only owners and admins change knowledge."},
                status=403,
            )
        kind = request.POST.get("kind", "")
        form_class = {"upload": UploadForm, "url": URLForm, "text": TextForm, "faq": FAQForm}.get(kind)
        if form_class is not None:
            form = form_class(request.POST, request.FILES)
            forms_by_kind[kind] = form
            if form.is_valid():
                try:
                    _add_source(request, kb, kind, form.cleaned_data)
                except ApplicationError as exc:
                    add_application_error(form, exc)
                    status = exc.status_code if exc.status_code in (413, 415) else 400
                else:
                    messages.success(request, "Source added. Processing has started.")
                    return redirect("dashboard-knowledge-base", kb_id=kb.pk)
            else:
                status = 400
    context = {
        "kb": kb,
        "sources": source_list(kb=kb),
        "forms": forms_by_kind,
        "can_manage": request.membership.has_role(Role.ADMIN),  # type: ignore[attr-defined]
    }
    return render(request, "dashboard/knowledge_base.html", context, status=status)


def _add_source(request: HttpRequest, kb: KnowledgeBase, kind: str, data: dict[str, Any]) -> Source:
    actor = _actor(request)
    if kind == "upload":
        if data["faq_csv"]:
            return services.source_add_faq(
                editor=actor,
                kb=kb,
                title=data["title"] or "FAQ",
                csv_data=data["file"].read(settings.KNOWLEDGE_MAX_FILE_BYTES + 1),
            )
        return services.source_add_file(editor=actor, kb=kb, upload=data["file"], title=data["title"])
    if kind == "url":
        return services.source_add_url(
            editor=actor,
            kb=kb,
            url=data["url"],
            title=data["title"],
            crawl=data["crawl"],
            max_pages=data["max_pages"],
            sync_interval_hours=data["sync_interval_hours"],
        )
    if kind == "text":
        return services.source_add_text(editor=actor, kb=kb, text=data["text"], title=data["title"])
    return services.source_add_faq(editor=actor, kb=kb, entries=parse_faq_text(data["entries"]), title=data["title"])


@member_required()
def sources_status(request: HttpRequest, kb_id: int) -> JsonResponse:
    """Polled by the knowledge base page to move the progress bars."""
    kb = get_object_or_404(KnowledgeBase, pk=kb_id)
    rows = source_list(kb=kb).values("id", "status", "progress", "error", "chunk_count")
    return JsonResponse({"sources": list(rows)})


@member_required(Role.ADMIN)
def source_edit(request: HttpRequest, kb_id: int, source_id: int) -> HttpResponse:
    source = get_object_or_404(Source, pk=source_id, knowledge_base_id=kb_id)
    form = FAQForm(request.POST or None, initial={"title": source.title, "entries": faq_text(source)})
    if request.method == "POST" and source.type == Source.Type.FAQ and form.is_valid():
        try:
            services.source_update(editor=_actor(request), source=source, title=form.cleaned_data["title"])
            services.faq_replace_entries(
                editor=_actor(request), source=source, entries=parse_faq_text(form.cleaned_data["entries"])
            )
        except ApplicationError as exc:
            add_application_error(form, exc)
        else:
            messages.success(request, "FAQ saved and re-indexing.")
            return redirect("dashboard-knowledge-base", kb_id=kb_id)
    return render(request, "dashboard/source_edit.html", {"source": source, "form": form})


@require_POST
@member_required(Role.ADMIN)
def source_action(request: HttpRequest, kb_id: int, source_id: int) -> HttpResponse:
    source = get_object_or_404(Source, pk=source_id, knowledge_base_id=kb_id)
    if request.POST.get("action") == "delete":
        services.source_delete(editor=_actor(request), source=source)
        messages.success(request, f"{source.title} deleted with its chunks.")
    else:
        services.source_resync(editor=_actor(request), source=source)
        messages.success(request, f"{source.title} is re-syncing.")
    return redirect("dashboard-knowledge-base", kb_id=kb_id)


@require_POST
@member_required(Role.ADMIN)
def knowledge_base_delete(request: HttpRequest, kb_id: int) -> HttpResponse:
    kb = get_object_or_404(KnowledgeBase, pk=kb_id)
    services.knowledge_base_delete(editor=_actor(request), kb=kb)
    messages.success(request, f"Knowledge base {kb.name} deleted.")
    return redirect("dashboard-knowledge")


class PlaygroundForm(forms.Form):
    query = forms.CharField(max_length=2000)
    knowledge_bases = forms.ModelMultipleChoiceField(
        queryset=KnowledgeBase.objects.none(), widget=forms.CheckboxSelectMultiple
    )
    mode = forms.ChoiceField(choices=[("hybrid", "Hybrid"), ("dense", "Dense"), ("lexical", "Full-text")])
    top_k = forms.IntegerField(min_value=1, max_value=50, initial=10)
    mmr = forms.BooleanField(required=False, label="Diversify (MMR)")


@member_required()
def playground(request: HttpRequest) -> HttpResponse:
    form = PlaygroundForm(request.GET or None)
    form.fields["knowledge_bases"].queryset = knowledge_base_list()  # type: ignore[attr-defined]
    results = None
    if form.is_bound and form.is_valid():
        results = search_service.search(
            query=form.cleaned_data["query"],
            knowledge_base_ids=[kb.pk for kb in form.cleaned_data["knowledge_bases"]],
            top_k=form.cleaned_data["top_k"],
            mode=form.cleaned_data["mode"],
            mmr=form.cleaned_data["mmr"],
        )
    return render(request, "dashboard/knowledge_search.html", {"form": form, "results": results})
