"""pgvector store: vectors on `knowledge_chunk` rows in the tenant's schema.

Filtering by knowledge base without losing recall. HNSW applies the WHERE clause after the
graph walk: a scan visits at most `hnsw.ef_search` rows (pgvector < 0.8 has no iterative
scan), so a filter that keeps a fraction `s` of them returns about `s * ef_search` rows and
can return fewer than `top_k` (the post-filter pitfall). So each query picks its plan from
maintained counts (`knowledge_source.chunk_count`; no `count(*)` over the chunk rows):

- candidates ≤ KNOWLEDGE_EXACT_SEARCH_MAX, or a filter so selective that the graph walk
  would need more than pgvector's maximum ef_search (1000) to yield `top_k` rows: exact
  search. For 384-d vectors it is an index-only scan of the covering index
  `chunk_embedding_kb_cover` (knowledge base, id, vector; migration 0003): a knowledge
  base's vectors are read contiguously, without touching the wide chunk rows or their TOAST.
- otherwise HNSW with `ef_search = top_k * HNSW_OVERFETCH / s` (at least
  KNOWLEDGE_HNSW_EF_SEARCH), and exact search when it still returns fewer than `top_k`
  rows (the counts are estimates: a source being ingested has chunks before its count).

On pgvector ≥ 0.8 the HNSW path also turns on iterative scans. Figures and the profile
behind these choices: docs/benchmarks.md ("Knowledge"); see docs/subsystems/knowledge.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache

from django.conf import settings
from django.db import connection, transaction

from . import VectorHit, VectorRecord

COLUMNS = {384: "embedding", 1536: "embedding_1536"}
# pgvector's upper bound for hnsw.ef_search.
MAX_EF_SEARCH = 1000
# The graph walk is sized to return this many times `top_k` matching rows on average: for
# top_k = 100, fewer than 100 match only far below the mean (and the exact fallback catches
# that). 1.5 was measured too: no faster at 100k chunks, and SciFact dense nDCG@10 fell
# from 0.664 to 0.660 (docs/benchmarks.md).
HNSW_OVERFETCH = 2.0


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


def _models_sharing(model: str) -> list[str]:
    """The embedding models whose vectors live in the same column (same dimension) as `model`."""
    from ..embeddings import dimensions_of, provider_names

    return [name for name in provider_names() if dimensions_of(name) == dimensions_of(model)]


def candidate_counts(*, model: str, knowledge_base_ids: Sequence[int]) -> tuple[int, int]:
    """(chunks of these knowledge bases, chunks in this model's vector column): from the
    sources' `chunk_count`, kept by ingestion. An estimate: a source under ingestion already
    has chunks, a knowledge base re-embedding for a new model does not have its vectors yet."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(s.chunk_count) FILTER (WHERE s.knowledge_base_id = ANY(%s)), 0), "
            "coalesce(sum(s.chunk_count), 0) "
            "FROM knowledge_source s JOIN knowledge_knowledgebase kb ON kb.id = s.knowledge_base_id "
            "WHERE kb.embedding_model = ANY(%s)",
            [list(knowledge_base_ids), _models_sharing(model)],
        )
        selected, total = cursor.fetchone()
    return int(selected), int(total)


def plan(*, candidates: int, indexed: int, top_k: int) -> int | None:
    """The `hnsw.ef_search` of an HNSW query, or None for exact search."""
    if candidates <= max(settings.KNOWLEDGE_EXACT_SEARCH_MAX, top_k):
        return None
    # top_k * overfetch / selectivity, where selectivity = candidates / indexed (at most 1)
    walked = math.ceil(top_k * HNSW_OVERFETCH * max(indexed, candidates) / candidates)
    ef_search = max(settings.KNOWLEDGE_HNSW_EF_SEARCH, walked)
    return ef_search if ef_search <= MAX_EF_SEARCH else None


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

    def drop_tenant(self, *, schema: str) -> None:
        # The chunk table is in the tenant's schema: dropping the schema drops the vectors.
        return None

    def vectors(self, *, schema: str, model: str, chunk_ids: Sequence[int]) -> dict[int, list[float]]:
        if not chunk_ids:
            return {}
        column = _column(model)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, {column}::real[] FROM knowledge_chunk WHERE id = ANY(%s) AND {column} IS NOT NULL",  # noqa: S608 (column from a fixed map)
                [list(chunk_ids)],
            )
            return {row[0]: [float(v) for v in row[1]] for row in cursor.fetchall()}

    def query(
        self, *, schema: str, model: str, vector: Sequence[float], knowledge_base_ids: Sequence[int], top_k: int
    ) -> list[VectorHit]:
        if not knowledge_base_ids or top_k <= 0:
            return []
        column = _column(model)
        literal = _vector_literal(vector)
        kb_ids = list(knowledge_base_ids)
        candidates, indexed = candidate_counts(model=model, knowledge_base_ids=kb_ids)
        ef_search = plan(candidates=candidates, indexed=indexed, top_k=top_k)
        if ef_search is None:
            return self._exact(column, literal, kb_ids, top_k)
        hits = self._hnsw(column, literal, kb_ids, top_k, ef_search)
        if len(hits) < top_k:
            hits = self._exact(column, literal, kb_ids, top_k)
        return hits

    def _exact(self, column: str, literal: str, kb_ids: list[int], top_k: int) -> list[VectorHit]:
        """Every candidate's distance, then the nearest: perfect recall. The distances are
        computed in a materialized CTE so the ORDER BY cannot be served by the HNSW index;
        the CTE itself reads the covering index (384-d) or the rows of the knowledge bases."""
        sql = (
            f"WITH scored AS MATERIALIZED (SELECT id, {column} <=> %s::vector AS distance FROM knowledge_chunk "  # noqa: S608 (column from a fixed map)
            f"WHERE knowledge_base_id = ANY(%s) AND {column} IS NOT NULL) "
            "SELECT id, 1 - distance FROM scored ORDER BY distance, id LIMIT %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [literal, kb_ids, top_k])
            rows = cursor.fetchall()
        return [VectorHit(chunk_id=row[0], similarity=float(row[1])) for row in rows]

    def _hnsw(self, column: str, literal: str, kb_ids: list[int], top_k: int, ef_search: int) -> list[VectorHit]:
        sql = (
            f"SELECT id, 1 - ({column} <=> %s::vector) FROM knowledge_chunk "  # noqa: S608 (column from a fixed map)
            f"WHERE knowledge_base_id = ANY(%s) AND {column} IS NOT NULL "
            f"ORDER BY {column} <=> %s::vector LIMIT %s"
        )
        with transaction.atomic(), connection.cursor() as cursor:
            # For this transaction only. ef_search is an int computed above, never input.
            cursor.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
            if _has_iterative_scan():
                cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cursor.execute(sql, [literal, kb_ids, literal, top_k])
            rows = cursor.fetchall()
        hits = [VectorHit(chunk_id=row[0], similarity=float(row[1])) for row in rows]
        hits.sort(key=lambda h: -h.similarity)  # relaxed_order may return near-ties out of order
        return hits
