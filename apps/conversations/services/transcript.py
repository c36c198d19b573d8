"""Lines the service itself writes in a transcript (system lines, private notes) and the
`message.created` / `note.created` event of any stored message."""

from __future__ import annotations

from apps.accounts.services import Actor
from apps.events import types as events
from apps.events.services import emit

from ..models import Conversation
from ..stores import StoredMessage, get_store
from .notify import current_schema, wake


def message_event(conversation: Conversation, message: StoredMessage) -> events.Event:
    """`message.created` for what the visitor sees, `note.created` (no text) for a note."""
    if message.role == "note":
        return events.note_created(conversation_id=conversation.pk, seq=message.seq, author_id=message.author_id)
    return events.message_created(
        conversation_id=conversation.pk,
        seq=message.seq,
        role=message.role,
        text=message.text,
        client_id=message.client_id,
        author_id=message.author_id,
        author=message.author_label,
        citations=list(message.citations),
    )


def system_line(conversation: Conversation, text: str) -> None:
    """A system line in the transcript (ownership changes, rating...)."""
    message, _ = get_store().append(schema=current_schema(), conversation_id=conversation.pk, role="system", text=text)
    conversation.last_seq = max(conversation.last_seq, message.seq)
    emit(message_event(conversation, message))
    wake(conversation, message.seq)


def add_note(conversation: Conversation, text: str) -> None:
    """A private note in the transcript (staff only), e.g. the AI's handoff summary."""
    message, _ = get_store().append(schema=current_schema(), conversation_id=conversation.pk, role="note", text=text)
    conversation.last_seq = max(conversation.last_seq, message.seq)
    conversation.save(update_fields=["last_seq", "updated_at"])
    emit(message_event(conversation, message), system_label="ai")
    wake(conversation, message.seq)


def system_message(conversation: Conversation, text: str) -> None:
    system_line(conversation, text)
    conversation.save(update_fields=["last_seq", "updated_at"])


def display_name(actor: Actor | None) -> str:
    """How a staff member is named to visitors: their name, never their email address."""
    if actor is None:
        return ""
    user = actor.user
    if user is None:
        return "Support team"
    return str(getattr(user, "full_name", "") or "").strip() or user.email.split("@")[0]
