"""Hybrid retrieval: dense vectors + PostgreSQL full-text search, fused by weighted
reciprocal rank fusion, with optional MMR diversification and a similarity threshold.

This is the service the agents call. `score` is the fused score (for ordering);
`dense_score` is the cosine similarity of the chunk to the query, the calibrated number a
caller should use to decide whether the knowledge answers at all (`min_similarity`);
`lexical_score` is the chunk's BM25 score.

The full-text leg ranks with BM25 computed in SQL over the chunk tsvector: PostgreSQL's
`ts_rank`/`ts_rank_cd` have no IDF, and on BEIR SciFact ranking by `ts_rank_cd` scored
nDCG@10 0.44 (it made hybrid worse than dense alone), BM25 0.69. The constants here and in
fulltext.py were tuned on the SciFact train split; figures in docs/benchmarks.md.

The parts: fulltext.py (the BM25 leg, and the words a knowledge base never mentions),
dense.py (the question's vectors), diversity.py (MMR), spelling.py (misspelt question words
corrected against the knowledge's own words, used by the agents); this module fuses the legs.
See docs/subsystems/knowledge.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from ..models import Chunk, KnowledgeBase
from ..stores import get_store
from . import diversity, fulltext
from .dense import query_vector
from .fulltext import unknown_words
from .spelling import Spelled, correct_spelling

# `unknown_words` is the full-text leg's and `correct_spelling` spelling.py's: the runtime
# imports them from here.
__all__ = ["SearchHit", "Spelled", "correct_spelling", "search", "unknown_words"]

# Reciprocal rank fusion: a chunk scores Σ wᵢ / (RRF_K + rankᵢ). A small k trusts the top
# of each list more (SciFact train: k=8 0.733, k=60 0.724 nDCG@10).
RRF_K = 8
# Candidates taken from each leg before fusion, whatever `top_k` is (at most 100): the first
# results of a search do not change with the number asked for.
POOL = 100


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
    context: str = ""  # the document's title


def _hydrate(chunk_ids: list[int]) -> dict[int, dict[str, Any]]:
    """What a hit shows of its chunk, source and document, in one query; only those columns
    (the vectors and the tsvector stay in the database)."""
    rows = Chunk.objects.filter(pk__in=chunk_ids).values(
        "id",
        "text",
        "heading",
        "context",
        "anchor",
        "page",
        "knowledge_base_id",
        "source_id",
        "source__title",
        "source__type",
        "document__ref",
    )
    return {row["id"]: dict(row) for row in rows}


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
    hybrid mode, lexical-only hits that have no similarity to check). `mmr` re-ranks the
    fused pool for diversity with the chunks' vectors of each knowledge base's model.
    """
    query = (query or "").strip()[:2000]
    kbs = list(
        KnowledgeBase.objects.filter(pk__in=list(knowledge_base_ids)).only(
            "id", "embedding_model", "dense_weight", "lexical_weight"
        )
    )
    if not query or not kbs:
        return []
    top_k = max(1, min(int(top_k), 100))
    pool = max(POOL, top_k)
    kb_ids = [kb.pk for kb in kbs]
    model_of = {kb.pk: kb.embedding_model for kb in kbs}
    schema = connection.schema_name  # type: ignore[attr-defined]
    wd = dense_weight if dense_weight is not None else sum(kb.dense_weight for kb in kbs) / len(kbs)
    wl = lexical_weight if lexical_weight is not None else sum(kb.lexical_weight for kb in kbs) / len(kbs)

    dense: dict[int, float] = {}
    dense_rank: dict[int, int] = {}
    if mode in ("hybrid", "dense"):
        store = get_store()
        by_model: dict[str, list[int]] = {}
        for kb in kbs:
            by_model.setdefault(kb.embedding_model, []).append(kb.pk)
        merged = []
        for model, ids in by_model.items():
            vector = query_vector(model, query, schema=schema)
            merged.extend(store.query(schema=schema, model=model, vector=vector, knowledge_base_ids=ids, top_k=pool))
        merged.sort(key=lambda h: -h.similarity)
        for rank, hit in enumerate(merged[:pool], start=1):
            dense[hit.chunk_id] = hit.similarity
            dense_rank[hit.chunk_id] = rank
    lexical: dict[int, float] = {}
    lexical_rank: dict[int, int] = {}
    if mode in ("hybrid", "lexical"):
        for rank, (chunk_id, value) in enumerate(fulltext.ranking(query, kb_ids, pool), start=1):
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
    rows = _hydrate(candidates)
    hits = []
    for cid in candidates:
        row = rows.get(cid)
        if row is None:  # a vector whose row is gone (deleted meanwhile): never shown
            continue
        hits.append(
            SearchHit(
                chunk_id=cid,
                score=round(fused[cid], 6),
                dense_score=dense.get(cid),
                lexical_score=lexical.get(cid),
                text=row["text"],
                heading=row["heading"],
                context=row["context"],
                anchor=row["anchor"],
                page=row["page"],
                knowledge_base_id=row["knowledge_base_id"],
                source={"id": row["source_id"], "title": row["source__title"], "url": _source_url(row)},
            )
        )
    if mmr:
        hits = diversity.mmr(hits, diversity.similarities(hits, model_of, schema), top_k, mmr_lambda)
    return hits[:top_k]


def _source_url(row: dict[str, Any]) -> str:
    """The page a chunk came from (with its heading anchor) for URL sources; else empty."""
    if row["source__type"] != "url":
        return ""
    base = row["document__ref"]
    return base + row["anchor"] if row["anchor"].startswith("#") else base
