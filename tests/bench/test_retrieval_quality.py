"""Retrieval quality on BEIR SciFact, through the product's own ingestion and search path.

All 5,183 documents are added as raw-text sources of one knowledge base
(`services.source_add_text`, text = title + " " + text) and ingested by
`services.ingest_source` (the Celery task, eager here): markdown extraction, structure-aware
chunking, MiniLM embeddings, pgvector store, generated tsvector. Queries go through
`apps.knowledge.search.search` in the three modes.

Evaluation is per document: a hit's source is its document, and a document ranks where its
best chunk ranks. `search` returns at most 100 chunks, so "recall@100" is recall within the
documents of the top-100 chunks (fewer than 100 documents when several chunks of one document
rank). Binary relevance from `qrels/test.tsv`; the fusion is tuned on `qrels/train.tsv`.

Run: make bench PYTEST_ARGS="-k retrieval_quality"   (about 10 minutes on 2 cores)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from .helpers import Beir, data_dir, load_beir, mean, ndcg_at_k, percentile, recall_at_k, record, table

SCIFACT = data_dir() / "beir-scifact"

pytestmark = [
    pytest.mark.timeout(3600),
    pytest.mark.skipif(
        not (SCIFACT / "corpus.jsonl.gz").is_file(),
        reason=f"BEIR SciFact not found at {SCIFACT} (set SYNTERA_DATA_DIR to the directory holding beir-scifact/)",
    ),
]

TOP_K = 100  # the most `search` returns


@dataclass
class Indexed:
    kb_id: int
    doc_of_source: dict[int, str]
    documents: int
    chunks: int
    seconds: float
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass
class Run:
    """Ranked chunk ids (with the document of each) per query, from one mode."""

    chunks: dict[str, list[int]]
    scores: dict[str, list[float]]  # dense: cosine similarity; lexical: BM25; hybrid: fused
    doc_of_chunk: dict[int, str]
    seconds: list[float]

    def docs(self, qid: str, depth: int = TOP_K) -> list[str]:
        return list(dict.fromkeys(self.doc_of_chunk[c] for c in self.chunks[qid][:depth]))


def evaluate(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    return {
        "ndcg@10": mean(ndcg_at_k(rankings.get(q, []), rel, 10) for q, rel in qrels.items()),
        "recall@100": mean(recall_at_k(rankings.get(q, []), rel, 100) for q, rel in qrels.items()),
    }


def test_metric_implementation() -> None:
    """The metrics against hand-computed values (binary relevance, duplicates count once)."""
    import math

    assert ndcg_at_k(["a", "b", "c"], {"a": 1}) == 1.0
    assert ndcg_at_k(["x", "a"], {"a": 1}) == pytest.approx(1 / math.log2(3))
    # two relevant, found at ranks 1 and 3: (1 + 1/2) / (1 + 1/log2(3))
    assert ndcg_at_k(["a", "x", "b"], {"a": 1, "b": 1}) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(["x", "x", "a"], {"a": 1}) == pytest.approx(1 / math.log2(3))  # duplicate ignored
    assert ndcg_at_k([f"x{i}" for i in range(10)] + ["a"], {"a": 1}) == 0.0  # rank 11 is outside @10
    assert ndcg_at_k(["a"], {"a": 0}) == 0.0
    assert recall_at_k(["a", "x"], {"a": 1, "b": 1}) == 0.5
    assert recall_at_k(["x", "y", "a"], {"a": 1}, k=2) == 0.0
    assert recall_at_k(["x", "x", "a"], {"a": 1}, k=2) == 1.0  # duplicate ignored: "a" is 2nd
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5.0], 95) == 5.0


# --- index the corpus through the product ------------------------------------------------


@pytest.fixture(scope="module")
def scifact() -> Beir:
    return load_beir(SCIFACT)


@pytest.fixture(scope="module")
def indexed(scifact: Beir, committed_tenant: Any) -> Indexed:
    from collections import Counter

    from django.db import connection

    from apps.knowledge import services
    from apps.knowledge.models import Chunk, Source

    with committed_tenant("alpha") as actor:
        kb = services.knowledge_base_create(editor=actor, name="BEIR SciFact (benchmark)")
        doc_of_source: dict[int, str] = {}
        started = time.perf_counter()
        for number, doc in enumerate(scifact.corpus, start=1):
            # Committed at once (autocommit): the on-commit hook runs the ingestion task eagerly.
            source = services.source_add_text(
                editor=actor, kb=kb, title=doc["title"] or doc["_id"], text=f"{doc['title']} {doc['text']}"
            )
            doc_of_source[source.pk] = doc["_id"]
            if number % 1000 == 0:
                rate = number / (time.perf_counter() - started)
                print(f"[bench] ingested {number}/{len(scifact.corpus)} documents ({rate:.1f} docs/s)", flush=True)
        seconds = time.perf_counter() - started
        statuses = dict(Counter(Source.objects.filter(knowledge_base=kb).values_list("status", flat=True)))
        chunks = Chunk.objects.filter(knowledge_base=kb, embedding__isnull=False).count()
        # What autovacuum does within a minute of a bulk load; the full-text leg reads the
        # planner's word statistics (see apps/knowledge/search.py). Done here so the figures
        # do not depend on when autovacuum last ran.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE knowledge_chunk")
    assert statuses == {"ready": len(scifact.corpus)}, statuses
    return Indexed(kb.pk, doc_of_source, len(scifact.corpus), chunks, seconds, statuses)


def run_queries(committed_tenant: Any, indexed: Indexed, queries: dict[str, str], mode: str, **options: Any) -> Run:
    from django.db import connection

    from apps.knowledge.search import search

    chunks: dict[str, list[int]] = {}
    scores: dict[str, list[float]] = {}
    doc_of_chunk: dict[int, str] = {}
    seconds = []
    with committed_tenant("alpha"):
        # Outside pytest-django's per-test transaction: the store's `SET LOCAL` settings
        # must end with their own query, as they do in the product.
        assert not connection.in_atomic_block
        for qid, text in queries.items():
            started = time.perf_counter()
            hits = search(query=text, knowledge_base_ids=[indexed.kb_id], top_k=TOP_K, mode=mode, **options)
            seconds.append(time.perf_counter() - started)
            chunks[qid] = [h.chunk_id for h in hits]
            key = {"dense": "dense_score", "lexical": "lexical_score"}.get(mode, "score")
            scores[qid] = [float(getattr(h, key) or 0.0) for h in hits]
            for h in hits:
                doc_of_chunk[h.chunk_id] = indexed.doc_of_source[h.source["id"]]
    return Run(chunks, scores, doc_of_chunk, seconds)


# --- the full-text leg and fusion as they were before this benchmark ----------------------

# `ts_rank_cd` over the OR of the query's words (phrases kept), length-normalised; fused with
# RRF k=60 over pools of max(50, 5 * top_k). Kept here to measure before/after in one run.
LEGACY_LEXICAL_SQL = """
    WITH q AS (
        SELECT CASE WHEN numnode(plainto_tsquery('english', %s)) = 0 THEN NULL
               ELSE replace(plainto_tsquery('english', %s)::text, ' & ', ' | ')::tsquery END AS query
    )
    SELECT c.id, ts_rank_cd(c.search, q.query, 1) AS rank
    FROM knowledge_chunk c, q
    WHERE q.query IS NOT NULL AND c.knowledge_base_id = ANY(%s) AND c.search @@ q.query
    ORDER BY rank DESC, c.id
    LIMIT %s
