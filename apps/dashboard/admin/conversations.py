"""Inboxes, conversations and messages in the workspace admin (site.py), read-only. A
conversation's page shows its transcript read through the conversation store
(whichever backend holds it), every text escaped; private notes are marked. Changes go
through the dashboard and the API, where the services audit them and tell the sockets."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from apps.conversations import selectors
from apps.conversations.models import Conversation, Inbox, Message

from .site import TenantScopedAdmin, tenant_admin_site

TRANSCRIPT_LIMIT = 1000
CONVERSATION_FIELDS = (  # all read-only; the transcript comes from the store
    "inbox",
    "channel",
    "status",
    "owner",
    "assignee",
    "contact",
    "tags",
    "attributes",
    "claims",
    "unread",
    "last_seq",
    "last_message_at",
    "rating",
    "rating_comment",
    "snoozed_until",
    "summary",
    "created_at",
    "updated_at",
    "transcript",
)


def _who(role: str, author: str) -> str:
    if role == "note":
        return "Private note" + (f" ({author})" if author else "")
    return author or role


@admin.register(Inbox, site=tenant_admin_site)
class InboxAdmin(TenantScopedAdmin):
    tenant_field = None  # lives in the tenant schema already
    list_display = ["name", "channel", "agent", "widget_key", "is_active", "created_at"]
    list_filter = ["channel", "is_active"]
    search_fields = ["name", "widget_key"]
    list_select_related = ["agent"]
    exclude = ["identity_secret_encrypted"]  # never shown, not even encrypted


@admin.register(Conversation, site=tenant_admin_site)
class ConversationAdmin(TenantScopedAdmin):
    tenant_field = None
    list_display = [
        "__str__",
        "inbox",
        "channel",
        "status",
        "owner",
        "assignee",
        "contact",
        "unread",
        "last_message_at",
        "last_message_preview",
    ]
    list_filter = ["status", "owner", "channel", "inbox"]
    search_fields = ["last_message_preview", "contact__name", "contact__email"]
    list_select_related = ["inbox", "assignee", "contact"]
    fields = CONVERSATION_FIELDS
    readonly_fields = CONVERSATION_FIELDS

    @admin.display(description="Transcript")
    def transcript(self, obj: Conversation) -> Any:
        messages = selectors.messages_page(obj.pk, after_seq=0, limit=TRANSCRIPT_LIMIT)
        if not messages:
            return "No messages."
        rows = format_html_join(
            "",
            '<tr class="msg {}" data-seq="{}"><td>{}</td><td>{}</td><td>{}</td><td class="text">{}</td></tr>',
            (
                (
                    m.role,
                    m.seq,
                    m.seq,
                    m.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    _who(m.role, m.author_label),
                    m.text,
                )
                for m in messages
            ),
        )
        more = "" if len(messages) < TRANSCRIPT_LIMIT else f" (the first {TRANSCRIPT_LIMIT} messages)"
        return format_html(
            '<table id="transcript"><thead><tr><th>#</th><th>When</th><th>Who</th><th>Text{}</th></tr></thead>'
            "<tbody>{}</tbody></table>",
            more,
            rows,
        )


@admin.register(Message, site=tenant_admin_site)
class MessageAdmin(TenantScopedAdmin):
    """The PostgreSQL store's table (empty when transcripts live in MongoDB)."""

    tenant_field = None
    list_display = ["__str__", "conversation", "seq", "role", "short_text", "author_label", "created_at"]
    list_filter = ["role"]
    search_fields = ["text", "author_label"]
    list_select_related = ["conversation"]
    exclude = ["client_id"]

    @admin.display(description="Text")
    def short_text(self, obj: Message) -> str:
        return obj.text if len(obj.text) <= 120 else obj.text[:119] + "…"
