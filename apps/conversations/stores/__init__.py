"""The conversation-store interface: where transcripts live (docs/subsystems/conversations.md).

A store keeps each conversation's messages in order of `seq`, which it allocates: 1, 2, 3...
per conversation, gap-free even with concurrent writers. `append` is idempotent on
`client_id`: a repeated id returns the message stored the first time (`created` False),
never a second copy. Stores are chosen by `CONVERSATION_STORE` ("postgres" default,
"mongodb"); every store passes the contract suite in apps/conversations/tests/test_stores.py.
Every call names the tenant's schema, which a store uses to keep tenants apart (PostgreSQL:
the current schema; MongoDB: one database per tenant).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Protocol

from django.conf import settings

ROLES = ("visitor", "ai", "agent", "system", "note")


@dataclass(frozen=True)
class StoredMessage:
    conversation_id: int
    seq: int
    role: str
    text: str
    created_at: datetime
    client_id: str | None = None
    author_id: int | None = None
    author_label: str = ""
    citations: list[dict[str, Any]] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)

    def frame(self) -> dict[str, Any]:
        """The widget protocol's `message` frame (BRIEF.md), plus when and who."""
        return {
            "type": "message",
            "seq": self.seq,
            "role": self.role,
            "text": self.text,
            "citations": self.citations,
            "created_at": self.created_at.isoformat(),
            "author": self.author_label if self.role == "agent" else "",
            **({"client_id": self.client_id} if self.client_id else {}),
        }


class ConversationStore(Protocol):
    name: str

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
        """Store a message with the next `seq`; (message, created). A known `client_id`
        returns the stored message and False."""
        ...

    def after(self, *, schema: str, conversation_id: int, after_seq: int, limit: int = 500) -> list[StoredMessage]:
        """Messages with seq > after_seq, oldest first, at most `limit`."""
        ...

    def before(
        self, *, schema: str, conversation_id: int, before_seq: int | None, limit: int = 50
    ) -> list[StoredMessage]:
        """The `limit` messages just before `before_seq` (None: the latest), oldest first."""
        ...

    def last_seq(self, *, schema: str, conversation_id: int) -> int: ...

    def delete_conversation(self, *, schema: str, conversation_id: int) -> int:
        """Remove a conversation's messages; returns how many."""
        ...

    def drop_tenant(self, *, schema: str) -> None:
        """Remove every transcript of the tenant (workspace deletion); idempotent."""
        ...


STORE_MODULES = {
    "postgres": "apps.conversations.stores.postgres",
    "mongodb": "apps.conversations.stores.mongodb",
}


@cache
def _store(name: str) -> ConversationStore:
    module = importlib.import_module(STORE_MODULES[name])
    store: ConversationStore = module.Store()
    return store


def get_store(name: str | None = None) -> ConversationStore:
    return _store(name or settings.CONVERSATION_STORE)
