"""Vector stores behind one interface, chosen by the `KNOWLEDGE_VECTOR_STORE` setting.

- `pgvector` (default): vectors live on the chunk rows in the tenant's schema, HNSW-indexed.
- `pinecone`: vectors in Pinecone through the official SDK, one namespace per tenant
  (`tenant-<schema>`), metadata filter per knowledge base, one index per embedding
  dimension. Settings: PINECONE_API_KEY, PINECONE_INDEX, PINECONE_INDEX_HOST,
  PINECONE_CONTROLLER_HOST (see `stores/pinecone.py`).

`schema` is the tenant's schema name (the caller's `connection.schema_name`); `model` the
knowledge base's embedding model, which decides the vector's dimension. `delete` takes no
model: a store removes the ids wherever they are; `drop_tenant` removes all of a tenant's
vectors when its workspace is deleted (pgvector: they go with the schema). `query` returns hits whose chunk rows
exist, nearest first, with cosine similarity.

A store may also return stored vectors by chunk id (`StoredVectors`; pgvector does, reading
the column of the model). Search's MMR uses them; with a store that does not, it embeds the
candidates' texts again with the knowledge base's model.

Every store passes the same contract suite (apps/knowledge/tests/test_stores.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol, runtime_checkable

from django.conf import settings


@dataclass(frozen=True)
class VectorRecord:
    chunk_id: int
    knowledge_base_id: int
    source_id: int
    vector: list[float]


@dataclass(frozen=True)
class VectorHit:
    chunk_id: int
    similarity: float  # cosine similarity, -1..1


class VectorStore(Protocol):
    name: str

    def upsert(self, *, schema: str, model: str, records: Sequence[VectorRecord]) -> None: ...

    def delete(self, *, schema: str, chunk_ids: Sequence[int]) -> None: ...

    def drop_tenant(self, *, schema: str) -> None:
        """Remove every vector of the tenant (workspace deletion); idempotent."""
        ...

    def query(
        self, *, schema: str, model: str, vector: Sequence[float], knowledge_base_ids: Sequence[int], top_k: int
    ) -> list[VectorHit]: ...


@runtime_checkable
class StoredVectors(Protocol):
    def vectors(self, *, schema: str, model: str, chunk_ids: Sequence[int]) -> dict[int, list[float]]:
        """The stored `model` vectors of those chunks; ids without one are left out."""
        ...


@cache
def _store(name: str) -> VectorStore:
    if name == "pgvector":
        from .pgvector import PgVectorStore

        return PgVectorStore()
    if name == "pinecone":
        from .pinecone import PineconeStore

        return PineconeStore()
    raise ValueError(f"unknown vector store {name!r}")


def get_store() -> VectorStore:
    return _store(settings.KNOWLEDGE_VECTOR_STORE)
