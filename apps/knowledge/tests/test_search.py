"""Retrieval (`apps.knowledge.search`) and the pgvector store's query plans.

- MMR diversifies with the vectors of each knowledge base's own model: 384-d MiniLM and
  1536-d OpenAI columns in pgvector, and Pinecone (whose vectors the search cannot read:
  the candidates' texts are embedded again). Pinecone runs against the local stand-in
  (`tests/standins/pinecone_server.py`, see test_stores.py).
- pgvector chooses exact search or HNSW from the maintained chunk counts; through HNSW a
  selective knowledge-base filter still returns its true nearest chunks, and counts that
  overstate a knowledge base fall back to exact search.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from django.db import connection

from apps.knowledge import embeddings
from apps.knowledge.models import Chunk, Source
from apps.knowledge.search import search
from apps.knowledge.stores import get_store
from apps.knowledge.stores.pgvector import MAX_EF_SEARCH, PgVectorStore, candidate_counts, plan

from . import test_stores
from .test_stores import Corpus, expected_top, make_corpus, unit_vectors

# The store suite's fixtures, used here by name.
in_alpha = test_stores.in_alpha
pinecone_standin = test_stores.pinecone_standin
store = test_stores.store
use_pgvector = test_stores.use_pgvector
use_pinecone = test_stores.use_pinecone

DIMENSIONS = {"local-minilm": 384, "openai-3-small": 1536}


class FakeProvider:
    """An embedding provider with known vectors: the query's, and each chunk text's."""

    def __init__(self, name: str, vectors: dict[str, np.ndarray]) -> None:
        self.name = name
        self.dimensions = DIMENSIONS[name]
        self.vectors = vectors
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.embedded.extend(texts)
        return [self.vectors[t].tolist() for t in texts]


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def _near_duplicates(dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """The query vector, and 3 near-identical chunks closest to it followed by 5 chunks a
    little further away, each in its own direction."""
    rng = np.random.default_rng(11)
    axes = np.eye(dimension)
    query = axes[0]
    noise = 0.01 / np.sqrt(dimension)
    duplicates = [_unit(axes[0] + 0.3 * axes[1] + noise * rng.standard_normal(dimension)) for _ in range(3)]
    distinct = [_unit(axes[0] + (0.9 + 0.02 * k) * axes[2 + k]) for k in range(5)]
    return query, np.array(duplicates + distinct)


@pytest.mark.parametrize("model", list(DIMENSIONS))
def test_mmr_uses_the_vectors_of_the_knowledge_bases_model(
    store: Any, in_alpha: Any, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without MMR the three near-duplicates fill the top 3; with it, one of them and two
    different chunks. Before MMR read the model's vectors it was a no-op for 1536-d
    knowledge bases and for Pinecone."""
    query_vector, vectors = _near_duplicates(DIMENSIONS[model])
    corpus = make_corpus(f"mmr {model}", vectors, model=model)
    store.upsert(schema=connection.schema_name, model=model, records=corpus.records())
    texts = {c.text: v for c, v in zip(corpus.chunks, vectors, strict=True)}
    provider = FakeProvider(model, {"which one?": query_vector, **texts})
    monkeypatch.setattr(embeddings, "get_provider", lambda name: provider)

    plain = search(query="which one?", knowledge_base_ids=[corpus.kb.pk], top_k=3, mode="dense")
    assert {h.chunk_id for h in plain} == set(corpus.ids[:3])
    diverse = search(
        query="which one?", knowledge_base_ids=[corpus.kb.pk], top_k=3, mode="dense", mmr=True, mmr_lambda=0.5
    )
    assert diverse[0].chunk_id == plain[0].chunk_id
    assert len({h.chunk_id for h in diverse} & set(corpus.ids[:3])) == 1
    assert {h.chunk_id for h in diverse[1:]} <= set(corpus.ids[3:])
    assert all(h.dense_score is not None and h.dense_score > 0.7 for h in diverse)
    # pgvector hands over its stored vectors; Pinecone's are embedded again from the texts
    reembedded = set(provider.embedded) - {"which one?"}
    assert reembedded == (set(texts) if store.name == "pinecone" else set())


