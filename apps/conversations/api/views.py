"""Conversations API: inboxes, conversations and their messages — the API channel
(docs/api.md). Messages posted here take the same path as the widget's, so they appear in
the inbox and the widget live."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api.views import actor_for
from apps.accounts.models import Role
from apps.agents.models import Agent
from syntera.errors import ApplicationError

from .. import abuse, selectors, services
from ..models import Conversation, Inbox
from . import serializers as s

INBOX_SETTINGS = (
    "title",
    "greeting",
    "color",
    "text_color",
    "position",
    "allowed_origins",
    "pre_chat_fields",
    "business_hours_message",
    "identity_required",
)


def _may_manage(request: Request) -> bool:
    """Owners and admins, and API keys with inboxes:write, see inboxes' secrets."""
    actor = actor_for(request)
    return actor.has_role(Role.ADMIN) and "inboxes:write" in actor.scopes


def _inbox_body(request: Request, inbox: Inbox) -> Any:
    return s.InboxOutput(inbox, context={"show_secret": _may_manage(request)}).data


def _agent_id(data: dict[str, Any]) -> int | None:
    agent = data.get("agent")
    if agent is not None and not Agent.objects.filter(pk=agent).exists():
        raise ApplicationError("Unknown agent.", code="invalid", status_code=400, fields={"agent": ["Unknown agent."]})
    return agent


class InboxListView(generics.ListAPIView):  # type: ignore[type-arg]
    """The workspace's inboxes; web-chat inboxes carry the `widget_key` of their snippet."""

    scope_resource = "inboxes"
    serializer_class = s.InboxOutput
    ordering_fields = ["id", "name"]
    filterset_fields = ["channel", "is_active"]

    def get_queryset(self) -> QuerySet[Inbox]:
        return Inbox.objects.all()

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "show_secret": _may_manage(self.request)}

    @extend_schema(request=s.InboxInput, responses={201: s.InboxOutput})
    def post(self, request: Request) -> Response:
        data = s.InboxInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        inbox = services.inbox_create(
            actor=actor_for(request),
            name=values.pop("name"),
            channel=values.pop("channel"),
            agent_id=_agent_id(values),
            **{k: v for k, v in values.items() if k in INBOX_SETTINGS},
        )
        return Response(_inbox_body(request, inbox), status=status.HTTP_201_CREATED)


