"""Agents API: agents (CRUD, prompt versions, test turn), provider credentials, AI usage
(docs/api.md)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api.views import actor_for
from apps.accounts.models import Role

from .. import batch, guardrails, services
from ..commit import turn_meter
from ..models import Agent, BatchTest, KnowledgeGap, ProviderCredential, UsageCounter
from ..providers import PROVIDER_MODULES, Turn, capabilities_for
from ..runtime import answer_turn
from ..runtime.turns import TurnInput
from ..selectors import agent_export, agent_list, agent_performance, knowledge_gaps
from . import serializers as s


class AgentsView(APIView):
    scope_resource: str | tuple[str, ...] = "agents"


class AgentListView(generics.ListAPIView):  # type: ignore[type-arg]
    scope_resource = "agents"
    serializer_class = s.AgentOutput
    ordering_fields = ["id", "name", "created_at"]
    filterset_fields = ["provider", "is_active"]

    def get_queryset(self) -> QuerySet[Agent]:
        if getattr(self, "swagger_fake_view", False):
            return Agent.objects.none()
        return agent_list()

    @extend_schema(request=s.AgentInput, responses={201: s.AgentOutput})
    def post(self, request: Request) -> Response:
        data = s.AgentInput(data=request.data)
        data.is_valid(raise_exception=True)
        agent = services.agent_create(editor=actor_for(request), **data.validated_data)
        return Response(s.AgentOutput(agent_list().get(pk=agent.pk)).data, status=status.HTTP_201_CREATED)


class AgentDetailView(AgentsView):
    @extend_schema(responses={200: s.AgentOutput})
    def get(self, request: Request, agent_id: int) -> Response:
        return Response(s.AgentOutput(get_object_or_404(agent_list(), pk=agent_id)).data)

    @extend_schema(request=s.AgentUpdateInput, responses={200: s.AgentOutput})
    def patch(self, request: Request, agent_id: int) -> Response:
        agent = get_object_or_404(Agent, pk=agent_id)
        data = s.AgentUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.agent_update(editor=actor_for(request), agent=agent, **data.validated_data)
        return Response(s.AgentOutput(agent_list().get(pk=agent.pk)).data)

    @extend_schema(request=s.AgentInput, responses={200: s.AgentOutput})
    def put(self, request: Request, agent_id: int) -> Response:
        agent = get_object_or_404(Agent, pk=agent_id)
        data = s.AgentInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.agent_update(editor=actor_for(request), agent=agent, **data.validated_data)
        return Response(s.AgentOutput(agent_list().get(pk=agent.pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, agent_id: int) -> Response:
        services.agent_delete(editor=actor_for(request), agent=get_object_or_404(Agent, pk=agent_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AgentVersionsView(generics.ListAPIView):  # type: ignore[type-arg]
    """The agent's prompt versions, newest first; `snapshot` holds the settings of each."""

    scope_resource = "agents"
    serializer_class = s.PromptVersionOutput
    ordering_fields = ["number"]
    filterset_fields: list[str] = []

    def get_queryset(self) -> QuerySet:  # type: ignore[type-arg]
        if getattr(self, "swagger_fake_view", False):
            return Agent.objects.none()
        agent = get_object_or_404(Agent, pk=self.kwargs["agent_id"])
        return agent.versions.order_by("-number")


class KnowledgeGapListView(generics.ListAPIView):  # type: ignore[type-arg]
    """Questions the agent could not answer from its knowledge, most asked first;
    `?dismissed=true` lists the dismissed ones."""

    scope_resource = "agents"
    serializer_class = s.KnowledgeGapOutput
    ordering_fields = ["count", "last_asked_at"]
    filterset_fields: list[str] = []

    def get_queryset(self) -> QuerySet[KnowledgeGap]:
        if getattr(self, "swagger_fake_view", False):
            return KnowledgeGap.objects.none()
        agent = get_object_or_404(Agent, pk=self.kwargs["agent_id"])
        dismissed = str(self.request.query_params.get("dismissed", "")).lower() in ("1", "true", "yes")
        return knowledge_gaps(agent, dismissed=dismissed)


class KnowledgeGapDetailView(AgentsView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, agent_id: int, gap_id: int) -> Response:
        """Dismiss the question until it is asked again."""
        gap = get_object_or_404(KnowledgeGap, pk=gap_id, agent_id=agent_id)
        services.knowledge_gap_dismiss(editor=actor_for(request), gap=gap)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AgentStatsView(AgentsView):
    """What the agent did over the last `days` days: turns answered, abstained and handed over,
    tokens and latency; per day and per channel."""

    @extend_schema(parameters=[s.StatsQuery], responses={200: s.StatsOutput})
    def get(self, request: Request, agent_id: int) -> Response:
        agent = get_object_or_404(Agent, pk=agent_id)
        query = s.StatsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(s.StatsOutput(agent_performance(agent, days=query.validated_data["days"])).data)


