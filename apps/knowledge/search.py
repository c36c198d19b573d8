"""Hybrid retrieval: dense vectors + PostgreSQL full-text search, fused by weighted
reciprocal rank fusion, with optional MMR diversification and a similarity threshold.

This is the service the agents call. `score` is the fused score (for ordering);
`dense_score` is the cosine similarity of the chunk to the query, the calibrated number a
caller should use to decide whether the knowledge answers at all (`min_similarity`).
See docs/subsystems/knowledge.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from . import embeddings
from .models import Chunk, KnowledgeBase
from .stores import get_store

RRF_K = 60


@dataclass
class SearchHit:
    chunk_id: int
    score: float
    dense_score: float | None
    lexical_score: float | None
    text: str
    heading: str
    anchor: str
    page: int | None
    knowledge_base_id: int
    source: dict[str, Any] = field(default_factory=dict)


def _lexical(query: str, kb_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
    """Full-text ranking. The query's words are OR-ed (a natural question rarely has every
    word in the answer); `ts_rank_cd` with length normalisation orders them."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH q AS (
                SELECT CASE WHEN numnode(plainto_tsquery('english', %s)) = 0 THEN NULL
                       ELSE replace(plainto_tsquery('english', %s)::text, ' & ', ' | ')::tsquery END AS query
            )
            SELECT c.id, ts_rank_cd(c.search, q.query, 1) AS rank
            FROM knowledge_chunk c, q
            WHERE q.query IS NOT NULL AND c.knowledge_base_id = ANY(%s) AND c.search @@ q.query
            ORDER BY rank DESC, c.id
            LIMIT %s
            """,
            [query, query, list(kb_ids), limit],
        )
        return [(row[0], float(row[1])) for row in cursor.fetchall()]


def _mmr(candidates: list[SearchHit], vectors: dict[int, list[float]], top_k: int, lam: float) -> list[SearchHit]:
    """Maximal marginal relevance over the fused list: relevance vs. similarity to picks."""
    import numpy as np

    chosen: list[SearchHit] = []
    pool = [c for c in candidates if c.chunk_id in vectors]
    if not pool:
        return candidates[:top_k]
    top = max(c.score for c in pool) or 1.0
    while pool and len(chosen) < top_k:
        best, best_value = None, -1e9
        for hit in pool:
            relevance = hit.score / top
            redundancy = max((float(np.dot(vectors[hit.chunk_id], vectors[c.chunk_id])) for c in chosen), default=0.0)
            value = lam * relevance - (1 - lam) * redundancy
            if value > best_value:
                best, best_value = hit, value
        assert best is not None
        chosen.append(best)
        pool.remove(best)
    return chosen


def search(
    *,
    query: str,
    knowledge_base_ids: Sequence[int],
    top_k: int = 10,
    mode: str = "hybrid",
    dense_weight: float | None = None,
    lexical_weight: float | None = None,
    mmr: bool = False,
    mmr_lambda: float = 0.7,
    min_similarity: float | None = None,
) -> list[SearchHit]:
    """Ranked chunks of the given knowledge bases (current tenant schema) for `query`.

    `mode`: "hybrid" (default), "dense" or "lexical". Weights default to the knowledge
    bases' own. `min_similarity` drops hits whose cosine similarity is below it (and, in
    hybrid mode, lexical-only hits that have no similarity to check).
    """
    query = (query or "").strip()[:2000]
    kbs = list(KnowledgeBase.objects.filter(pk__in=list(knowledge_base_ids)))
    if not query or not kbs:
        return []
    top_k = max(1, min(int(top_k), 100))
    pool = max(50, top_k * 5)
    kb_ids = [kb.pk for kb in kbs]
    wd = dense_weight if dense_weight is not None else sum(kb.dense_weight for kb in kbs) / len(kbs)
    wl = lexical_weight if lexical_weight is not None else sum(kb.lexical_weight for kb in kbs) / len(kbs)

    dense: dict[int, float] = {}
    dense_rank: dict[int, int] = {}
    query_vectors: dict[str, list[float]] = {}
    if mode in ("hybrid", "dense"):
        store = get_store()
        schema = connection.schema_name  # type: ignore[attr-defined]
        by_model: dict[str, list[int]] = {}
        for kb in kbs:
            by_model.setdefault(kb.embedding_model, []).append(kb.pk)
        merged = []
        for model, ids in by_model.items():
            vector = embeddings.get_provider(model).embed([query])[0]
            query_vectors[model] = vector
            merged.extend(store.query(schema=schema, model=model, vector=vector, knowledge_base_ids=ids, top_k=pool))
        merged.sort(key=lambda h: -h.similarity)
        for rank, hit in enumerate(merged[:pool], start=1):
            dense[hit.chunk_id] = hit.similarity
            dense_rank[hit.chunk_id] = rank
    lexical: dict[int, float] = {}
    lexical_rank: dict[int, int] = {}
    if mode in ("hybrid", "lexical"):
        for rank, (chunk_id, value) in enumerate(_lexical(query, kb_ids, pool), start=1):
            lexical[chunk_id] = value
            lexical_rank[chunk_id] = rank

    fused: dict[int, float] = {}
    for chunk_id, rank in dense_rank.items():
        fused[chunk_id] = fused.get(chunk_id, 0.0) + (wd if mode == "hybrid" else 1.0) / (RRF_K + rank)
    for chunk_id, rank in lexical_rank.items():
        fused[chunk_id] = fused.get(chunk_id, 0.0) + (wl if mode == "hybrid" else 1.0) / (RRF_K + rank)
    if min_similarity is not None and mode != "lexical":
        fused = {cid: s for cid, s in fused.items() if dense.get(cid, -1.0) >= min_similarity}
    ordered = sorted(fused, key=lambda cid: (-fused[cid], cid))
    candidates = ordered[: pool if mmr else top_k]
    rows = Chunk.objects.filter(pk__in=candidates).select_related("source", "document")
    if mmr:
        rows = rows.defer("embedding_1536")
    by_id = {c.pk: c for c in rows}
    hits = []
    for cid in candidates:
        chunk = by_id.get(cid)
        if chunk is None:  # a vector whose row is gone (deleted meanwhile): never shown
            continue
        hits.append(
            SearchHit(
                chunk_id=cid,
                score=round(fused[cid], 6),
                dense_score=dense.get(cid),
                lexical_score=lexical.get(cid),
                text=chunk.text,
                heading=chunk.heading,
                anchor=chunk.anchor,
                page=chunk.page,
                knowledge_base_id=chunk.knowledge_base_id,
                source={"id": chunk.source_id, "title": chunk.source.title, "url": _source_url(chunk)},
            )
        )
    if mmr:
        vectors = {c.pk: list(c.embedding) for c in by_id.values() if c.embedding is not None}
        hits = _mmr(hits, vectors, top_k, mmr_lambda)
    return hits[:top_k]


def _source_url(chunk: Chunk) -> str:
    """The page a chunk came from (with its heading anchor) for URL sources; else empty."""
    if chunk.source.type != "url":
        return ""
    base = chunk.document.ref
    return base + chunk.anchor if chunk.anchor.startswith("#") else base
