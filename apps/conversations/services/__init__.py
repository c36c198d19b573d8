"""Writes to conversations, one module per concern (docs/subsystems/conversations.md):

- `messages`: the one path every message takes (`message_post`);
- `ownership`: who answers (take over, hand back, queue, assign, escalate, resolve), acting on
  the routing policy's decisions;
- `visitors`: starting a conversation, claims and verified identity, removing empty ones;
- `inboxes`, `records` (tags, read marks, deletion), `feedback` (rating, "helpful?");
- `ai`: the AI's turn and the staff's draft;
- `transcript`, `notify`: the system lines, notes, events and socket wake-ups they share.

The names callers use are importable from here.
"""

from __future__ import annotations

from .ai import AI_BUDGET_SPENT, ai_reply, reply_suggestion, turns_requeue_stalled
from .feedback import answer_feedback, conversation_rate
from .inboxes import inbox_create, inbox_delete, inbox_rotate_key, inbox_update
from .messages import message_post
from .notify import (
    VISIBLE_TO_VISITOR,
    conversation_group,
    current_schema,
    emit_updated,
    notify_frame,
    require_role,
    send_frame,
    summary_row,
    token_hash,
    wake,
    wakeups_held,
)
from .ownership import (
    ai_agent_id,
    assign_to,
    conversation_assign,
    conversation_escalate,
    conversation_hand_back,
    conversation_set_status,
    conversation_take_over,
    conversations_wake_snoozed,
    escalate_locked,
    move_to_queue,
    route_first_message,
    status_event,
    take_over,
)
from .records import conversation_delete, conversation_mark_read, conversation_set_tags
from .transcript import add_note, display_name, message_event, system_line, system_message
from .visitors import (
    conversation_claim,
    conversation_identify,
    conversation_start,
    conversation_verify,
    conversations_purge_empty,
    visitor_conversation,
)

__all__ = [
    "AI_BUDGET_SPENT",
    "VISIBLE_TO_VISITOR",
    "add_note",
    "ai_agent_id",
    "ai_reply",
    "answer_feedback",
    "assign_to",
    "conversation_assign",
    "conversation_claim",
    "conversation_delete",
    "conversation_escalate",
    "conversation_group",
    "conversation_hand_back",
    "conversation_identify",
    "conversation_mark_read",
    "conversation_rate",
    "conversation_set_status",
    "conversation_set_tags",
    "conversation_start",
    "conversation_take_over",
    "conversation_verify",
    "conversations_purge_empty",
    "conversations_wake_snoozed",
    "current_schema",
    "display_name",
    "emit_updated",
    "escalate_locked",
    "inbox_create",
    "inbox_delete",
    "inbox_rotate_key",
    "inbox_update",
    "message_event",
    "message_post",
    "move_to_queue",
    "notify_frame",
    "reply_suggestion",
    "require_role",
    "route_first_message",
    "send_frame",
    "status_event",
    "summary_row",
    "system_line",
    "system_message",
    "take_over",
    "token_hash",
    "turns_requeue_stalled",
    "visitor_conversation",
    "wake",
    "wakeups_held",
]