class KnowledgeGapAnswerView(AgentsView):
    """Answer an unanswered question: a question and answer in the agent's knowledge (its
    "Answered questions" FAQ), indexed at once; the question is dismissed."""

    scope_resource = ("agents", "knowledge")  # it writes a knowledge source

    @extend_schema(request=s.GapAnswerInput, responses={201: s.GapAnswerOutput})
    def post(self, request: Request, agent_id: int, gap_id: int) -> Response:
        gap = get_object_or_404(KnowledgeGap, pk=gap_id, agent_id=agent_id)
        data = s.GapAnswerInput(data=request.data)
        data.is_valid(raise_exception=True)
        faq = services.knowledge_gap_answer(
            editor=actor_for(request),
            gap=gap,
            answer=data.validated_data["answer"],
            question=data.validated_data["question"],
            knowledge_base_id=data.validated_data["knowledge_base"],
        )
        body = {
            "source_id": faq.pk,
            "knowledge_base": faq.knowledge_base_id,
            "title": faq.title,
            "entries": faq.faq_entries.count(),
        }
        return Response(s.GapAnswerOutput(body).data, status=status.HTTP_201_CREATED)


class BatchTestListView(generics.ListCreateAPIView):  # type: ignore[type-arg]
    """The agent's batch tests, newest first; POST queues one (staff of the agent role and up,
    or a key with `agents:test`; each question spends the AI quota like a test turn)."""

    scope_resource = "agents"
    write_scopes = ("agents:test",)
    write_role = Role.AGENT
    serializer_class = s.BatchOutput
    ordering_fields = ["created_at"]
    filterset_fields: list[str] = ["status"]

    def get_queryset(self) -> QuerySet[BatchTest]:
        if getattr(self, "swagger_fake_view", False):
            return BatchTest.objects.none()
        return get_object_or_404(Agent, pk=self.kwargs["agent_id"]).batch_tests.all()

    @extend_schema(request=s.BatchInput, responses={202: s.BatchOutput})
    def post(self, request: Request, agent_id: int) -> Response:
        agent = get_object_or_404(Agent, pk=agent_id)
        data = s.BatchInput(data=request.data)
        data.is_valid(raise_exception=True)
        run = batch.batch_start(editor=actor_for(request), agent=agent, questions=data.validated_data["questions"])
        return Response(s.BatchOutput(run).data, status=status.HTTP_202_ACCEPTED)


class BatchTestDetailView(AgentsView):
    @extend_schema(parameters=[s.BatchQuery], responses={200: s.BatchDetailOutput})
    def get(self, request: Request, agent_id: int, batch_id: int) -> Response:
        """One batch test with every question's result so far, optionally compared with an
        earlier run of the same agent."""
        run = get_object_or_404(BatchTest, pk=batch_id, agent_id=agent_id)
        query = s.BatchQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data.get("compare_to")
        baseline = None
        if wanted == "previous":
            baseline = batch.batch_baseline(run)
        elif wanted:
            baseline = get_object_or_404(BatchTest, pk=int(wanted), agent_id=agent_id)
        comparison = batch.batch_compare(run, baseline) if baseline else None
        return Response(s.BatchDetailOutput(run, context={"comparison": comparison}).data)


class AgentVersionRestoreView(AgentsView):
    """Put back the settings of an earlier prompt version; they become the newest version."""

    @extend_schema(request=None, responses={200: s.AgentOutput})
    def post(self, request: Request, agent_id: int, number: int) -> Response:
        agent = get_object_or_404(Agent, pk=agent_id)
        services.agent_restore_version(editor=actor_for(request), agent=agent, number=number)
        return Response(s.AgentOutput(agent_list().get(pk=agent.pk)).data)


class AgentDuplicateView(AgentsView):
    """A new agent with every setting of this one (knowledge bases included), at version 1."""

    @extend_schema(request=s.DuplicateInput, responses={201: s.AgentOutput})
    def post(self, request: Request, agent_id: int) -> Response:
        agent = get_object_or_404(Agent, pk=agent_id)
        data = s.DuplicateInput(data=request.data)
        data.is_valid(raise_exception=True)
        copy = services.agent_duplicate(editor=actor_for(request), agent=agent, name=data.validated_data["name"])
        return Response(s.AgentOutput(agent_list().get(pk=copy.pk)).data, status=status.HTTP_201_CREATED)


