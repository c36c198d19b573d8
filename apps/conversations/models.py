"""Inboxes, conversations and (for the PostgreSQL store) messages, in the tenant's schema.
See docs/subsystems/conversations.md.

The conversation *record* (status, owner, assignee, contact, tags, counters) always lives
here, where the inbox queries and the routing rules need it. The *transcript* (messages with
their per-conversation `seq`) goes through the conversation-store interface
(`apps/conversations/stores/`): PostgreSQL (`Message`, below) by default, MongoDB when
configured.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from apps.agents.models import Agent
from apps.crm.models import Contact


def new_widget_key() -> str:
    return "wk_" + secrets.token_urlsafe(18)


def new_encrypted_identity_secret() -> str:
    from .identity import new_encrypted_identity_secret as make

    return make()


def default_widget_settings() -> dict[str, object]:
    return {
        "title": "Chat with us",
        "greeting": "",
        "color": "#2563eb",
        "text_color": "#ffffff",
        "position": "right",
        "allowed_origins": [],
        "pre_chat_fields": [],
        "business_hours_message": "",
        "identity_required": False,
    }


class Inbox(models.Model):
    class Channel(models.TextChoices):
        WEB = "web", "Web chat"
        API = "api", "API"
        EMAIL = "email", "Email"
        SMS = "sms", "SMS"
        VOICE = "voice", "Voice"

    name = models.CharField(max_length=120)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.WEB)
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="inboxes")
    widget_key = models.CharField(max_length=40, unique=True, default=new_widget_key)
    # The host site signs a visitor's identity with this secret (HMAC-SHA256), encrypted at
    # rest; see apps/conversations/identity.py.
    identity_secret_encrypted = models.TextField(blank=True, default=new_encrypted_identity_secret)
    settings = models.JSONField(default=default_widget_settings, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Conversation(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PENDING = "pending", "Pending"
        RESOLVED = "resolved", "Resolved"
        SNOOZED = "snoozed", "Snoozed"

    class Owner(models.TextChoices):
        AI = "ai", "AI agent"
        QUEUE = "queue", "Waiting for a human"
        HUMAN = "human", "Human"

    inbox = models.ForeignKey(Inbox, on_delete=models.PROTECT, related_name="conversations")
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations")
    # SHA-256 of the visitor token: the token is the visitor's key to this conversation.
    visitor_token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    channel = models.CharField(max_length=10, choices=Inbox.Channel.choices, default=Inbox.Channel.WEB)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    owner = models.CharField(max_length=10, choices=Owner.choices, default=Owner.AI)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The AI agent answering (a routing rule may pick another than the inbox's) and the team
    # whose queue the conversation waits in once escalated.
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    team = models.ForeignKey(
        "routing.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    priority = models.SmallIntegerField(default=0, help_text="Higher waits less in the queue.")
    queued_at = models.DateTimeField(null=True, blank=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    intent = models.CharField(max_length=80, blank=True)
    intent_confidence = models.FloatField(null=True, blank=True)
    visitor_turns = models.PositiveIntegerField(default=0)
    # Bumped on every ownership change and on resolve: an AI reply started under an older
    # epoch is discarded (see services.ai_reply).
    epoch = models.PositiveIntegerField(default=1)
    last_seq = models.PositiveIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True)
    last_message_preview = models.CharField(max_length=200, blank=True)
    # Who wrote the latest message (notes aside): a visitor message still last while the AI owns
    # the conversation is a turn the AI owes (the stalled-turn sweep finds it).
    last_role = models.CharField(max_length=10, blank=True)
    unread = models.PositiveIntegerField(default=0, help_text="Visitor messages staff have not read.")
    tags = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    # What the visitor said about themselves (name, email, phone...): unverified claims, never
    # a key to a contact (docs/adr/0011-visitor-identity.md).
    claims = models.JSONField(default=dict, blank=True)
    summary = models.TextField(blank=True)
    summary_until_seq = models.PositiveIntegerField(default=0)
    abstentions = models.PositiveIntegerField(default=0)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    rating_comment = models.TextField(blank=True, max_length=2000)
    visitor_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_message_at", "-id"]
        indexes = [
            models.Index(fields=["status", "-last_message_at"], name="conv_status_recent"),
            models.Index(fields=["assignee", "status"], name="conv_assignee_status"),
            models.Index(fields=["inbox", "status"], name="conv_inbox_status"),
            models.Index(fields=["owner", "team", "-priority", "queued_at"], name="conv_queue"),
            models.Index(
                fields=["last_message_at"],
                name="conv_awaiting_ai",
                condition=models.Q(owner="ai", last_role="visitor", status="open"),
            ),
        ]

    def __str__(self) -> str:
        return f"Conversation {self.pk}"


class Message(models.Model):
    """A transcript entry in the PostgreSQL store. `seq` is per conversation and gap-free;
    `client_id` makes a visitor's retry idempotent."""

    class Role(models.TextChoices):
        VISITOR = "visitor", "Visitor"
        AI = "ai", "AI"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"
        NOTE = "note", "Private note"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=10, choices=Role.choices)
    text = models.TextField()
    client_id = models.CharField(max_length=64, null=True, blank=True)
    author_id = models.IntegerField(null=True, blank=True)
    author_label = models.CharField(max_length=254, blank=True)
    citations = models.JSONField(default=list, blank=True)
    audit = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["conversation_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_seq_unique"),
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=models.Q(client_id__isnull=False),
                name="message_client_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.seq}"


class AnswerFeedback(models.Model):
    """A visitor's verdict on one AI answer (the widget's thumbs): helpful or not. One per
    answer; a visitor who changes their mind replaces it. Kept here, not in the message
    store, so it works the same with either store."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="answer_feedback")
    seq = models.PositiveIntegerField()
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    helpful = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["conversation", "seq"], name="answer_feedback_unique")]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.seq} {'helpful' if self.helpful else 'unhelpful'}"
