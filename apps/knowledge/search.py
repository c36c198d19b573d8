"""Hybrid retrieval: dense vectors + PostgreSQL full-text search, fused by weighted
reciprocal rank fusion, with optional MMR diversification and a similarity threshold.

This is the service the agents call. `score` is the fused score (for ordering);
`dense_score` is the cosine similarity of the chunk to the query, the calibrated number a
caller should use to decide whether the knowledge answers at all (`min_similarity`);
`lexical_score` is the chunk's BM25 score.

The full-text leg ranks with BM25 computed in SQL over the chunk tsvector: PostgreSQL's
`ts_rank`/`ts_rank_cd` have no IDF, and on BEIR SciFact ranking by `ts_rank_cd` scored
nDCG@10 0.44 (it made hybrid worse than dense alone), BM25 0.69. The constants below were
tuned on the SciFact train split; figures in docs/benchmarks.md.
See docs/subsystems/knowledge.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from django.db import connection

from . import embeddings
from .models import Chunk, KnowledgeBase, embedding_input
from .stores import StoredVectors, get_store

# Reciprocal rank fusion: a chunk scores Σ wᵢ / (RRF_K + rankᵢ). A small k trusts the top
# of each list more (SciFact train: k=8 0.733, k=60 0.724 nDCG@10).
RRF_K = 8
# Candidates taken from each leg before fusion, whatever `top_k` is (at most 100): the first
# results of a search do not change with the number asked for.
POOL = 100
# BM25 parameters (the usual defaults; k1 ∈ [0.9, 2], b ∈ [0.4, 0.9] were all within 0.007).
BM25_K1 = 1.2
BM25_B = 0.75
# At most this many distinct query lexemes reach the full-text leg (bounds its work).
MAX_QUERY_TERMS = 32
# Rows the common words of a query may add to the full-text candidates (see _BM25_SQL).
LEXICAL_POSTINGS_BUDGET = 1000


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


# BM25 in one statement. Plain BM25 has to read every chunk that holds any query word, and at
# 100k chunks a common word ("cell", "increase") is in tens of thousands of them. So:
# - terms: the query's distinct lexemes (the tsvector's own `english` configuration) but its
#   CONVERSATIONAL ones, unless nothing else is left; each quoted so it parses as exactly one
#   lexeme;
# - the planner's statistics on the tsvector column (pg_stats.most_common_elems, kept by
#   ANALYZE/autovacuum) estimate how many rows hold each word. Words from the rarest up, while
#   their estimated postings add up to at most LEXICAL_POSTINGS_BUDGET rows (and always the
#   rarest and every word too rare to be in the statistics), choose the candidate chunks;
#   all words still score them. A chunk holding only common words is not a candidate: its
#   BM25 score is low anyway (SciFact: nDCG@10 unchanged, recall@100 -0.005; see
#   docs/benchmarks.md). Without statistics every word is used: exact BM25. If the chosen
#   words are in no chunk at all, `_lexical` runs again with every word.
# - df: counted exactly for the words that chose the candidates, estimated from the
#   statistics for the others; N: the knowledge bases' chunk count;
# - tf from `ts_rank` with unit weights: for a lexeme occurring n times it returns
#   Σ_{j≤n} 1/j² ÷ ζ(2), and ζ(2) - Σ_{j≤n} 1/j² ≈ 1/(n + ½), so n = round(1/(ζ(2)(1 - r)) - ½),
#   exact for every count a chunk holds (checked against `unnest(tsvector)` on SciFact). The
#   candidates' tsvectors are copied once (`|| ''`) instead of de-TOASTed once per word.
# - document length: the chunk's token count, averaged over the candidates.
# - k1 and b are cast to float8: the driver sends Python floats as numeric literals, and
#   numeric arithmetic on every hit cost ~5 % of the statement.
_BM25_SQL = r"""
WITH asked AS (
    SELECT t.lexeme FROM unnest(to_tsvector('english'::regconfig, %(query)s)) AS t
),
subject AS (
    SELECT a.lexeme FROM asked a
    WHERE a.lexeme NOT IN (SELECT c.lexeme FROM unnest(to_tsvector('english'::regconfig, %(conversational)s)) AS c)
),
terms AS (
    SELECT t.lexeme, ('''' || replace(replace(t.lexeme, '\', '\\'), '''', '''''') || '''') AS quoted
    FROM (SELECT lexeme FROM subject UNION ALL SELECT lexeme FROM asked WHERE NOT EXISTS (SELECT FROM subject)) AS t
    LIMIT %(max_terms)s
),
corpus AS MATERIALIZED (
    SELECT coalesce(
        nullif((SELECT sum(chunk_count) FROM knowledge_source WHERE knowledge_base_id = ANY(%(kb_ids)s)), 0),
        (SELECT count(*) FROM knowledge_chunk WHERE knowledge_base_id = ANY(%(kb_ids)s))
    )::float8 AS n
),
stats AS MATERIALIZED (
    SELECT s.most_common_elems::text::text[] AS elems, s.most_common_elem_freqs AS freqs,
           greatest(0, (SELECT reltuples FROM pg_class WHERE oid = 'knowledge_chunk'::regclass))::float8 AS rows
    FROM pg_stats s
    WHERE s.schemaname = current_schema() AND s.tablename = 'knowledge_chunk' AND s.attname = 'search'
    LIMIT 1
),
estimated AS (
    SELECT t.lexeme, t.quoted, st.freqs[array_position(st.elems, t.lexeme)] AS freq, st.rows
    FROM terms t LEFT JOIN stats st ON true
),
ranked AS (
    SELECT e.lexeme, e.quoted, e.freq,
           sum(coalesce(e.freq * e.rows, 0)) OVER (ORDER BY coalesce(e.freq, 0), e.lexeme) AS running,
           row_number() OVER (ORDER BY coalesce(e.freq, 0), e.lexeme) AS position
    FROM estimated e
),
words AS MATERIALIZED (
    SELECT r.lexeme, r.quoted, r.quoted::tsquery AS q, r.freq * corpus.n AS estimated_df,
           (r.position = 1 OR r.running <= %(budget)s) AS chooses
    FROM ranked r CROSS JOIN corpus
),
candidates AS MATERIALIZED (
    SELECT c.id, c.token_count AS dl, c.search || ''::tsvector AS search
    FROM knowledge_chunk c
    WHERE c.knowledge_base_id = ANY(%(kb_ids)s)
      AND c.search @@ (SELECT string_agg(w.quoted, ' | ')::tsquery FROM words w WHERE w.chooses)
),
hits AS (
    SELECT k.id, k.dl, w.lexeme, ts_rank('{1,1,1,1}'::float4[], k.search, w.q, 0) AS r
    FROM candidates k JOIN words w ON k.search @@ w.q
),
df AS (
    SELECT h.lexeme,
           CASE WHEN bool_or(w.chooses) THEN count(*)::float8
                ELSE greatest(count(*)::float8, max(w.estimated_df)) END AS df
    FROM hits h JOIN words w USING (lexeme)
    GROUP BY h.lexeme
),
avgdl AS (SELECT greatest(1.0, avg(dl))::float8 AS avgdl FROM candidates),
scored AS (
    SELECT h.id, h.dl, avgdl.avgdl,
           ln(1 + greatest(0.0, corpus.n - df.df + 0.5) / (df.df + 0.5)) AS idf,
           greatest(1.0, round(1.0 / greatest(1e-6, 1.64493406685 * (1.0 - h.r)) - 0.5)) AS tf
    FROM hits h JOIN df USING (lexeme) CROSS JOIN corpus CROSS JOIN avgdl
)
SELECT id,
       sum(idf * tf * (%(k1)s::float8 + 1) / (tf + %(k1)s::float8 * (1 - %(b)s::float8 + %(b)s::float8 * dl / avgdl)))
       AS score
FROM scored
GROUP BY id
ORDER BY score DESC, id
LIMIT %(limit)s
"""


# Words of a chat message that say how the visitor asks, not what about ("Hello, I need some
# information about ..."): the full-text leg leaves them out of the query unless nothing else is
# left (the dense leg sees them all). A help centre uses "help", "information" and "question"
# on many pages, so they would match everywhere and favour pages that say them most often.
CONVERSATIONAL = (
    "hello hi hey hiya greetings thanks thank please pls kindly help assist assistance need want wondering"
    " wonder know tell explain information info question questions ask asking regarding concerning something"
    " anything someone anybody guys yes ok okay oh"
)


def _lexical(query: str, kb_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
    """Full-text ranking by BM25 (the query's CONVERSATIONAL words left out). Any query word
    may match (a natural question rarely has every word of its answer); rare words weigh more,
    repeats saturate, long chunks are normalised."""
    params: dict[str, Any] = {
        "query": query,
        "conversational": CONVERSATIONAL,
        "kb_ids": list(kb_ids),
        "limit": limit,
        "max_terms": MAX_QUERY_TERMS,
        "budget": LEXICAL_POSTINGS_BUDGET,
        "k1": BM25_K1,
        "b": BM25_B,
    }
    with connection.cursor() as cursor:
        cursor.execute(_BM25_SQL, params)
        rows = cursor.fetchall()
        if not rows:
            # The words that chose candidates are in no chunk (a rare word absent from these
            # knowledge bases): rank with every word instead of returning nothing.
            cursor.execute(_BM25_SQL, {**params, "budget": float("inf")})
            rows = cursor.fetchall()
    return [(row[0], float(row[1])) for row in rows]


def _mmr(hits: list[SearchHit], similarity: np.ndarray, top_k: int, lam: float) -> list[SearchHit]:
    """Maximal marginal relevance over the fused list: at each step the hit with the best
    `lam * relevance - (1 - lam) * (its highest similarity to a hit already picked)`.
    `similarity[i, j]` is the cosine similarity of hits i and j (0 where unknown)."""
    if not hits:
        return []
    top = max(h.score for h in hits) or 1.0
    relevance = np.array([h.score / top for h in hits])
    redundancy = np.full(len(hits), -np.inf)
    left = np.ones(len(hits), dtype=bool)
    chosen: list[SearchHit] = []
    while left.any() and len(chosen) < top_k:
        value = lam * relevance - (1 - lam) * (redundancy if chosen else 0.0)
        value[~left] = -np.inf
        pick = int(np.argmax(value))  # ties: the earlier, better fused hit
        chosen.append(hits[pick])
        left[pick] = False
        redundancy = np.maximum(redundancy, similarity[pick])
    return chosen


def _similarities(hits: list[SearchHit], model_of: dict[int, str], schema: str) -> np.ndarray:
    """Pairwise cosine similarities of the hits' chunks, each in the vector space of its
    knowledge base's model (384-d MiniLM, 1536-d OpenAI, ...): from the store when it keeps
    the vectors (pgvector), else by embedding the hits' texts again (Pinecone). Hits of
    knowledge bases with different models are not comparable: their similarity is 0, as is
    that of a hit without a vector (a chunk whose knowledge base is re-embedding)."""
    store = get_store()
    matrix = np.zeros((len(hits), len(hits)))
    by_model: dict[str, list[int]] = {}
    for position, hit in enumerate(hits):
        by_model.setdefault(model_of[hit.knowledge_base_id], []).append(position)
    for model, positions in by_model.items():
        ids = [hits[p].chunk_id for p in positions]
        if isinstance(store, StoredVectors):
            stored = store.vectors(schema=schema, model=model, chunk_ids=ids)
        else:
            texts = embeddings.get_provider(model).embed(
                [embedding_input(hits[p].context, hits[p].text) for p in positions]
            )
            stored = dict(zip(ids, texts, strict=True))
        known = [p for p in positions if hits[p].chunk_id in stored]
        if not known:
            continue
        vectors = np.array([stored[hits[p].chunk_id] for p in known], dtype=np.float64)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        matrix[np.ix_(known, known)] = vectors @ vectors.T
    return matrix


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


QUERY_VECTORS_KEPT = 2048  # the local model's question vectors kept per process


@lru_cache(maxsize=QUERY_VECTORS_KEPT)
def _local_query_vector(schema: str, query: str) -> npt.NDArray[np.float32]:
    vector = np.asarray(embeddings.LocalMiniLM().embed([query])[0], dtype=np.float32)
    vector.setflags(write=False)
    return vector


def query_vector(model: str, query: str, *, schema: str) -> list[float]:
    """The question's vector for `model`. The local model's are kept per tenant (`schema`: no
    tenant's answer time tells what another asked), since visitors ask the same questions
    again; a remote model is asked each time."""
    provider = embeddings.get_provider(model)
    if isinstance(provider, embeddings.LocalMiniLM):
        return _local_query_vector(schema, query).tolist()
    return provider.embed([query])[0]


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
        hits = _mmr(hits, _similarities(hits, model_of, schema), top_k, mmr_lambda)
    return hits[:top_k]


def _source_url(row: dict[str, Any]) -> str:
    """The page a chunk came from (with its heading anchor) for URL sources; else empty."""
    if row["source__type"] != "url":
        return ""
    base = row["document__ref"]
    return base + row["anchor"] if row["anchor"].startswith("#") else base


_UNKNOWN_SQL = """
SELECT w FROM unnest(%(words)s::text[]) AS w
WHERE numnode(plainto_tsquery('english'::regconfig, w)) > 0
  AND NOT EXISTS (
    SELECT FROM knowledge_chunk c
    WHERE c.knowledge_base_id = ANY(%(kb_ids)s) AND c.search @@ plainto_tsquery('english'::regconfig, w)
  )
"""


def unknown_words(words: Sequence[str], knowledge_base_ids: Sequence[int]) -> set[str]:
    """The words (at most MAX_QUERY_TERMS of them) that no chunk of these knowledge bases
    contains, compared as full-text lexemes ("renewing" is known when a chunk says "renewal").
    Stop words are never unknown. A question about something the knowledge never mentions
    ("acupuncture") is rarely answered by it, however close its other words come."""
    asked = list(dict.fromkeys(w.strip().lower() for w in words if w and w.strip()))[:MAX_QUERY_TERMS]
    if not asked or not knowledge_base_ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(_UNKNOWN_SQL, {"words": asked, "kb_ids": list(knowledge_base_ids)})
        return {row[0] for row in cursor.fetchall()}
