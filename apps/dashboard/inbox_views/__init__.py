"""Dashboard pages for the staff inbox: the conversation list, a conversation with its
transcript and the staff's actions (conversations.py), and the inboxes with their web-chat
widget settings (inboxes.py). Live updates come over the staff WebSocket and are applied by
static/js/inbox.js, which re-reads the JSON endpoints here on each event.
"""

from .conversations import (
    conversation_action,
    conversation_detail,
    conversation_messages,
    conversation_reply,
    conversation_suggest,
    inbox,
    inbox_json,
)
from .inboxes import inbox_active, inbox_rotate_key, inbox_rotate_secret, inbox_settings, inboxes

__all__ = [
    "conversation_action",
    "conversation_detail",
    "conversation_messages",
    "conversation_reply",
    "conversation_suggest",
    "inbox",
    "inbox_active",
    "inbox_json",
    "inbox_rotate_key",
    "inbox_rotate_secret",
    "inbox_settings",
    "inboxes",
]
