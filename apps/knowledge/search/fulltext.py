"""The full-text leg of retrieval: BM25 computed in SQL over the chunks' tsvector (see
__init__.py for why not `ts_rank`), and the words a knowledge base never mentions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection

# BM25 parameters (the usual defaults; k1 ∈ [0.9, 2], b ∈ [0.4, 0.9] were all within 0.007).
BM25_K1 = 1.2
BM25_B = 0.75
# At most this many distinct query lexemes reach the full-text leg (bounds its work).
MAX_QUERY_TERMS = 32
# Rows the common words of a query may add to the full-text candidates (see _BM25_SQL).
LEXICAL_POSTINGS_BUDGET = 1000


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
#   words are in no chunk at all, `ranking` runs again with every word.
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


def ranking(query: str, kb_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
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