class InboxDetailView(APIView):
    scope_resource = "inboxes"

    @extend_schema(responses={200: s.InboxOutput})
    def get(self, request: Request, inbox_id: int) -> Response:
        return Response(_inbox_body(request, get_object_or_404(Inbox, pk=inbox_id)))

    @extend_schema(request=s.InboxUpdateInput, responses={200: s.InboxOutput})
    def patch(self, request: Request, inbox_id: int) -> Response:
        inbox = get_object_or_404(Inbox, pk=inbox_id)
        data = s.InboxUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        changes = {k: v for k, v in values.items() if k in (*INBOX_SETTINGS, "name", "is_active")}
        if "agent" in values:
            changes["agent_id"] = _agent_id(values)
        inbox = services.inbox_update(actor=actor_for(request), inbox=inbox, **changes)
        return Response(_inbox_body(request, inbox))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, inbox_id: int) -> Response:
        services.inbox_delete(actor=actor_for(request), inbox=get_object_or_404(Inbox, pk=inbox_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class InboxRotateKeyView(APIView):
    """A new widget key; snippets with the old key stop connecting."""

    scope_resource = "inboxes"

    @extend_schema(request=None, responses={200: s.InboxOutput})
    def post(self, request: Request, inbox_id: int) -> Response:
        inbox = services.inbox_rotate_key(actor=actor_for(request), inbox=get_object_or_404(Inbox, pk=inbox_id))
        return Response(_inbox_body(request, inbox))


class InboxRotateIdentitySecretView(APIView):
    """A new identity-verification secret; identities signed with the old one stop
    verifying (docs/adr/0011-visitor-identity.md)."""

    scope_resource = "inboxes"

    @extend_schema(request=None, responses={200: s.InboxOutput})
    def post(self, request: Request, inbox_id: int) -> Response:
        from ..identity import inbox_rotate_identity_secret

        inbox = get_object_or_404(Inbox, pk=inbox_id)
        if inbox.channel != Inbox.Channel.WEB:
            raise ApplicationError("Only web-chat inboxes verify visitors' identities.", code="invalid")
        inbox = inbox_rotate_identity_secret(actor=actor_for(request), inbox=inbox)
        return Response(_inbox_body(request, inbox))


class InboxAbuseView(APIView):
    """What the inbox's limits on anonymous visitors refused, per day (today first), and the
    limits in force. Refused connections and new chats are only counted, never stored."""

    scope_resource = "inboxes"

    @extend_schema(responses={200: s.InboxAbuseOutput})
    def get(self, request: Request, inbox_id: int) -> Response:
        inbox = get_object_or_404(Inbox, pk=inbox_id)
        schema = request._request.tenant.schema_name  # type: ignore[attr-defined]
        return Response({"inbox": inbox.pk, "days": abuse.counts(schema, inbox.pk), "limits": abuse.limits()})


class ConversationListView(generics.ListAPIView):  # type: ignore[type-arg]
    """Conversations, newest activity first. POST starts one in an API inbox (the integrator
    speaks for the visitor) and returns its `visitor_token` once."""

    scope_resource = "conversations"
    write_role = Role.AGENT
    serializer_class = s.ConversationOutput
    ordering_fields = ["id", "last_message_at", "created_at"]
    filterset_fields = ["status", "channel", "inbox", "assignee", "owner", "contact"]

    def get_queryset(self) -> QuerySet[Conversation]:
        qs = selectors.conversations_listed()  # from the first message on, like the inbox page
        if str(self.request.query_params.get("unread", "")).lower() in ("1", "true"):
            qs = qs.filter(unread__gt=0)
        return qs

    @extend_schema(request=s.ConversationCreateInput, responses={201: s.ConversationCreateOutput})
    def post(self, request: Request) -> Response:
        data = s.ConversationCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        inbox = Inbox.objects.filter(pk=values["inbox"], is_active=True).first()
        if inbox is None or inbox.channel != Inbox.Channel.API:
            raise ApplicationError(
                "Conversations are started through the API in an active API inbox.",
                code="invalid",
                status_code=400,
                fields={"inbox": ["Not an active API inbox."]},
            )
        conversation, token = services.conversation_start(inbox=inbox)
        if values.get("contact"):
            conversation = services.conversation_identify(conversation_id=conversation.pk, fields=values["contact"])
        if values.get("text"):
            services.message_post(
                conversation_id=conversation.pk, role="visitor", text=values["text"], client_id=values.get("client_id")
            )
            conversation.refresh_from_db()
        body = {**s.ConversationOutput(conversation).data, "visitor_token": token}
        return Response(body, status=status.HTTP_201_CREATED)


class ConversationDetailView(APIView):
    scope_resource = "conversations"
    write_role = Role.AGENT

    @extend_schema(responses={200: s.ConversationOutput})
    def get(self, request: Request, conversation_id: int) -> Response:
        return Response(s.ConversationOutput(get_object_or_404(Conversation, pk=conversation_id)).data)

    @extend_schema(request=s.ConversationUpdateInput, responses={200: s.ConversationOutput})
    def patch(self, request: Request, conversation_id: int) -> Response:
        conversation = get_object_or_404(Conversation, pk=conversation_id)
        data = s.ConversationUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        actor = actor_for(request)
        if "status" in values:
            conversation = services.conversation_set_status(
                actor=actor,
                conversation=conversation,
                status=values["status"],
                snoozed_until=values.get("snoozed_until"),
            )
        if "tags" in values:
            conversation = services.conversation_set_tags(actor=actor, conversation=conversation, tags=values["tags"])
        return Response(s.ConversationOutput(conversation).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, conversation_id: int) -> Response:
        conversation = get_object_or_404(Conversation, pk=conversation_id)
        services.conversation_delete(actor=actor_for(request), conversation=conversation)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TakeOverView(APIView):
    """A human takes the conversation from the AI (or the queue): the AI stops answering."""

    scope_resource = "conversations"
    write_role = Role.AGENT

    @extend_schema(request=None, responses={200: s.ConversationOutput})
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = get_object_or_404(Conversation, pk=conversation_id)
        conversation = services.conversation_take_over(actor=actor_for(request), conversation=conversation)
        return Response(s.ConversationOutput(conversation).data)


class HandBackView(APIView):
    """Hand the conversation back to the inbox's AI agent."""

    scope_resource = "conversations"
    write_role = Role.AGENT

    @extend_schema(request=None, responses={200: s.ConversationOutput})
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = get_object_or_404(Conversation, pk=conversation_id)
        conversation = services.conversation_hand_back(actor=actor_for(request), conversation=conversation)
        return Response(s.ConversationOutput(conversation).data)


class SuggestedReplyView(APIView):
    """A draft reply for staff from the conversation's AI agent (nothing is stored or sent)."""

    scope_resource = "conversations"
    write_role = Role.AGENT

    @extend_schema(request=None, responses={200: s.SuggestionOutput})
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = get_object_or_404(
            Conversation.objects.select_related("inbox__agent", "agent"), pk=conversation_id
        )
        suggestion = services.reply_suggestion(actor=actor_for(request), conversation=conversation)
        return Response(s.SuggestionOutput(suggestion).data)


class MessageListView(APIView):
    """A conversation's messages in `seq` order. `after_seq` pages forward (replay), `before_seq`
    backward. POST adds one: `agent` (a human reply; takes over from the AI), `note` (private,
    never shown to the visitor) or, in an API inbox, `visitor` (the AI answers it)."""

    scope_resource = "conversations"
    write_role = Role.AGENT

    @extend_schema(
        parameters=[
            OpenApiParameter("after_seq", int, description="Messages after this seq (default 0)."),
            OpenApiParameter("before_seq", int, description="The messages just before this seq."),
            OpenApiParameter("limit", int, description="At most this many (1-500, default 100)."),
        ],
        responses={200: s.MessageOutput(many=True)},
    )
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = get_object_or_404(Conversation, pk=conversation_id)
        params = request.query_params
        try:
            limit = max(1, min(500, int(params.get("limit", 100))))
            after = int(params["after_seq"]) if "after_seq" in params else None
            before = int(params["before_seq"]) if "before_seq" in params else None
        except ValueError:
            raise ApplicationError("after_seq, before_seq and limit are integers.", code="invalid") from None
        messages = selectors.messages_page(
            conversation.pk, before_seq=before, after_seq=None if before is not None else after or 0, limit=limit
        )
        return Response({"results": s.MessageOutput([m.__dict__ for m in messages], many=True).data})

    @extend_schema(request=s.MessageInput, responses={201: s.MessageOutput, 200: s.MessageOutput})
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = get_object_or_404(Conversation.objects.select_related("inbox"), pk=conversation_id)
        data = s.MessageInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if values["role"] == "visitor" and conversation.inbox.channel != Inbox.Channel.API:
            raise ApplicationError(
                "Only API-inbox conversations take visitor messages through the API.",
                code="invalid",
                status_code=400,
                fields={"role": ["visitor is for API inboxes."]},
            )
        actor = actor_for(request) if values["role"] != "visitor" else None
        message, created = services.message_post(
            conversation_id=conversation.pk,
            role=values["role"],
            text=values["text"],
            client_id=values.get("client_id"),
            actor=actor,
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(s.MessageOutput(message.__dict__).data, status=code)
