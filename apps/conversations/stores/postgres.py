"""PostgreSQL conversation store: `conversations_message` in the tenant's schema.

`seq` is allocated under a row lock on the conversation (SELECT ... FOR UPDATE), as
max(seq) + 1 read through the (conversation, seq) unique index, so concurrent writers queue
on the lock and never leave a gap. The (conversation, client_id) unique index makes a
repeated client_id a no-op even if two writers race past the check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from ..models import Conversation, Message
from . import StoredMessage


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
        try:
            with transaction.atomic():
                Conversation.objects.select_for_update().only("id").get(pk=conversation_id)
                if client_id:
                    existing = Message.objects.filter(conversation_id=conversation_id, client_id=client_id).first()
                    if existing is not None:
                        return _stored(existing), False
                top = Message.objects.filter(conversation_id=conversation_id).aggregate(top=Max("seq"))["top"] or 0
                message = Message.objects.create(
                    conversation_id=conversation_id,
                    seq=top + 1,
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
            raise

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
