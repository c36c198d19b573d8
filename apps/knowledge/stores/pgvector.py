"""pgvector store: vectors on `knowledge_chunk` rows in the tenant's schema.

Filtering by knowledge base without losing recall: HNSW applies the WHERE clause after the
graph walk, so a filter that matches few of the walked rows returns fewer than `top_k`
(the post-filter pitfall). Small candidate sets (≤ KNOWLEDGE_EXACT_SEARCH_MAX chunks) are
searched exactly instead; large ones use HNSW with a raised `ef_search`, iterative scans
where the server has them (pgvector ≥ 0.8), and fall back to exact search if the index
still returns too few rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from django.conf import settings
from django.db import connection, transaction

from . import VectorHit, VectorRecord

COLUMNS = {384: "embedding", 1536: "embedding_1536"}


def _column(model: str) -> str:
    from ..embeddings import dimensions_of

    return COLUMNS[dimensions_of(model)]


def _vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(f"{v:.7g}" for v in vector) + "]"


@cache
def _has_iterative_scan() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    if not row:
        return False
    major, minor = (int(p) for p in str(row[0]).split(".")[:2])
    return (major, minor) >= (0, 8)


class PgVectorStore:
    name = "pgvector"

    def upsert(self, *, schema: str, model: str, records: Sequence[VectorRecord]) -> None:
        if not records:
            return
        column = _column(model)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE knowledge_chunk SET {column} = %s::vector WHERE id = %s",  # noqa: S608 (column from a fixed map)
                [(_vector_literal(r.vector), r.chunk_id) for r in records],
            )

    def delete(self, *, schema: str, chunk_ids: Sequence[int]) -> None:
        # The vectors are columns of the chunk rows: deleting the rows deletes them.
        return None

    def query(
        self, *, schema: str, model: str, vector: Sequence[float], knowledge_base_ids: Sequence[int], top_k: int
    ) -> list[VectorHit]:
        if not knowledge_base_ids or top_k <= 0:
            return []
        column = _column(model)
        literal = _vector_literal(vector)
        kb_ids = list(knowledge_base_ids)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT count(*) FROM knowledge_chunk WHERE knowledge_base_id = ANY(%s) AND {column} IS NOT NULL",  # noqa: S608
                [kb_ids],
            )
            candidates = cursor.fetchone()[0]
        if candidates == 0:
            return []
        exact = candidates <= settings.KNOWLEDGE_EXACT_SEARCH_MAX
        hits = self._search(column, literal, kb_ids, top_k, exact=exact)
        if not exact and len(hits) < min(top_k, candidates):
            hits = self._search(column, literal, kb_ids, top_k, exact=True)
        return hits

    def _search(self, column: str, literal: str, kb_ids: list[int], top_k: int, *, exact: bool) -> list[VectorHit]:
        sql = (
            f"SELECT id, 1 - ({column} <=> %s::vector) FROM knowledge_chunk "  # noqa: S608 (column from a fixed map)
            f"WHERE knowledge_base_id = ANY(%s) AND {column} IS NOT NULL "
            f"ORDER BY {column} <=> %s::vector LIMIT %s"
        )
        with transaction.atomic(), connection.cursor() as cursor:
            if exact:
                # Planner hint for this transaction only: scan and sort, perfect recall.
                cursor.execute("SET LOCAL enable_indexscan = off")
            else:
                cursor.execute(f"SET LOCAL hnsw.ef_search = {max(settings.KNOWLEDGE_HNSW_EF_SEARCH, top_k * 2)}")
                if _has_iterative_scan():
                    cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cursor.execute(sql, [literal, kb_ids, literal, top_k])
            rows = cursor.fetchall()
        return [VectorHit(chunk_id=row[0], similarity=float(row[1])) for row in rows]