class AgentExportView(AgentsView):
    """The agent's settings as a portable JSON document (knowledge bases by name)."""

    @extend_schema(responses={200: s.AgentExport})
    def get(self, request: Request, agent_id: int) -> Response:
        return Response(agent_export(get_object_or_404(agent_list(), pk=agent_id)))


class AgentImportView(AgentsView):
    """A new agent from an exported document, in this workspace; knowledge bases are matched
    by name and the names not found are listed."""

    @extend_schema(request=s.AgentImportInput, responses={201: s.AgentImportOutput})
    def post(self, request: Request) -> Response:
        data = s.AgentImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields, names = data.to_import()
        agent, missing = services.agent_import(editor=actor_for(request), settings=fields, knowledge_base_names=names)
        body = {"agent": s.AgentOutput(agent_list().get(pk=agent.pk)).data, "missing_knowledge_bases": missing}
        return Response(body, status=status.HTTP_201_CREATED)


class AgentTestView(AgentsView):
    """One AI turn for the given messages, through the same service the channels use, without
    creating a conversation or writing CRM data. Staff (agent role and up) or a key with
    `agents:test` (a turn spends the tenant's AI quota)."""

    write_scopes = ("agents:test",)
    write_role = Role.AGENT

    @extend_schema(request=s.TestInput, responses={200: s.TestOutput})
    def post(self, request: Request, agent_id: int) -> Response:
        agent = get_object_or_404(Agent, pk=agent_id)
        data = s.TestInput(data=request.data)
        data.is_valid(raise_exception=True)
        turns = [Turn(m["role"], m["text"]) for m in data.validated_data["messages"]]
        result = answer_turn(
            agent=agent,
            tenant=request._request.tenant,  # type: ignore[attr-defined]
            conversation=TurnInput(turns=turns, summary=data.validated_data["summary"], dry_run=True),
        )
        turn_meter(result=result)
        body = {
            "text": result.text,
            "decision": result.decision,
            "citations": [c.as_dict() for c in result.citations],
            "tool_calls": result.tool_calls,
            "summary": result.summary,
            "audit": result.audit,
        }
        return Response(s.TestOutput(body).data)


class CredentialListView(generics.ListAPIView):  # type: ignore[type-arg]
    """The tenant's LLM provider credentials. Keys are never returned, only `key_hint`."""

    scope_resource = "llm_credentials"
    read_role = Role.ADMIN
    serializer_class = s.CredentialOutput
    ordering_fields = ["provider"]
    filterset_fields: list[str] = []

    def get_queryset(self) -> QuerySet[ProviderCredential]:
        return ProviderCredential.objects.order_by("provider")


class CredentialDetailView(AgentsView):
    scope_resource = "llm_credentials"
    read_role = Role.ADMIN

    def _valid_provider(self, provider: str) -> str:
        if provider not in PROVIDER_MODULES or not capabilities_for(provider).needs_credentials:
            from syntera.errors import ApplicationError

            raise ApplicationError("Unknown provider.", code="not_found", status_code=404)
        return provider

    @extend_schema(responses={200: s.CredentialOutput})
    def get(self, request: Request, provider: str) -> Response:
        credential = get_object_or_404(ProviderCredential, provider=self._valid_provider(provider))
        return Response(s.CredentialOutput(credential).data)

    @extend_schema(request=s.CredentialInput, responses={200: s.CredentialOutput})
    def put(self, request: Request, provider: str) -> Response:
        data = s.CredentialInput(data=request.data)
        data.is_valid(raise_exception=True)
        credential = services.provider_credential_set(
            editor=actor_for(request), provider=self._valid_provider(provider), **data.validated_data
        )
        return Response(s.CredentialOutput(credential).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, provider: str) -> Response:
        credential = get_object_or_404(ProviderCredential, provider=self._valid_provider(provider))
        services.provider_credential_delete(editor=actor_for(request), credential=credential)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UsageView(AgentsView):
    """Today's AI usage against the workspace's daily quota."""

    @extend_schema(responses={200: s.UsageOutput})
    def get(self, request: Request) -> Response:
        counter = UsageCounter.objects.filter(day=timezone.localdate()).first()
        quota = guardrails.quota_for(request._request.tenant)  # type: ignore[attr-defined]
        body = {
            "day": timezone.localdate(),
            "requests": getattr(counter, "requests", 0),
            "prompt_tokens": getattr(counter, "prompt_tokens", 0),
            "completion_tokens": getattr(counter, "completion_tokens", 0),
            "request_quota": quota.requests,
            "token_quota": quota.tokens,
        }
        return Response(s.UsageOutput(body).data)