"""


def legacy_lexical(query: str, kb_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(LEGACY_LEXICAL_SQL, [query, query, list(kb_ids), limit])
        return [(row[0], float(row[1])) for row in cursor.fetchall()]


@contextlib.contextmanager
def patched(**attributes: Any) -> Iterator[None]:
    """Temporarily replace module attributes of apps.knowledge.search (fusion: `RRF_K`, `POOL`)
    and of its full-text leg, apps.knowledge.search.fulltext (`ranking`, `LEXICAL_POSTINGS_BUDGET`)."""
    from apps.knowledge import search
    from apps.knowledge.search import fulltext

    modules = {name: fulltext if hasattr(fulltext, name) else search for name in attributes}
    saved = {name: getattr(modules[name], name) for name in attributes}
    try:
        for name, value in attributes.items():
            setattr(modules[name], name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(modules[name], name, value)


BEFORE = {"ranking": legacy_lexical, "RRF_K": 60, "POOL": 5 * TOP_K}  # pool max(50, 5·100) = 500


# --- fusion, replayed offline on the single-mode rankings (for tuning) --------------------


def rrf(dense: Run, lexical: Run, qid: str, *, k: float, wd: float, wl: float, pool: int) -> list[int]:
    """The weighted reciprocal rank fusion of `search`, replayed on two ranked lists."""
    fused: dict[int, float] = {}
    for rank, cid in enumerate(dense.chunks[qid][:pool], start=1):
        fused[cid] = fused.get(cid, 0.0) + wd / (k + rank)
    for rank, cid in enumerate(lexical.chunks[qid][:pool], start=1):
        fused[cid] = fused.get(cid, 0.0) + wl / (k + rank)
    return sorted(fused, key=lambda cid: (-fused[cid], cid))


def convex(dense: Run, lexical: Run, qid: str, *, alpha: float, pool: int) -> list[int]:
    """Convex combination of min-max normalised scores (Bruch et al. 2023), for comparison."""

    def normalised(run: Run) -> dict[int, float]:
        pairs = list(zip(run.chunks[qid][:pool], run.scores[qid][:pool], strict=True))
        if not pairs:
            return {}
        low, high = min(s for _, s in pairs), max(s for _, s in pairs)
        return {c: (s - low) / (high - low) if high > low else 1.0 for c, s in pairs}

    d, lx = normalised(dense), normalised(lexical)
    fused = {c: alpha * d.get(c, 0.0) + (1 - alpha) * lx.get(c, 0.0) for c in d.keys() | lx.keys()}
    return sorted(fused, key=lambda cid: (-fused[cid], cid))


def replay(dense: Run, lexical: Run, qids: Iterable[str], fuse: Callable[..., list[int]], **params: Any) -> dict:
    doc_of = {**dense.doc_of_chunk, **lexical.doc_of_chunk}
    return {q: list(dict.fromkeys(doc_of[c] for c in fuse(dense, lexical, q, **params)[:TOP_K])) for q in qids}


def tune(dense: Run, lexical: Run, qrels: dict[str, dict[str, int]]) -> list[tuple[float, str, dict[str, Any]]]:
    """Grids over RRF (k, lexical/dense weight, pool per leg) and the convex alternative,
    scored by train nDCG@10. Pools stop at 100: `search` returns at most 100 per mode."""
    scored = []
    for k in (2, 5, 8, 10, 15, 20, 30, 60):
        for ratio in (0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0):
            for pool in (50, 100):
                params = {"k": k, "wd": 1.0, "wl": ratio, "pool": pool}
                ndcg = evaluate(replay(dense, lexical, qrels, rrf, **params), qrels)["ndcg@10"]
                scored.append((ndcg, "rrf", params))
    for alpha in (0.3, 0.4, 0.5, 0.6, 0.7):
        for pool in (50, 100):
            params = {"alpha": alpha, "pool": pool}
            scored.append(
                (evaluate(replay(dense, lexical, qrels, convex, **params), qrels)["ndcg@10"], "convex", params)
            )
    scored.sort(key=lambda item: -item[0])
    return scored


# --- the benchmark -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(scifact: Beir, indexed: Indexed, committed_tenant: Any) -> dict[str, Run]:
    """Every search of the benchmark (in autocommit, before the test's own transaction)."""
    test_queries = {q: scifact.queries[q] for q in scifact.qrels["test"]}
    train_queries = {q: scifact.queries[q] for q in scifact.qrels["train"]}
    out: dict[str, Run] = {}

    def go(name: str, queries: dict[str, str], mode: str) -> None:
        started = time.perf_counter()
        out[name] = run_queries(committed_tenant, indexed, queries, mode)
        print(f"[bench] {name}: {len(queries)} queries in {time.perf_counter() - started:.0f} s", flush=True)

    for mode in ("dense", "lexical"):
        go(f"train {mode}", train_queries, mode)
    for mode in ("dense", "lexical", "hybrid"):
        go(f"test {mode}", test_queries, mode)
    with patched(LEXICAL_POSTINGS_BUDGET=10**12):
        go("test lexical, exact BM25 (no postings budget)", test_queries, "lexical")
        go("test hybrid, exact BM25 (no postings budget)", test_queries, "hybrid")
    with patched(**BEFORE):
        go("test lexical, before (ts_rank_cd)", test_queries, "lexical")
        go("test hybrid, before (ts_rank_cd, RRF k=60, pool 500)", test_queries, "hybrid")
    return out


def test_scifact_retrieval_quality(scifact: Beir, indexed: Indexed, runs: dict[str, Run]) -> None:
    from apps.knowledge import search

    test_qrels, train_qrels = scifact.qrels["test"], scifact.qrels["train"]
    print(
        f"\n[bench] indexed {indexed.documents} documents as {indexed.chunks} chunks in {indexed.seconds:.0f} s "
        f"({indexed.documents / indexed.seconds:.1f} docs/s, {indexed.chunks / indexed.seconds:.1f} chunks/s), "
        "one text source per document, ingested by services.ingest_source"
    )

    # Tuning on train only.
    grid = tune(runs["train dense"], runs["train lexical"], train_qrels)
    product = {"k": search.RRF_K, "wd": 1.0, "wl": 1.0, "pool": min(search.POOL, TOP_K)}
    product_train = evaluate(
        replay(runs["train dense"], runs["train lexical"], train_qrels, rrf, **product), train_qrels
    )
    print("[bench] fusion grid on the TRAIN split (809 queries), best 12 by nDCG@10:")
    print(table(["train nDCG@10", "fusion", "parameters"], [(s, f, p) for s, f, p in grid[:12]]))
    print(f"[bench] product setting {product}: train nDCG@10 {product_train['ndcg@10']:.4f}")

    # The test split.
    results: dict[str, dict[str, float]] = {}
    for name, run in runs.items():
        if not name.startswith("test"):
            continue
        scores = evaluate({q: run.docs(q) for q in test_qrels}, test_qrels)
        scores["p50_ms"] = percentile(run.seconds, 50) * 1000
        scores["p95_ms"] = percentile(run.seconds, 95) * 1000
        results[name.removeprefix("test ")] = scores
    replayed = evaluate(replay(runs["test dense"], runs["test lexical"], test_qrels, rrf, **product), test_qrels)
    best_convex = next(p for _, f, p in grid if f == "convex")
    convex_test = evaluate(
        replay(runs["test dense"], runs["test lexical"], test_qrels, convex, **best_convex), test_qrels
    )
    results[f"hybrid, train-best convex {best_convex} (replayed, not adopted)"] = convex_test

    rows = [(n, r["ndcg@10"], r["recall@100"], r.get("p50_ms", ""), r.get("p95_ms", "")) for n, r in results.items()]
    print(table(["test split, 300 queries", "nDCG@10", "recall@100", "p50 ms", "p95 ms"], rows))
    record(
        "retrieval_quality",
        {
            "corpus_documents": indexed.documents,
            "chunks": indexed.chunks,
            "ingest_seconds": indexed.seconds,
            "test": results,
            "train_grid_top": grid[:20],
            "product_setting": product,
            "product_train": product_train,
        },
    )
    # The replay of the product's fusion must be the product's hybrid (the tuning is faithful).
    assert replayed["ndcg@10"] == pytest.approx(results["hybrid"]["ndcg@10"], abs=1e-9), replayed
    assert results["hybrid"]["ndcg@10"] >= 0.70, results["hybrid"]
