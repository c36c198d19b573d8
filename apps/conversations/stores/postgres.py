"""PostgreSQL conversation store: `conversations_message` in the tenant's schema.

`seq` comes from the conversation's `last_seq` counter, raised by one in the statement that
locks its row (`UPDATE ... SET last_seq = ... + 1 RETURNING last_seq`), so one round trip both
queues concurrent writers and allocates; a writer that waited for the lock re-reads the
counter as its holder committed it, so no seq is skipped or taken twice. The counter never
falls behind what is stored: it is raised from the larger of itself and max(seq) (one step
down the (conversation, seq) unique index, in the same statement), so a conversation record
saved from a stale copy cannot make a later append collide.

One race is left to a retry: a writer that saves the conversation from a stale copy while an
append waits for the lock can hand the append a counter behind the last message, which that
statement's snapshot cannot see; the insert then clashes on (conversation, seq) and the append
runs again as a new statement (APPEND_ATTEMPTS). The services lock the conversation before
appending, so only direct callers of the store meet it.

A repeated client_id is caught by the (conversation, client_id) unique index: the insert fails,
the savepoint around the append rolls the counter back with it (no gap), and the stored message
is returned. Checking first would cost every message a round trip to spare the rare retry one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Max

from ..models import Conversation, Message
from . import StoredMessage

_conversations = Conversation._meta.db_table
_messages = Message._meta.db_table
# Locks the conversation's row and returns its next seq (no row: no such conversation).
ALLOCATE_SEQ = (
    f"UPDATE {_conversations} SET last_seq = GREATEST(last_seq, "  # noqa: S608 (table names only)
    f"(SELECT COALESCE(MAX(seq), 0) FROM {_messages} WHERE conversation_id = %s)) + 1 "
    "WHERE id = %s RETURNING last_seq"
)

APPEND_ATTEMPTS = 3


def _stored(m: Message) -> StoredMessage:
    return StoredMessage(
        conversation_id=m.conversation_id,
        seq=m.seq,
        role=m.role,
        text=m.text,
        created_at=m.created_at,
        client_id=m.client_id,
        author_id=m.author_id,
        author_label=m.author_label,
        citations=list(m.citations or []),
        audit=dict(m.audit or {}),
    )


class Store:
    name = "postgres"

    def append(
        self,
        *,
        schema: str,
        conversation_id: int,
        role: str,
        text: str,
        client_id: str | None = None,
        author_id: int | None = None,
        author_label: str = "",
        citations: Sequence[dict[str, Any]] = (),
        audit: dict[str, Any] | None = None,
    ) -> tuple[StoredMessage, bool]:
        for attempt in range(APPEND_ATTEMPTS):
            try:
                with transaction.atomic():
                    with connection.cursor() as cursor:
                        cursor.execute(ALLOCATE_SEQ, [conversation_id, conversation_id])
                        row = cursor.fetchone()
                    if row is None:
                        raise Conversation.DoesNotExist(f"Conversation {conversation_id} does not exist.")
                    message = Message.objects.create(
                        conversation_id=conversation_id,
                        seq=row[0],
                        role=role,
                        text=text,
                        client_id=client_id or None,
                        author_id=author_id,
                        author_label=author_label,
                        citations=list(citations),
                        audit=audit or {},
                    )
                    return _stored(message), True
            except IntegrityError:
                if client_id:
                    existing = Message.objects.filter(conversation_id=conversation_id, client_id=client_id).first()
                    if existing is not None:
                        return _stored(existing), False
                if attempt == APPEND_ATTEMPTS - 1:
                    raise
                # A seq clash: the counter was saved back from a stale copy while this statement
                # waited for the lock, and its snapshot predates the last append. A new statement
                # sees that append.
        raise AssertionError("unreachable")

    def after(self, *, schema: str, conversation_id: int, after_seq: int, limit: int = 500) -> list[StoredMessage]:
        rows = Message.objects.filter(conversation_id=conversation_id, seq__gt=after_seq).order_by("seq")[:limit]
        return [_stored(m) for m in rows]

    def before(
        self, *, schema: str, conversation_id: int, before_seq: int | None, limit: int = 50
    ) -> list[StoredMessage]:
        qs = Message.objects.filter(conversation_id=conversation_id)
        if before_seq is not None:
            qs = qs.filter(seq__lt=before_seq)
        return [_stored(m) for m in reversed(qs.order_by("-seq")[:limit])]

    def last_seq(self, *, schema: str, conversation_id: int) -> int:
        return int(Message.objects.filter(conversation_id=conversation_id).aggregate(top=Max("seq"))["top"] or 0)

    def delete_conversation(self, *, schema: str, conversation_id: int) -> int:
        deleted, _ = Message.objects.filter(conversation_id=conversation_id).delete()
        return int(deleted)

    def drop_tenant(self, *, schema: str) -> None:
        # The message table is in the tenant's schema: dropping the schema drops the transcripts.
        return None
