"""Routing API: teams, intents (with a detection endpoint), routing rules, the human queue,
manual assignment, staff presence and SLA events (docs/api.md, "Routing").

Owners and admins (and API keys with `routing:write`) change the configuration; everyone
reads it. Assigning a conversation and setting one's own presence are conversation work:
`conversations:write`, the agent role and up. Writes go through the routing and conversation
services, which check roles again, audit and publish the realtime events.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db import IntegrityError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api.views import actor_for
from apps.accounts.authentication import APIKeyPrincipal
from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.agents.models import Agent
from apps.conversations import services as conversations
from apps.conversations.models import Conversation
from apps.tenants.db import connection
from syntera.errors import ApplicationError
from syntera.filters import DateTimeFilter

from .. import intents, presence, selectors, services
from ..models import Intent, RoutingRule, SLAEvent, Team
from . import serializers as s

TEAM_FIELDS = (
    "name",
    "strategy",
    "business_hours",
    "out_of_hours_message",
    "first_response_minutes",
    "resolution_minutes",
    "is_default",
)


def _conflict(detail: str, field: str) -> ApplicationError:
    return ApplicationError(detail, code="conflict", status_code=409, fields={field: [detail]})


# --- teams ------------------------------------------------------------------------------------


def _team_save(request: Request, data: dict[str, Any], team: Team | None = None) -> Team:
    actor = actor_for(request)
    members = data.pop("members", None)
    fields = {k: v for k, v in data.items() if k in TEAM_FIELDS}
    try:
        return services.team_save(
            actor=actor,
            team=team,
            members=[(m["user"], m["capacity"]) for m in members] if members is not None else None,
            **fields,
        )
    except IntegrityError:  # a concurrent request took the name
        raise _conflict("Another team has this name.", "name") from None


def _team_input(serializer: type[s.TeamInput], request: Request, team: Team | None = None) -> dict[str, Any]:
    actor = actor_for(request)
    data = serializer(data=request.data, context={"team": team, "staff_ids": selectors.staff_ids(tenant=actor.tenant)})
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


class TeamListView(generics.ListAPIView):  # type: ignore[type-arg]
    """Teams: members with capacity and presence, strategy, business hours, SLA targets,
    out-of-hours message. Without teams, the first escalation creates "Support"."""

    scope_resource = "routing"
    serializer_class = s.TeamOutput
    ordering_fields = ["id", "name"]

    def get_queryset(self) -> QuerySet[Team]:
        return selectors.team_list().order_by("id")

    @extend_schema(request=s.TeamInput, responses={201: s.TeamOutput})
    def post(self, request: Request) -> Response:
        team = _team_save(request, _team_input(s.TeamInput, request))
        return Response(s.TeamOutput(selectors.team_get(team.pk)).data, status=status.HTTP_201_CREATED)


class TeamDetailView(APIView):
    scope_resource = "routing"

    @extend_schema(responses={200: s.TeamOutput})
    def get(self, request: Request, team_id: int) -> Response:
        return Response(s.TeamOutput(get_object_or_404(selectors.team_list(), pk=team_id)).data)

    @extend_schema(request=s.TeamUpdateInput, responses={200: s.TeamOutput})
    def patch(self, request: Request, team_id: int) -> Response:
        team = get_object_or_404(Team, pk=team_id)
        team = _team_save(request, _team_input(s.TeamUpdateInput, request, team), team)
        return Response(s.TeamOutput(selectors.team_get(team.pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, team_id: int) -> Response:
        services.team_delete(actor=actor_for(request), team=get_object_or_404(Team, pk=team_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- intents ----------------------------------------------------------------------------------


def _intent_save(request: Request, serializer: type[s.IntentInput], intent: Intent | None = None) -> Intent:
    data = serializer(data=request.data, context={"intent": intent})
    data.is_valid(raise_exception=True)
    try:
        return services.intent_save(actor=actor_for(request), intent=intent, **data.validated_data)
    except IntegrityError:
        raise _conflict("Another intent has this name.", "name") from None


class IntentListView(generics.ListAPIView):  # type: ignore[type-arg]
    """Intents: example phrases (matched by meaning), keywords and a threshold."""

    scope_resource = "routing"
    serializer_class = s.IntentOutput
    ordering_fields = ["id", "name"]

    def get_queryset(self) -> QuerySet[Intent]:
        return selectors.intent_list()

    @extend_schema(request=s.IntentInput, responses={201: s.IntentOutput})
    def post(self, request: Request) -> Response:
        return Response(s.IntentOutput(_intent_save(request, s.IntentInput)).data, status=status.HTTP_201_CREATED)


class IntentDetailView(APIView):
    scope_resource = "routing"

    @extend_schema(responses={200: s.IntentOutput})
    def get(self, request: Request, intent_id: int) -> Response:
        return Response(s.IntentOutput(get_object_or_404(Intent, pk=intent_id)).data)

    @extend_schema(request=s.IntentUpdateInput, responses={200: s.IntentOutput})
    def patch(self, request: Request, intent_id: int) -> Response:
        intent = get_object_or_404(Intent, pk=intent_id)
        return Response(s.IntentOutput(_intent_save(request, s.IntentUpdateInput, intent)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, intent_id: int) -> Response:
        services.intent_delete(actor=actor_for(request), intent=get_object_or_404(Intent, pk=intent_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class IntentDetectView(APIView):
    """The intent this workspace's intents find in a text, with its confidence (the best
    similarity to an intent's examples; a keyword hit counts at least 0.9). Changes nothing."""

    scope_resource = "routing"
    reads_only = True

    @extend_schema(request=s.IntentDetectInput, responses={200: s.IntentDetectOutput})
    def post(self, request: Request) -> Response:
        data = s.IntentDetectInput(data=request.data)
        data.is_valid(raise_exception=True)
        found = intents.detect(data.validated_data["text"])
        body = {"intent": found.intent, "confidence": found.confidence, "by": found.by} if found else None
        return Response(body or {"intent": None, "confidence": None, "by": None})


