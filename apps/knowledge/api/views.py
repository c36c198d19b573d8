"""Knowledge API: knowledge bases, sources (upload, URL, text, FAQ), search (docs/api.md)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Count, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiRequest, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api.views import actor_for
from syntera.errors import ApplicationError
from syntera.parsers import StrictJSONParser

from .. import search as search_service
from .. import services
from ..models import KnowledgeBase, Source
from ..selectors import knowledge_base_list, source_list
from . import serializers as s


def _kbs() -> QuerySet[KnowledgeBase]:
    return knowledge_base_list().annotate(
        source_count=Count("sources", distinct=True), chunk_count=Count("chunks", distinct=True)
    )


def _kb(kb_id: int) -> KnowledgeBase:
    return get_object_or_404(KnowledgeBase, pk=kb_id)


class KnowledgeView(APIView):
    scope_resource = "knowledge"


class KnowledgeBaseListView(generics.ListAPIView):  # type: ignore[type-arg]
    scope_resource = "knowledge"
    serializer_class = s.KnowledgeBaseOutput
    ordering_fields = ["id", "name", "created_at"]
    filterset_fields: list[str] = []

    def get_queryset(self) -> QuerySet[KnowledgeBase]:
        if getattr(self, "swagger_fake_view", False):
            return KnowledgeBase.objects.none()
        return _kbs()

    @extend_schema(request=s.KnowledgeBaseInput, responses={201: s.KnowledgeBaseOutput})
    def post(self, request: Request) -> Response:
        data = s.KnowledgeBaseInput(data=request.data)
        data.is_valid(raise_exception=True)
        kb = services.knowledge_base_create(editor=actor_for(request), **data.validated_data)
        return Response(s.KnowledgeBaseOutput(_kbs().get(pk=kb.pk)).data, status=status.HTTP_201_CREATED)


class KnowledgeBaseDetailView(KnowledgeView):
    @extend_schema(responses={200: s.KnowledgeBaseOutput})
    def get(self, request: Request, kb_id: int) -> Response:
        return Response(s.KnowledgeBaseOutput(get_object_or_404(_kbs(), pk=kb_id)).data)

    @extend_schema(request=s.KnowledgeBaseUpdateInput, responses={200: s.KnowledgeBaseOutput})
    def patch(self, request: Request, kb_id: int) -> Response:
        kb = _kb(kb_id)
        data = s.KnowledgeBaseUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.knowledge_base_update(editor=actor_for(request), kb=kb, **data.validated_data)
        return Response(s.KnowledgeBaseOutput(_kbs().get(pk=kb.pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, kb_id: int) -> Response:
        services.knowledge_base_delete(editor=actor_for(request), kb=_kb(kb_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SourceListView(generics.ListAPIView):  # type: ignore[type-arg]
    """A knowledge base's sources. POST adds one: multipart with `file` (PDF, DOCX, HTML,
    Markdown, text, CSV; `type=faq` imports a question/answer CSV), or JSON for url/text/faq."""

    scope_resource = "knowledge"
    serializer_class = s.SourceOutput
    parser_classes = [StrictJSONParser, MultiPartParser, FormParser]
    ordering_fields = ["id", "created_at", "status"]
    filterset_fields = ["status", "type"]

    def get_queryset(self) -> QuerySet[Source]:
        if getattr(self, "swagger_fake_view", False):
            return Source.objects.none()
        return source_list(kb=_kb(self.kwargs["kb_id"]))

    @extend_schema(
        request={
            "application/json": OpenApiRequest(s.SourceJSONInput),
            "multipart/form-data": OpenApiRequest(s.SourceUploadInput),
        },
        responses={201: s.SourceOutput},
    )
    def post(self, request: Request, kb_id: int) -> Response:
        kb = _kb(kb_id)
        actor = actor_for(request)
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.KNOWLEDGE_MAX_FILE_BYTES + 1024 * 1024:
            raise ApplicationError(
                f"The upload is larger than {settings.KNOWLEDGE_MAX_FILE_BYTES // (1024 * 1024)} MB.",
                code="file_too_large",
                status_code=413,
            )
        if request.content_type.startswith("multipart/"):
            upload = s.SourceUploadInput(data=request.data)
            upload.is_valid(raise_exception=True)
            data = upload.validated_data
            if data["type"] == "faq":
                source = services.source_add_faq(
                    editor=actor,
                    kb=kb,
                    csv_data=data["file"].read(settings.KNOWLEDGE_MAX_FILE_BYTES + 1),
                    title=data["title"] or "FAQ",
                )
            else:
                source = services.source_add_file(editor=actor, kb=kb, upload=data["file"], title=data["title"])
        else:
            body = s.SourceJSONInput(data=request.data)
            body.is_valid(raise_exception=True)
            data = body.validated_data
            if data["type"] == "url":
                source = services.source_add_url(
                    editor=actor,
                    kb=kb,
                    url=data["url"],
                    title=data["title"],
                    crawl=data["crawl"],
                    max_pages=data.get("max_pages"),
                    sync_interval_hours=data.get("sync_interval_hours"),
                )
            elif data["type"] == "text":
                source = services.source_add_text(editor=actor, kb=kb, text=data["text"], title=data["title"])
            else:
                source = services.source_add_faq(
                    editor=actor, kb=kb, entries=data["entries"], title=data["title"] or "FAQ"
                )
        return Response(s.SourceOutput(source).data, status=status.HTTP_201_CREATED)


class SourceDetailView(KnowledgeView):
    def _get(self, kb_id: int, source_id: int) -> Source:
        return get_object_or_404(Source, pk=source_id, knowledge_base_id=kb_id)

    @extend_schema(responses={200: s.SourceDetailOutput})
    def get(self, request: Request, kb_id: int, source_id: int) -> Response:
        return Response(s.SourceDetailOutput(self._get(kb_id, source_id)).data)

    @extend_schema(request=s.SourceUpdateInput, responses={200: s.SourceDetailOutput})
    def patch(self, request: Request, kb_id: int, source_id: int) -> Response:
        source = self._get(kb_id, source_id)
        data = s.SourceUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        actor = actor_for(request)
        changes: dict[str, Any] = {}
        if "title" in values:
            changes["title"] = values["title"]
        if "sync_interval_hours" in values:
            changes["sync_interval_hours"] = values["sync_interval_hours"]
        if changes:
            source = services.source_update(editor=actor, source=source, **changes)
        if "entries" in values:
            source = services.faq_replace_entries(editor=actor, source=source, entries=values["entries"])
        return Response(s.SourceDetailOutput(source).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, kb_id: int, source_id: int) -> Response:
        services.source_delete(editor=actor_for(request), source=self._get(kb_id, source_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SourceResyncView(KnowledgeView):
    @extend_schema(request=None, responses={202: s.SourceOutput})
    def post(self, request: Request, kb_id: int, source_id: int) -> Response:
        source = get_object_or_404(Source, pk=source_id, knowledge_base_id=kb_id)
        source = services.source_resync(editor=actor_for(request), source=source)
        return Response(s.SourceOutput(source).data, status=status.HTTP_202_ACCEPTED)


class SearchView(KnowledgeView):
    """Hybrid search over chosen knowledge bases. Readers (any role, or a key with
    `knowledge:read`) may search: it changes nothing."""

    reads_only = True

    @extend_schema(request=s.SearchInput, responses={200: s.SearchOutput})
    def post(self, request: Request) -> Response:
        data = s.SearchInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        wanted = set(values["knowledge_bases"])
        found = set(KnowledgeBase.objects.filter(pk__in=wanted).values_list("pk", flat=True))
        if wanted - found:
            missing = ", ".join(str(i) for i in sorted(wanted - found))
            raise ApplicationError(
                f"Unknown knowledge bases: {missing}.", fields={"knowledge_bases": [f"Unknown: {missing}."]}
            )
        hits = search_service.search(
            query=values["query"],
            knowledge_base_ids=sorted(wanted),
            top_k=values["top_k"],
            mode=values["mode"],
            mmr=values["mmr"],
            min_similarity=values.get("min_similarity"),
        )
        return Response(s.SearchOutput({"results": [hit.__dict__ for hit in hits]}).data)