def test_mmr_across_models_compares_only_vectors_of_one_model(
    use_pgvector: None, in_alpha: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two knowledge bases on different models: each one's near-duplicates are demoted in
    its own vector space, and every hit keeps its place when it has no comparable vector."""
    vectors_store = get_store()
    providers = {}
    corpora = []
    for model in DIMENSIONS:
        query_vector, vectors = _near_duplicates(DIMENSIONS[model])
        corpus = make_corpus(f"mixed {model}", vectors, model=model)
        vectors_store.upsert(schema=connection.schema_name, model=model, records=corpus.records())
        texts = {c.text: v for c, v in zip(corpus.chunks, vectors, strict=True)}
        providers[model] = FakeProvider(model, {"which one?": query_vector, **texts})
        corpora.append(corpus)
    monkeypatch.setattr(embeddings, "get_provider", lambda name: providers[name])

    hits = search(
        query="which one?",
        knowledge_base_ids=[c.kb.pk for c in corpora],
        top_k=4,
        mode="dense",
        mmr=True,
        mmr_lambda=0.5,
    )
    for corpus in corpora:  # without MMR, the six near-duplicates rank 1-6
        mine = [h.chunk_id for h in hits if h.knowledge_base_id == corpus.kb.pk]
        assert len(mine) == 2 and len(set(mine) & set(corpus.ids[:3])) == 1, mine


# --- pgvector query plans -------------------------------------------------------------------


def test_plan_exact_for_small_or_very_selective_sets(settings: Any) -> None:
    settings.KNOWLEDGE_EXACT_SEARCH_MAX = 5000
    settings.KNOWLEDGE_HNSW_EF_SEARCH = 100
    assert plan(candidates=0, indexed=0, top_k=100) is None
    assert plan(candidates=5000, indexed=1_000_000, top_k=100) is None
    # 10 % of the index: 2000 rows would have to be walked to keep 200 of them
    assert plan(candidates=10_000, indexed=100_000, top_k=100) is None
    assert plan(candidates=10_000, indexed=100_000, top_k=10) == 200
    assert plan(candidates=89_000, indexed=100_000, top_k=100) == 225
    assert plan(candidates=100_000, indexed=100_000, top_k=100) == 200
    assert plan(candidates=100_000, indexed=100_000, top_k=10) == 100  # KNOWLEDGE_HNSW_EF_SEARCH at least
    assert plan(candidates=300_000, indexed=1_000_000, top_k=100) == 667
    assert plan(candidates=200_000, indexed=1_000_000, top_k=100) == MAX_EF_SEARCH
    assert plan(candidates=190_000, indexed=1_000_000, top_k=100) is None  # would need > MAX_EF_SEARCH
    assert plan(candidates=20_000, indexed=10_000, top_k=10) == 100  # counts out of date: never > 1
    settings.KNOWLEDGE_EXACT_SEARCH_MAX = 0
    assert plan(candidates=10, indexed=10, top_k=10) is None  # never fewer candidates than asked for
    assert MAX_EF_SEARCH == 1000


def _counted(corpus: Corpus, chunk_count: int) -> Corpus:
    """Set the source's maintained chunk count, as ingestion does when it finishes."""
    Source.objects.filter(pk=corpus.source.pk).update(chunk_count=chunk_count)
    return corpus


def _walk_the_graph() -> None:
    """Make the planner take the HNSW index for an ORDER BY distance (until the test's
    transaction ends): on tables this small it would rather sort a knowledge base's rows,
    which is exact and would hide what the graph walk returns."""
    with connection.cursor() as cursor:
        cursor.execute("SET enable_sort = off")


class Spy:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        for name in ("_exact", "_hnsw"):
            original = getattr(PgVectorStore, name)

            def wrapped(instance: Any, *args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
                self.calls.append(_name)
                return _original(instance, *args, **kwargs)

            monkeypatch.setattr(PgVectorStore, name, wrapped)


def test_counts_come_from_the_sources(in_alpha: Any) -> None:
    rng = np.random.default_rng(12)
    a = _counted(make_corpus("count A", unit_vectors(rng, 3, 384)), 1200)
    b = _counted(make_corpus("count B", unit_vectors(rng, 2, 384)), 300)
    c = _counted(make_corpus("count C", unit_vectors(rng, 2, 1536), model="openai-3-small"), 5000)

    def total(model: str) -> int:
        return sum(Source.objects.filter(knowledge_base__embedding_model=model).values_list("chunk_count", flat=True))

    assert candidate_counts(model="local-minilm", knowledge_base_ids=[b.kb.pk]) == (300, total("local-minilm"))
    assert total("local-minilm") >= 1500
    # a knowledge base on another model does not count, in the selection or in the index
    assert candidate_counts(model="openai-3-small", knowledge_base_ids=[a.kb.pk, c.kb.pk]) == (
        5000,
        total("openai-3-small"),
    )


def test_selective_filter_through_hnsw_keeps_its_nearest_chunks(
    use_pgvector: None, in_alpha: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A knowledge base holding ~9 % of the tenant's vectors, searched through HNSW with
    ef_search raised for that selectivity: its true nearest chunks, none of the others."""
    settings.KNOWLEDGE_EXACT_SEARCH_MAX = 100
    spy = Spy(monkeypatch)
    pgvector = get_store()
    rng = np.random.default_rng(13)
    a = _counted(make_corpus("hnsw big", unit_vectors(rng, 3000, 384)), 3000)
    b = _counted(make_corpus("hnsw small", unit_vectors(rng, 300, 384)), 300)
    pgvector.upsert(schema=connection.schema_name, model="local-minilm", records=a.records() + b.records())
    _walk_the_graph()
    recalls = []
    for probe in (a.vectors[0], a.vectors[1], b.vectors[5], unit_vectors(rng, 1, 384)[0]):
        hits = pgvector.query(
            schema=connection.schema_name,
            model="local-minilm",
            vector=probe.tolist(),
            knowledge_base_ids=[b.kb.pk],
            top_k=10,
        )
        assert len(hits) == 10 and {h.chunk_id for h in hits} <= set(b.ids)
        assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
        truth = {cid for cid, _ in expected_top([b], probe, 10)}
        recalls.append(len(truth & {h.chunk_id for h in hits}) / 10)
    assert spy.calls[0] == "_hnsw"
    assert np.mean(recalls) >= 0.9, recalls


def test_counts_that_overstate_a_knowledge_base_fall_back_to_exact_search(
    use_pgvector: None, in_alpha: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counts say half the vectors are B's (a re-embedding, say), but B has 20: HNSW
    returns too few of them and the exact search returns B's true top 10."""
    settings.KNOWLEDGE_EXACT_SEARCH_MAX = 100
    spy = Spy(monkeypatch)
    pgvector = get_store()
    rng = np.random.default_rng(14)
    a = _counted(make_corpus("overstated A", unit_vectors(rng, 2000, 384)), 2000)
    b = _counted(make_corpus("overstated B", unit_vectors(rng, 20, 384)), 2000)
    pgvector.upsert(schema=connection.schema_name, model="local-minilm", records=a.records() + b.records())
    Chunk.objects.filter(pk__in=b.ids[:5]).update(embedding=None)  # not embedded yet
    rest = Corpus(b.kb, b.source, b.chunks[5:], b.vectors[5:])
    _walk_the_graph()
    probe = a.vectors[0]
    hits = pgvector.query(
        schema=connection.schema_name,
        model="local-minilm",
        vector=probe.tolist(),
        knowledge_base_ids=[b.kb.pk],
        top_k=10,
    )
    assert spy.calls == ["_hnsw", "_exact"]
    assert [h.chunk_id for h in hits] == [cid for cid, _ in expected_top([rest], probe, 10)]
    assert [h.similarity for h in hits] == pytest.approx([s for _, s in expected_top([rest], probe, 10)], abs=1e-4)


def test_a_repeated_question_is_embedded_once_by_the_local_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local model's question vectors are kept per tenant: the same question again costs
    no model run and gets the very same vector; another question, or the same question in
    another tenant's schema (whose answer time must not tell what this one asked), is embedded."""
    from uuid import uuid4

    from apps.knowledge.search.dense import query_vector

    calls: list[str] = []
    real = embeddings.LocalMiniLM.embed

    def counting(self: Any, texts: Sequence[str]) -> list[list[float]]:
        calls.extend(texts)
        return real(self, texts)

    monkeypatch.setattr(embeddings.LocalMiniLM, "embed", counting)
    question = f"How long does shipping take? {uuid4().hex}"
    first = query_vector("local-minilm", question, schema="alpha")
    assert query_vector("local-minilm", question, schema="alpha") == first and calls == [question]
    assert len(first) == 384 and abs(float(np.linalg.norm(first)) - 1) < 1e-3
    query_vector("local-minilm", question + "?", schema="alpha")
    assert calls == [question, question + "?"]
    assert query_vector("local-minilm", question, schema="beta") == first
    assert calls == [question, question + "?", question]