# --- rules ------------------------------------------------------------------------------------


def _rule_targets(values: dict[str, Any]) -> dict[str, Any]:
    """Model fields from the input, each referenced row checked to exist in this workspace."""
    fields: dict[str, Any] = {}
    for key, model in (("intent", Intent), ("agent", Agent), ("team", Team)):
        if key not in values:
            continue
        pk = values.pop(key)
        if pk is not None and not model.objects.filter(pk=pk).exists():
            raise ApplicationError(f"Unknown {key}.", code="invalid", fields={key: [f"No such {key}."]})
        fields[f"{key}_id"] = pk
    return {**values, **fields}


def _rule_save(request: Request, serializer: type[s.RoutingRuleInput], rule: RoutingRule | None = None) -> RoutingRule:
    data = serializer(data=request.data, context={"attribute": rule.contact_attribute if rule else ""})
    data.is_valid(raise_exception=True)
    fields = _rule_targets(dict(data.validated_data))
    if rule is None and "position" not in fields:
        last = RoutingRule.objects.order_by("-position").values_list("position", flat=True).first()
        fields["position"] = 0 if last is None else last + 1
    return services.rule_save(actor=actor_for(request), rule=rule, **fields)


class RoutingRuleListView(generics.ListAPIView):  # type: ignore[type-arg]
    """Routing rules in the order they are tried (position, then id); the first rule whose
    conditions all hold sends the conversation to its AI agent or team."""

    scope_resource = "routing"
    serializer_class = s.RoutingRuleOutput
    filterset_fields = ["team", "agent", "intent", "is_active"]

    def get_queryset(self) -> QuerySet[RoutingRule]:
        return RoutingRule.objects.order_by("position", "id")

    @extend_schema(request=s.RoutingRuleInput, responses={201: s.RoutingRuleOutput})
    def post(self, request: Request) -> Response:
        rule = _rule_save(request, s.RoutingRuleInput)
        return Response(s.RoutingRuleOutput(rule).data, status=status.HTTP_201_CREATED)


