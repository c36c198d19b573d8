"""Knowledge bases: create, update (name, embedding model, weights), delete with their vectors."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.accounts.services import Actor
from apps.audit.services import audit_action
from syntera.errors import ApplicationError

from .. import embeddings
from ..models import Chunk, KnowledgeBase
from .common import _after_delete, _require_admin
from .sources import _queue


def _validate_kb(name: str | None, embedding_model: str | None) -> None:
    if name is not None and (not name.strip() or len(name) > 120):
        raise ApplicationError("Name is required (at most 120 characters).", fields={"name": ["Required."]})
    if embedding_model is not None and embedding_model not in embeddings.provider_names():
        raise ApplicationError(
            f"Unknown embedding model {embedding_model!r}.",
            fields={"embedding_model": [f"Choose one of: {', '.join(embeddings.provider_names())}."]},
        )


@transaction.atomic
def knowledge_base_create(
    *, editor: Actor, name: str, description: str = "", embedding_model: str = "local-minilm"
) -> KnowledgeBase:
    _require_admin(editor)
    _validate_kb(name, embedding_model)
    kb = KnowledgeBase.objects.create(
        name=name.strip(), description=description, embedding_model=embedding_model, created_by=editor.user
    )
    audit_action(editor, "knowledge_base.created", kb, {"name": kb.name})
    return kb


@transaction.atomic
def knowledge_base_update(*, editor: Actor, kb: KnowledgeBase, **changes: Any) -> KnowledgeBase:
    """Rename, describe, retune weights, or change the embedding model (which re-embeds)."""
    _require_admin(editor)
    _validate_kb(changes.get("name"), changes.get("embedding_model"))
    for weight in ("dense_weight", "lexical_weight"):
        if weight in changes and not 0 <= float(changes[weight]) <= 10:
            raise ApplicationError("Weights are between 0 and 10.", fields={weight: ["Between 0 and 10."]})
    model_changed = "embedding_model" in changes and changes["embedding_model"] != kb.embedding_model
    for field, value in changes.items():
        setattr(kb, field, value.strip() if isinstance(value, str) and field == "name" else value)
    kb.save()
    if model_changed:
        for source in kb.sources.all():
            _queue(source, force=True)
    audit_action(editor, "knowledge_base.updated", kb, {k: str(v) for k, v in changes.items()})
    return kb


@transaction.atomic
def knowledge_base_delete(*, editor: Actor, kb: KnowledgeBase) -> None:
    _require_admin(editor)
    chunk_ids = list(Chunk.objects.filter(knowledge_base=kb).values_list("id", flat=True))
    files = [str(s.file.name) for s in kb.sources.exclude(file="")]
    audit_action(editor, "knowledge_base.deleted", kb, {"name": kb.name, "chunks": len(chunk_ids)})
    kb.delete()
    _after_delete(chunk_ids, files)
