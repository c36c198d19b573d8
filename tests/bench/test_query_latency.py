"""Query latency and HNSW recall at 100k chunks in one tenant (pgvector store).

Corpus: 100,000 distinct chunks in tenant beta, cut from the SciFact abstracts: every title,
every sentence, then windows of two and three consecutive sentences (in a seeded random
order). Vectors (`SYNTERA_BENCH_VECTORS`):
- `minilm` (default): the real all-MiniLM-L6-v2 embeddings of those texts, computed by the
  product's local provider at the start of the run (2-4 minutes on 2 cores; cached under
  var/bench/cache for the next run);
- `random`: random unit vectors (Gaussian, normalised, seeded), the worst case for HNSW:
  in 384 dimensions uniformly spread points have no neighbourhood structure to exploit.
Queries: the SciFact test claims, embedded the same way (random unit vectors for `random`).

Knowledge bases: `big` (89,000 chunks), `medium` (10,000), `small` (1,000), chunks dealt out
at random, so a knowledge-base filter is spread over the whole vector space (the case where
HNSW post-filtering loses results).

Loading bypasses ingestion (measured by the quality benchmark): one source and document per
knowledge base (its `chunk_count` set as ingestion leaves it), chunks written with COPY. The
HNSW index is dropped before the load and recreated after it from its own definition
(migration 0001: m=16, ef_construction=64, cosine), faster than inserting into a live graph;
the covering index of migration 0003 stays and is filled by the COPY; then VACUUM ANALYZE,
as autovacuum does.

Latency is of `apps.knowledge.search.search` (top_k=10, through the ORM and the store,
results hydrated), in-process, warm cache (one untimed pass over the queries first, then 20
warm-up queries per case), one query at a time, dense and hybrid, for all three knowledge
bases together (100k chunks) and each alone:
- "excluding embedding": the query vector comes precomputed (the provider is stubbed);
- "including embedding": the real local MiniLM provider embeds the query text first.
Recall@10: the ids `search` returns in dense mode against the exact top 10 (NumPy), computed
after the timed loop. The "plan" column is what the pgvector store chose for the dense leg
(exact search, or HNSW and its ef_search). Then the time of each statement alone (including
the ones the store ran before: a count(*) per query, exact search reading the chunk rows),
an ef_search sweep of the raw HNSW scan, and the post-filter recall of a raw HNSW scan.

Run: make bench PYTEST_ARGS="-k query_latency"
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from .helpers import data_dir, load_beir, mean, percentile, record, results_dir, table

VECTORS = os.environ.get("SYNTERA_BENCH_VECTORS", "minilm")
SCIFACT = data_dir() / "beir-scifact"

pytestmark = [
    pytest.mark.timeout(3600),
    pytest.mark.skipif(
        not (SCIFACT / "corpus.jsonl.gz").is_file(),
        reason=f"BEIR SciFact not found at {SCIFACT} (set SYNTERA_DATA_DIR to the directory holding beir-scifact/)",
    ),
]

TOTAL = 100_000
KB_SIZES = {"big": 89_000, "medium": 10_000, "small": 1_000}
DIM = 384
QUERIES = 200
WARMUP = 20
TOP_K = 10
SEED = 20261125
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


# --- corpus ----------------------------------------------------------------------------


def passages() -> tuple[list[str], list[str]]:
    """TOTAL distinct chunk texts and the query texts, from SciFact."""
    beir = load_beir(SCIFACT, splits=("test",))
    sentences: list[list[str]] = []
    for doc in beir.corpus:
        sentences.append([s.strip() for s in _SENTENCE.split(doc["text"]) if len(s.strip()) > 20])
    candidates = [doc["title"] for doc in beir.corpus]
    for size in (1, 2, 3, 4):
        for parts in sentences:
            candidates += [" ".join(parts[i : i + size]) for i in range(len(parts) - size + 1)]
    texts = list(dict.fromkeys(candidates))[:TOTAL]
    assert len(texts) == TOTAL, len(texts)
    random.Random(SEED).shuffle(texts)
    queries = [beir.queries[q] for q in beir.qrels["test"]][:QUERIES]
    return texts, queries


def unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def embed(texts: list[str]) -> np.ndarray:
    """The local provider's vectors of `texts`, cached under var/bench/cache (keyed by the
    texts and the local backend): embedding the corpus is most of a run's time and measures
    nothing here."""
    from apps.knowledge.embeddings import LocalMiniLM, local_backend

    digest = hashlib.sha256("\x00".join([local_backend(), *texts]).encode()).hexdigest()[:16]
    path = results_dir() / "cache" / f"minilm-{digest}.npy"
    if path.is_file():
        return np.load(path)
    vectors = np.asarray(LocalMiniLM().embed(texts), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def vector_text(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{v:.7g}" for v in vector) + "]"


@dataclass
class Loaded:
    kb_ids: dict[str, int]
    ids: np.ndarray  # chunk id of each row of `vectors`
    kb_of_row: np.ndarray  # index into KB_SIZES of each row
    vectors: np.ndarray
    queries: list[str]
    query_vectors: np.ndarray
    embed_seconds: float
    load_seconds: float
    index_seconds: float
    total_chunks: int


@pytest.fixture(scope="module")
def loaded(committed_tenant: Any) -> Loaded:
    from django.db import connection

    from apps.knowledge import services
    from apps.knowledge.models import Chunk, Document, Source

    texts, queries = passages()
    started = time.perf_counter()
    if VECTORS == "random":
        vectors = unit_vectors(np.random.default_rng(SEED), TOTAL)
        query_vectors = unit_vectors(np.random.default_rng(SEED + 1), len(queries))
    else:
        vectors, query_vectors = embed(texts), embed(queries)
    embed_seconds = time.perf_counter() - started
    names = list(KB_SIZES)
    kb_of_row = np.repeat(np.arange(len(names)), [KB_SIZES[n] for n in names])
    np.random.default_rng(SEED).shuffle(kb_of_row)
    with committed_tenant("beta") as actor:
        schema = connection.schema_name  # type: ignore[attr-defined]
        kb_ids, document_of_kb, source_of_kb = {}, {}, {}
        for name in names:
            kb = services.knowledge_base_create(editor=actor, name=f"latency-{name}")
            source = Source.objects.create(
                knowledge_base=kb,
                type=Source.Type.TEXT,
                title=f"latency-{name}",
                status=Source.Status.READY,
                chunk_count=KB_SIZES[name],  # as ingestion leaves it
            )
            document = Document.objects.create(source=source, ref="text", title=source.title, content_hash="-")
            kb_ids[name], source_of_kb[name], document_of_kb[name] = kb.pk, source.pk, document.pk
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = 'chunk_embedding_hnsw'",
                [schema],
            )
            index_sql = cursor.fetchone()[0]
            cursor.execute(f'DROP INDEX "{schema}".chunk_embedding_hnsw')
        started = time.perf_counter()
        raw = connection.connection  # the psycopg connection under Django's wrapper
        copy_sql = (
            f'COPY "{schema}".knowledge_chunk (knowledge_base_id, source_id, document_id, ordinal, text, heading, '
            "anchor, token_count, embedding) FROM STDIN"
        )
        with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in range(TOTAL):
                name = names[kb_of_row[row]]
                copy.write_row(
                    (
                        kb_ids[name],
                        source_of_kb[name],
                        document_of_kb[name],
                        row,  # ordinal = row number: ids are assigned in this order
                        texts[row],
                        "",
                        "",
                        len(texts[row].split()),
                        vector_text(vectors[row]),
                    )
                )
        load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '1GB'")
            cursor.execute(index_sql)
            cursor.execute("RESET maintenance_work_mem")
            cursor.execute(f'VACUUM ANALYZE "{schema}".knowledge_chunk')
        index_seconds = time.perf_counter() - started
        by_ordinal = dict(
            Chunk.objects.filter(knowledge_base_id__in=kb_ids.values()).values_list("ordinal", "id").iterator()
        )
        total = Chunk.objects.count()
    ids = np.array([by_ordinal[row] for row in range(TOTAL)])
    print(
        f"\n[bench] {VECTORS} vectors in {embed_seconds:.0f} s; COPY of {TOTAL} chunks {load_seconds:.0f} s; "
        f"HNSW build + VACUUM ANALYZE {index_seconds:.0f} s",
        flush=True,
    )
    return Loaded(
        kb_ids,
        ids,
        kb_of_row,
        vectors,
        queries,
        query_vectors,
        embed_seconds,
        load_seconds,
        index_seconds,
        total,
    )


# --- measuring -------------------------------------------------------------------------


class FixedVectors:
    """An embedding provider stand-in: returns the next precomputed query vector."""

    name = "local-minilm"
    dimensions = DIM

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.position = 0

    def embed(self, texts: Any) -> list[list[float]]:
        vector = self.vectors[self.position % len(self.vectors)]
        self.position += 1
        return [vector.tolist()]


def exact_top(loaded: Loaded, query: np.ndarray, kb_names: list[str], k: int) -> list[int]:
    mask = np.isin(loaded.kb_of_row, [list(KB_SIZES).index(n) for n in kb_names])
    scores = loaded.vectors[mask] @ query
    best = np.argpartition(-scores, k)[:k]
    best = best[np.argsort(-scores[best])]
    return [int(i) for i in loaded.ids[mask][best]]


def overlap(truth: list[int], found: list[int]) -> float:
    return len(set(truth) & set(found)) / len(truth)


@dataclass
class Measured:
    latencies_ms: list[float]
    recall: float | None


HEADERS = ["filter", "plan", "mode", "p50 excl. emb.", "p95 excl. emb.", "p50 incl.", "p95 incl.", "recall@10"]


def measure(loaded: Loaded, kb_names: list[str], mode: str, *, stub_embedding: bool) -> Measured:
    """`search` WARMUP + QUERIES times; recall@10 in dense mode when the vectors are known."""
    from apps.knowledge import embeddings
    from apps.knowledge.search import search

    kb_ids = [loaded.kb_ids[n] for n in kb_names]
    original = embeddings.get_provider
    stub = FixedVectors(loaded.query_vectors)
    if stub_embedding:
        embeddings.get_provider = lambda name: stub  # type: ignore[assignment]
    try:
        for text in loaded.queries[:WARMUP]:
            search(query=text, knowledge_base_ids=kb_ids, top_k=TOP_K, mode=mode)
        stub.position = 0
        latencies, found = [], []
        for text in loaded.queries:
            started = time.perf_counter()
            hits = search(query=text, knowledge_base_ids=kb_ids, top_k=TOP_K, mode=mode)
            latencies.append((time.perf_counter() - started) * 1000)
            found.append([h.chunk_id for h in hits])
    finally:
        embeddings.get_provider = original  # type: ignore[assignment]
    # Recall after the timing: NumPy's BLAS threads keep spinning for a while after a product
    # and would slow down the next query measured.
    recalls = [
        overlap(exact_top(loaded, loaded.query_vectors[number], kb_names, TOP_K), ids)
        for number, ids in enumerate(found)
        if stub_embedding and mode == "dense"
    ]
    return Measured(latencies, mean(recalls) if recalls else None)


def timed(call: Callable[[int], Any], count: int) -> tuple[float, float]:
    for i in range(WARMUP):
        call(i)
    seconds = []
    for i in range(count):
        started = time.perf_counter()
        call(i)
        seconds.append((time.perf_counter() - started) * 1000)
    return percentile(seconds, 50), percentile(seconds, 95)


def components(loaded: Loaded) -> dict[str, tuple[float, float]]:
    """Where the time of a search goes, statement by statement: the store's plan for all
    100k chunks (HNSW) and for the medium knowledge base (exact), the full-text leg, the
    hydration, and for comparison the statements the store ran before (a count(*) of the
    candidates per query; exact search reading the chunk rows and their TOASTed vectors)."""
    from django.db import connection, transaction

    from apps.knowledge import embeddings, search
    from apps.knowledge.stores import get_store
    from apps.knowledge.stores.pgvector import PgVectorStore, candidate_counts, plan

    kb_ids = list(loaded.kb_ids.values())
    medium = [loaded.kb_ids["medium"]]
    schema = connection.schema_name  # type: ignore[attr-defined]
    store = get_store()
    assert isinstance(store, PgVectorStore)
    provider = embeddings.get_provider("local-minilm")
    pool = search.POOL
    literals = [vector_text(v) for v in loaded.query_vectors]
    texts = loaded.queries
    candidates, indexed = candidate_counts(model="local-minilm", knowledge_base_ids=kb_ids)
    ef_search = plan(candidates=candidates, indexed=indexed, top_k=pool)
    assert ef_search is not None
    ids = [loaded.ids[i] for i in range(TOP_K)]

    def count_sql(i: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM knowledge_chunk WHERE knowledge_base_id = ANY(%s) AND embedding IS NOT NULL",
                [kb_ids],
            )

    def exact_from_rows(i: int) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute(
                "SELECT id, 1 - (embedding <=> %s::vector) FROM knowledge_chunk WHERE knowledge_base_id = ANY(%s) "
                "AND embedding IS NOT NULL ORDER BY embedding <=> %s::vector LIMIT %s",
                [literals[i % len(literals)], medium, literals[i % len(literals)], pool],
            )
            cursor.fetchall()

    def query(kbs: list[int]) -> Callable[[int], Any]:
        return lambda i: store.query(
            schema=schema,
            model="local-minilm",
            vector=loaded.query_vectors[i % len(texts)].tolist(),
            knowledge_base_ids=kbs,
            top_k=pool,
        )

    legs: dict[str, Callable[[int], Any]] = {
        "query embedding (local MiniLM, one text)": lambda i: provider.embed([texts[i % len(texts)]]),
        f"vector store query, all 100k, top {pool} (PgVectorStore.query: HNSW)": query(kb_ids),
        "  of which: chunk counts of the sources (candidate_counts)": lambda i: candidate_counts(
            model="local-minilm", knowledge_base_ids=kb_ids
        ),
        f"  of which: HNSW index scan (ef_search {ef_search})": lambda i: store._hnsw(
            "embedding", literals[i % len(literals)], kb_ids, pool, ef_search
        ),
        f"vector store query, medium KB, top {pool} (exact, covering index)": query(medium),
        f"before: exact search of the medium KB reading the rows, top {pool}": exact_from_rows,
        "before: count(*) of candidate chunks, all 100k": count_sql,
        f"full-text leg, all 100k, top {pool} (search.fulltext.ranking, BM25)": lambda i: search.fulltext.ranking(
            texts[i % len(texts)], kb_ids, pool
        ),
        f"hydration of {TOP_K} hits (search._hydrate)": lambda i: search._hydrate(ids),
    }
    return {name: timed(call, len(texts)) for name, call in legs.items()}


def ef_sweep(loaded: Loaded) -> dict[int, dict[str, float]]:
    """Recall@10 and latency of the raw HNSW scan (all 100k chunks) by hnsw.ef_search."""
    from django.db import connection, transaction

    out = {}
    kb_ids = list(loaded.kb_ids.values())
    for ef in (40, 100, 150, 200, 400):
        found, seconds = [], []
        for number, vector in enumerate(loaded.query_vectors[:100]):
            literal = vector_text(vector)
            started = time.perf_counter()
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL hnsw.ef_search = {ef}")
                cursor.execute(
                    "SELECT id FROM knowledge_chunk WHERE knowledge_base_id = ANY(%s) AND embedding IS NOT NULL "
                    "ORDER BY embedding <=> %s::vector LIMIT %s",
                    [kb_ids, literal, TOP_K],
                )
                ids = [row[0] for row in cursor.fetchall()]
            seconds.append((time.perf_counter() - started) * 1000)
            if number >= 10:  # the first ones warm the cache
                found.append((number, ids))
        recalls = [overlap(exact_top(loaded, loaded.query_vectors[n], list(KB_SIZES), TOP_K), ids) for n, ids in found]
        out[ef] = {"recall@10": mean(recalls), "p50_ms": percentile(seconds[10:], 50)}
    return out


@pytest.fixture(scope="module")
def measured(loaded: Loaded, committed_tenant: Any) -> dict[str, Any]:
    """Every measurement, taken here in autocommit (outside the transaction pytest-django
    wraps a test in): the store's `SET LOCAL` planner settings would otherwise outlive their
    query, up to the end of the test's transaction."""
    from django.conf import settings
    from django.db import connection

    from apps.knowledge.search import POOL
    from apps.knowledge.stores.pgvector import PgVectorStore, candidate_counts, plan

    cases = [
        ("all 3 KBs (100k)", list(KB_SIZES)),
        ("big KB (89k)", ["big"]),
        ("medium KB (10k)", ["medium"]),
        ("small KB (1k)", ["small"]),
    ]
    rows = []
    results: dict[str, Any] = {}
    load_at_start = os.getloadavg()
    with committed_tenant("beta"):
        assert not connection.in_atomic_block
        # One untimed pass first: the indexes were just built, and 20 warm-up queries per
        # case do not bring the HNSW graph's hot pages into shared_buffers.
        for mode in ("dense", "hybrid"):
            measure(loaded, list(KB_SIZES), mode, stub_embedding=True)
        for label, kb_names in cases:
            candidates, indexed = candidate_counts(
                model="local-minilm", knowledge_base_ids=[loaded.kb_ids[n] for n in kb_names]
            )
            ef_search = plan(candidates=candidates, indexed=indexed, top_k=POOL)
            strategy = "exact" if ef_search is None else f"HNSW ef {ef_search}"
            for mode in ("dense", "hybrid"):
                without = measure(loaded, kb_names, mode, stub_embedding=True)
                with_embedding = measure(loaded, kb_names, mode, stub_embedding=False)
                results[f"{label} | {mode}"] = r = {
                    "plan": strategy,
                    "p50_ms_excl_embedding": percentile(without.latencies_ms, 50),
                    "p95_ms_excl_embedding": percentile(without.latencies_ms, 95),
                    "p50_ms_incl_embedding": percentile(with_embedding.latencies_ms, 50),
                    "p95_ms_incl_embedding": percentile(with_embedding.latencies_ms, 95),
                    "recall@10": without.recall,
                }
                rows.append(
                    (
                        label,
                        strategy,
                        mode,
                        r["p50_ms_excl_embedding"],
                        r["p95_ms_excl_embedding"],
                        r["p50_ms_incl_embedding"],
                        r["p95_ms_incl_embedding"],
                        "" if r["recall@10"] is None else r["recall@10"],
                    )
                )
                print(table(HEADERS, rows[-1:]).splitlines()[-1], flush=True)
        breakdown = components(loaded)
        sweep = ef_sweep(loaded)
        # The post-filter pitfall on the raw HNSW query (the least ef_search, no fallback): why
        # selective filters are searched exactly.
        store = PgVectorStore()
        raw_recall = {}
        for name in ("medium", "small"):
            found = []
            for vector in loaded.query_vectors[:50]:
                hits = store._hnsw(
                    "embedding", vector_text(vector), [loaded.kb_ids[name]], TOP_K, settings.KNOWLEDGE_HNSW_EF_SEARCH
                )
                found.append(overlap(exact_top(loaded, vector, [name], TOP_K), [h.chunk_id for h in hits]))
            raw_recall[name] = mean(found)
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            pgvector_version = cursor.fetchone()[0]
            cursor.execute("SHOW shared_buffers")
            shared_buffers = cursor.fetchone()[0]
            cursor.execute(
                "SELECT pg_size_pretty(pg_relation_size('knowledge_chunk')), "
                "pg_size_pretty(pg_total_relation_size('knowledge_chunk')), "
                "pg_size_pretty(pg_relation_size('chunk_embedding_hnsw')), "
                "pg_size_pretty(pg_relation_size('chunk_embedding_kb_cover'))"
            )
            sizes = cursor.fetchone()
    return {
        "rows": rows,
        "results": results,
        "components_ms": breakdown,
        "ef_sweep": sweep,
        "raw_hnsw_postfilter_recall@10": raw_recall,
        "pgvector": pgvector_version,
        "shared_buffers": shared_buffers,
        "sizes": sizes,
        "ef_search_setting": settings.KNOWLEDGE_HNSW_EF_SEARCH,
        "exact_search_max": settings.KNOWLEDGE_EXACT_SEARCH_MAX,
        "loadavg_measuring": {"start": load_at_start, "end": os.getloadavg()},
    }