class RoutingRuleDetailView(APIView):
    scope_resource = "routing"

    @extend_schema(responses={200: s.RoutingRuleOutput})
    def get(self, request: Request, rule_id: int) -> Response:
        return Response(s.RoutingRuleOutput(get_object_or_404(RoutingRule, pk=rule_id)).data)

    @extend_schema(request=s.RoutingRuleUpdateInput, responses={200: s.RoutingRuleOutput})
    def patch(self, request: Request, rule_id: int) -> Response:
        rule = get_object_or_404(RoutingRule, pk=rule_id)
        return Response(s.RoutingRuleOutput(_rule_save(request, s.RoutingRuleUpdateInput, rule)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, rule_id: int) -> Response:
        services.rule_delete(actor=actor_for(request), rule=get_object_or_404(RoutingRule, pk=rule_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- the queue and assignment -----------------------------------------------------------------


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    if not str(raw).isdigit() or len(str(raw)) > 9:
        raise ApplicationError(f"{name} is an id (a whole number).", code="invalid", fields={name: ["Not an id."]})
    return int(str(raw))


def queue_row(entry: selectors.QueueEntry, team_names: dict[int, str]) -> dict[str, Any]:
    c = entry.conversation
    return {
        "conversation": c.pk,
        "position": entry.position,
        "priority": c.priority,
        "waited_seconds": entry.waited_seconds,
        "queued_at": c.queued_at,
        "team": entry.team_id,
        "team_name": team_names.get(entry.team_id or 0, ""),
        "channel": c.channel,
        "inbox": c.inbox_id,
        "contact": c.contact_id,
        "intent": c.intent,
        "preview": c.last_message_preview,
    }


class QueueView(generics.ListAPIView):  # type: ignore[type-arg]
    """Conversations waiting for a person, in the order they are offered: priority, then
    waiting time. `position` is the place in the team's queue."""

    scope_resource = "routing"
    serializer_class = s.QueueEntryOutput
    filter_backends: list[Any] = []

    @extend_schema(parameters=[OpenApiParameter("team", int, description="Only this team's queue.")])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        entries = selectors.queue_entries(team_id=_int_param(request, "team"))
        names = dict(Team.objects.values_list("id", "name"))
        rows = [queue_row(e, names) for e in entries]
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(s.QueueEntryOutput(page, many=True).data)


class AssignView(APIView):
    """Assign (or reassign) a conversation to a staff member. Owners and admins assign any
    conversation; an agent assigns a waiting one, or hands their own to a colleague."""

    scope_resource = "conversations"
    write_role = Role.AGENT

    @extend_schema(request=s.AssignInput, responses={200: s.AssignedConversationOutput})
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = get_object_or_404(Conversation, pk=conversation_id)
        data = s.AssignInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            conversation = conversations.conversation_assign(
                actor=actor_for(request), conversation=conversation, user_id=data.validated_data["user"]
            )
        except ApplicationError as exc:
            if "assignee" in exc.fields:  # the service names the model field; the API calls it user
                exc.fields = {"user": exc.fields.pop("assignee"), **exc.fields}
            raise
        return Response(s.AssignedConversationOutput(conversation).data)


# --- presence ---------------------------------------------------------------------------------


class PresenceListView(generics.ListAPIView):  # type: ignore[type-arg]
    """Staff (agent role and up) with their presence: online, away or offline."""

    scope_resource = "routing"
    serializer_class = s.PresenceOutput
    filter_backends: list[Any] = []

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=s.PRESENCE_CHOICES, description="Only these.")])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        wanted = request.query_params.get("status", "")
        if wanted and wanted not in s.PRESENCE_CHOICES:
            raise ApplicationError(
                "status is online, away or offline.", code="invalid", fields={"status": ["Unknown status."]}
            )
        rows = selectors.presence_list(tenant=actor_for(request).tenant, status=wanted)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(s.PresenceOutput(page, many=True).data)


def _person(request: Request) -> Actor:
    if isinstance(request.user, APIKeyPrincipal):
        raise ApplicationError(
            "Presence belongs to a person; an API key has none.", code="permission_denied", status_code=403
        )
    return actor_for(request)


class PresenceMeView(APIView):
    """Your own presence. `online` and `away` last 90 seconds unless renewed: the dashboard's
    socket renews them while it is open; `offline` ends them."""

    scope_resource = "conversations"
    write_role = Role.AGENT

    @extend_schema(responses={200: s.PresenceOutput})
    def get(self, request: Request) -> Response:
        actor = _person(request)
        return Response(selectors.presence_of(tenant=actor.tenant, user=actor.user, role=actor.role))

    @extend_schema(request=s.PresenceInput, responses={200: s.PresenceOutput})
    def put(self, request: Request) -> Response:
        actor = _person(request)
        data = s.PresenceInput(data=request.data)
        data.is_valid(raise_exception=True)
        assert actor.user is not None
        schema = str(connection.schema_name)
        wanted = data.validated_data["status"]
        before = presence.choose(schema, actor.user.pk, wanted)
        if before != wanted:
            presence.announce(schema, actor.user.pk, wanted)
        return Response(selectors.presence_of(tenant=actor.tenant, user=actor.user, role=actor.role))


# --- SLA --------------------------------------------------------------------------------------


class SLAEventFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=SLAEvent.Kind.choices)
    breached = django_filters.BooleanFilter(method="filter_breached", label="true: breached; false: not breached")
    state = django_filters.ChoiceFilter(
        choices=[(x, x) for x in selectors.SLA_STATES], method="filter_state", label="open, met or breached"
    )
    team = django_filters.NumberFilter(field_name="team_id")
    since = DateTimeFilter(field_name="due_at", lookup_expr="gte", label="due at or after")

    class Meta:
        model = SLAEvent
        fields = ["kind", "breached", "state", "team", "since"]

    def filter_breached(self, queryset: QuerySet[SLAEvent], name: str, value: bool | None) -> QuerySet[SLAEvent]:
        return queryset if value is None else queryset.filter(breached_at__isnull=not value)

    def filter_state(self, queryset: QuerySet[SLAEvent], name: str, value: str) -> QuerySet[SLAEvent]:
        return selectors.sla_by_state(queryset, value)


class SLAEventListView(generics.ListAPIView):  # type: ignore[type-arg]
    """SLA clocks (first response, resolution) started on escalation: due, breached or met;
    the latest due first."""

    scope_resource = "routing"
    serializer_class = s.SLAEventOutput
    filterset_class = SLAEventFilter
    ordering_fields = ["due_at", "breached_at", "met_at", "id"]

    def get_queryset(self) -> QuerySet[SLAEvent]:
        return selectors.sla_event_list()
