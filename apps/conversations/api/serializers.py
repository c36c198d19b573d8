from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.agents.api.serializers import CitationOutput

from ..models import Conversation, Inbox

PRE_CHAT_FIELDS = ("name", "email", "phone")


class InboxOutput(serializers.ModelSerializer):
    identity_secret = serializers.SerializerMethodField(
        help_text="The secret the host site signs visitors' identities with (web inboxes); null unless the caller "
        "may manage inboxes (owners and admins; API keys with inboxes:write)."
    )

    class Meta:
        model = Inbox
        fields = [
            "id",
            "name",
            "channel",
            "agent",
            "widget_key",
            "identity_secret",
            "settings",
            "is_active",
            "created_at",
        ]

    def get_identity_secret(self, inbox: Inbox) -> str | None:
        from ..identity import identity_secret

        if not self.context.get("show_secret") or inbox.channel != Inbox.Channel.WEB:
            return None
        return identity_secret(inbox) or None


class AbuseDayOutput(serializers.Serializer):
    day = serializers.DateField()
    connections = serializers.IntegerField(help_text="WebSocket connections refused (per address or per inbox).")
    sessions = serializers.IntegerField(help_text="New conversations refused.")
    messages = serializers.IntegerField(help_text="Visitor messages refused (per address).")
    ai_replies = serializers.IntegerField(help_text="AI answers withheld: the visitor's daily share was used up.")
    total = serializers.IntegerField()


class InboxAbuseOutput(serializers.Serializer):
    inbox = serializers.IntegerField()
    days = AbuseDayOutput(many=True)
    limits = serializers.DictField(child=serializers.CharField())


class InboxInput(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    channel = serializers.ChoiceField(choices=Inbox.Channel.choices, default=Inbox.Channel.WEB)
    agent = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    title = serializers.CharField(max_length=120, required=False, allow_blank=True)
    greeting = serializers.CharField(max_length=500, required=False, allow_blank=True)
    color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False)
    text_color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False)
    position = serializers.ChoiceField(choices=["left", "right"], required=False)
    allowed_origins = serializers.ListField(child=serializers.CharField(max_length=300), max_length=50, required=False)
    pre_chat_fields = serializers.ListField(child=serializers.ChoiceField(choices=PRE_CHAT_FIELDS), required=False)
    business_hours_message = serializers.CharField(max_length=500, required=False, allow_blank=True)
    identity_required = serializers.BooleanField(
        required=False, help_text="Only visitors with a valid signed identity may chat (web inboxes)."
    )

    def validate_allowed_origins(self, value: list[str]) -> list[str]:
        from urllib.parse import urlsplit

        cleaned = []
        for origin in value:
            origin = origin.strip().rstrip("/")
            parts = urlsplit(origin)
            if origin != "*" and (parts.scheme not in ("http", "https") or not parts.hostname or parts.path):
                raise serializers.ValidationError(f"{origin[:80]!r} is not an origin like https://shop.example.")
            cleaned.append(origin.lower())
        return cleaned


class InboxUpdateInput(InboxInput):
    name = serializers.CharField(max_length=120, required=False)
    channel = None  # type: ignore[assignment]
    is_active = serializers.BooleanField(required=False)


class ConversationOutput(serializers.ModelSerializer):
    claims = serializers.DictField(
        child=serializers.CharField(), read_only=True, help_text="What the visitor said about themselves, unverified."
    )
    identity = serializers.SerializerMethodField(help_text="verified | unverified | anonymous")

    def get_identity(self, conversation: Conversation) -> str:
        from ..identity import identity_state

        return identity_state(conversation)

    class Meta:
        model = Conversation
        fields = [
            "id",
            "inbox",
            "channel",
            "status",
            "owner",
            "assignee",
            "contact",
            "unread",
            "last_seq",
            "last_message_at",
            "last_message_preview",
            "tags",
            "attributes",
            "claims",
            "identity",
            "summary",
            "rating",
            "rating_comment",
            "snoozed_until",
            "created_at",
            "updated_at",
        ]


class VisitorContactInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)
    phone = serializers.RegexField(r"^\+?[0-9 ().-]{5,30}$", required=False, allow_blank=True)


class ConversationCreateInput(serializers.Serializer):
    inbox = serializers.IntegerField(min_value=1)
    contact = VisitorContactInput(required=False)
    text = serializers.CharField(max_length=4000, required=False, allow_blank=True)
    client_id = serializers.CharField(max_length=64, required=False)


class ConversationCreateOutput(ConversationOutput):
    visitor_token = serializers.CharField(read_only=True)

    class Meta(ConversationOutput.Meta):
        fields = [*ConversationOutput.Meta.fields, "visitor_token"]


class ConversationUpdateInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=Conversation.Status.choices, required=False)
    snoozed_until = serializers.DateTimeField(required=False, allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=40), max_length=20, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("status") == "snoozed" and not attrs.get("snoozed_until"):
            raise serializers.ValidationError({"snoozed_until": ["Snoozing needs a time to wake up."]})
        return attrs


class MessageOutput(serializers.Serializer):
    seq = serializers.IntegerField()
    role = serializers.CharField()
    text = serializers.CharField()
    client_id = serializers.CharField(allow_null=True)
    author_label = serializers.CharField(allow_blank=True)
    citations = serializers.ListField(child=serializers.DictField())
    audit = serializers.DictField()
    created_at = serializers.DateTimeField()


class MessageInput(serializers.Serializer):
    text = serializers.CharField(max_length=4000)
    role = serializers.ChoiceField(choices=["agent", "note", "visitor"], default="agent")
    client_id = serializers.CharField(max_length=64, required=False)


class SuggestionOutput(serializers.Serializer):
    text = serializers.CharField(help_text="The draft; empty when the agent did not answer.")
    decision = serializers.CharField(help_text="answered | abstained | escalate")
    reason = serializers.CharField()
    citations = CitationOutput(many=True)