def test_query_latency_100k(loaded: Loaded, measured: dict[str, Any]) -> None:
    m = measured
    sizes = m["sizes"]
    print(f"\n[bench] vectors: {VECTORS}; pgvector {m['pgvector']}; shared_buffers {m['shared_buffers']}")
    print(f"[bench] load average (1, 5, 15 min) while measuring: {m['loadavg_measuring']}")
    print(
        f"[bench] knowledge_chunk heap {sizes[0]}, with indexes and TOAST {sizes[1]}, HNSW index {sizes[2]}, "
        f"covering index {sizes[3]}"
    )
    print(table(HEADERS, m["rows"]))
    breakdown = m["components_ms"]
    print(table(["component", "p50 ms", "p95 ms"], [(k, *v) for k, v in breakdown.items()]))
    sweep = m["ef_sweep"]
    print(
        table(["hnsw.ef_search", "recall@10", "p50 ms"], [(ef, v["recall@10"], v["p50_ms"]) for ef, v in sweep.items()])
    )
    print(
        f"[bench] raw HNSW scan (ef_search {m['ef_search_setting']}) with a knowledge-base filter, no fallback, "
        f"recall@10: {m['raw_hnsw_postfilter_recall@10']}"
    )
    record(
        f"query_latency_{VECTORS}",
        {
            "chunks_in_tenant": loaded.total_chunks,
            "kb_sizes": KB_SIZES,
            "texts": "SciFact titles, sentences and 2-4 sentence windows, distinct, shuffled",
            "vectors": VECTORS,
            "queries": len(loaded.queries),
            "embed_seconds": loaded.embed_seconds,
            "load_seconds": loaded.load_seconds,
            "index_seconds": loaded.index_seconds,
            **{k: v for k, v in m.items() if k != "rows"},
        },
    )
    dense, hybrid = m["results"]["all 3 KBs (100k) | dense"], m["results"]["all 3 KBs (100k) | hybrid"]
    # Hybrid is reported, not asserted: its p95 sits at the target (±2 ms from run to run, see
    # docs/benchmarks.md), so an assertion would fail on noise.
    verdict = "met" if hybrid["p95_ms_excl_embedding"] <= 20 else "MISSED"
    print(
        f"[bench] hybrid at 100k: p95 {hybrid['p95_ms_excl_embedding']:.1f} ms excl. embedding, target 20 ms {verdict}"
    )
    assert dense["recall@10"] >= 0.95, dense
    assert dense["p95_ms_excl_embedding"] <= 20, dense
