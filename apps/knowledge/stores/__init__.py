"""Vector stores behind one interface, chosen by the `KNOWLEDGE_VECTOR_STORE` setting.

- `pgvector` (default): vectors live on the chunk rows in the tenant's schema, HNSW-indexed.

Every store passes the same contract suite (apps/knowledge/tests/test_stores.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol

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

    def query(
        self, *, schema: str, model: str, vector: Sequence[float], knowledge_base_ids: Sequence[int], top_k: int
    ) -> list[VectorHit]: ...


@cache
def _store(name: str) -> VectorStore:
    if name == "pgvector":
        from .pgvector import PgVectorStore

        return PgVectorStore()
    raise ValueError(f"unknown vector store {name!r}")


def get_store() -> VectorStore:
    return _store(settings.KNOWLEDGE_VECTOR_STORE)
