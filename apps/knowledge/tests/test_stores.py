"""The vector-store contract, run against every store: pgvector on the real PostgreSQL test
database, and Pinecone through the official `pinecone` SDK against the local stand-in in
`tests/standins/pinecone_server.py`, which stands in for Pinecone's control plane and the
REST data plane of its indexes (upsert, query with metadata filters, delete, stats).

Records always belong to real chunk rows (knowledge base → source → document → chunk) in
a tenant's schema, as ingestion writes them. Then: ingestion and search end to end with
the Pinecone store, and deletion reaching Pinecone after commit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django_tenants.utils import get_tenant_model, schema_context, tenant_context

from apps.knowledge.models import Chunk, Document, KnowledgeBase, Source
from apps.knowledge.stores import VectorHit, VectorRecord, _store, get_store
from apps.knowledge.stores.pinecone import namespace_for, parse_index_hosts
from tests.standins.pinecone_server import PineconeStandIn

PINECONE_KEY = "pc-test-key"
MODELS = {"local-minilm": 384, "openai-3-small": 1536}


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pinecone_standin() -> Iterator[PineconeStandIn]:
    """Pinecone with the two indexes the store expects: syntera-384 and syntera-1536."""
    standin = PineconeStandIn(api_key=PINECONE_KEY).start()
    for dimension in sorted(set(MODELS.values())):
        standin.create_index(f"syntera-{dimension}", dimension=dimension)
    yield standin
    standin.stop()


@pytest.fixture
def use_pinecone(settings: Any, pinecone_standin: PineconeStandIn) -> Iterator[PineconeStandIn]:
    """Vectors go to the (emptied) stand-in, its index hosts given by PINECONE_INDEX_HOST."""
    pinecone_standin.reset()
    settings.KNOWLEDGE_VECTOR_STORE = "pinecone"
    settings.PINECONE_API_KEY = PINECONE_KEY
    settings.PINECONE_INDEX = "syntera"
    settings.PINECONE_CONTROLLER_HOST = pinecone_standin.url
    settings.PINECONE_INDEX_HOST = ",".join(f"{d}={i.url}" for d, i in _by_dimension(pinecone_standin).items())
    _store.cache_clear()
    yield pinecone_standin
    _store.cache_clear()


@pytest.fixture
def use_pgvector(settings: Any) -> Iterator[None]:
    settings.KNOWLEDGE_VECTOR_STORE = "pgvector"
    _store.cache_clear()
    yield
    _store.cache_clear()


@pytest.fixture(params=["pgvector", "pinecone"])
def store(request: Any, alpha: Any, beta: Any) -> Iterator[Any]:
    """Each store in turn, fresh (`_store` caches one instance per name)."""
    request.getfixturevalue("use_pgvector" if request.param == "pgvector" else "use_pinecone")
    store = get_store()
    assert store.name == request.param
    yield store


def _by_dimension(standin: PineconeStandIn) -> dict[int, Any]:
    return {index.dimension: index for index in standin.indexes.values()}


# --- data -------------------------------------------------------------------------------


@dataclass
class Corpus:
    kb: KnowledgeBase
    source: Source
    chunks: list[Chunk]
    vectors: np.ndarray  # row i is the vector of chunks[i]

    @property
    def ids(self) -> list[int]:
        return [c.pk for c in self.chunks]

    def records(self) -> list[VectorRecord]:
        return [
            VectorRecord(chunk_id=c.pk, knowledge_base_id=self.kb.pk, source_id=self.source.pk, vector=v.tolist())
            for c, v in zip(self.chunks, self.vectors, strict=True)
        ]


def unit_vectors(rng: np.random.Generator, count: int, dimension: int) -> np.ndarray:
    vectors = rng.standard_normal((count, dimension))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_corpus(name: str, vectors: np.ndarray, *, model: str = "local-minilm") -> Corpus:
    """A knowledge base with one source, one document and a chunk row per vector (current schema)."""
    kb = KnowledgeBase.objects.create(name=name, embedding_model=model)
    source = Source.objects.create(knowledge_base=kb, type=Source.Type.TEXT, title=f"{name} source")
    document = Document.objects.create(source=source, ref="text", title=name, content_hash="0" * 64)
    chunks = Chunk.objects.bulk_create(
        [
            Chunk(knowledge_base=kb, source=source, document=document, ordinal=i, text=f"{name} chunk {i}")
            for i in range(len(vectors))
        ],
        batch_size=1000,
    )
    return Corpus(kb, source, chunks, vectors)


def expected_top(corpora: list[Corpus], query: np.ndarray, top_k: int) -> list[tuple[int, float]]:
    """Exact cosine ranking over the corpora, the reference every store must match."""
    ids = [i for c in corpora for i in c.ids]
    sims = np.concatenate([c.vectors for c in corpora]) @ (query / np.linalg.norm(query))
    order = np.argsort(-sims, kind="stable")[:top_k]
    return [(ids[i], float(sims[i])) for i in order]


def query(
    store: Any, vector: np.ndarray, kbs: list[Corpus], top_k: int, model: str = "local-minilm"
) -> list[VectorHit]:
    schema = connection.schema_name
    return list(
        store.query(
            schema=schema, model=model, vector=vector.tolist(), knowledge_base_ids=[c.kb.pk for c in kbs], top_k=top_k
        )
    )


@pytest.fixture
def in_alpha(alpha: Any) -> Iterator[Any]:
    with schema_context(alpha.schema):
        yield alpha


# --- the contract -----------------------------------------------------------------------


@pytest.mark.parametrize("model", list(MODELS))
def test_upsert_then_query_returns_nearest_first(store: Any, in_alpha: Any, model: str) -> None:
    rng = np.random.default_rng(1)
    corpus = make_corpus("nearest", unit_vectors(rng, 60, MODELS[model]), model=model)
    store.upsert(schema=connection.schema_name, model=model, records=corpus.records())

    probe = corpus.vectors[17]
    hits = query(store, probe, [corpus], top_k=10, model=model)
    assert len(hits) == 10
    assert hits[0].chunk_id == corpus.ids[17]
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-4)
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    expected = expected_top([corpus], probe, 10)
    assert [h.chunk_id for h in hits] == [cid for cid, _ in expected]
    assert [h.similarity for h in hits] == pytest.approx([s for _, s in expected], abs=1e-4)
    # a perturbed vector still finds its chunk first; an opposite one scores ≈ -1
    near = probe + 0.05 * unit_vectors(rng, 1, MODELS[model])[0]
    assert query(store, near, [corpus], top_k=1, model=model)[0].chunk_id == corpus.ids[17]
    far = query(store, -probe, [corpus], top_k=60, model=model)[-1]
    assert far.chunk_id == corpus.ids[17] and far.similarity == pytest.approx(-1.0, abs=1e-4)


def test_selective_filter_still_returns_top_k(store: Any, in_alpha: Any) -> None:
    """The post-filter pitfall: 2000 chunks in A, 20 in B; B's top 10 are still 10 of B's,
    even for a query that sits right on A's vectors."""
    rng = np.random.default_rng(2)
    a = make_corpus("big A", unit_vectors(rng, 2000, 384))
    b = make_corpus("small B", unit_vectors(rng, 20, 384))
    schema = connection.schema_name
    store.upsert(schema=schema, model="local-minilm", records=a.records())
    store.upsert(schema=schema, model="local-minilm", records=b.records())

    for probe in (a.vectors[0], a.vectors[1234], b.vectors[3]):
        hits = query(store, probe, [b], top_k=10)
        assert len(hits) == 10
        assert {h.chunk_id for h in hits} <= set(b.ids)
        assert [h.chunk_id for h in hits] == [cid for cid, _ in expected_top([b], probe, 10)]
    assert len(query(store, a.vectors[5], [b], top_k=50)) == 20  # all of B, nothing of A
    both = query(store, b.vectors[7], [a, b], top_k=10)
    assert both[0].chunk_id == b.ids[7]
    assert [h.chunk_id for h in both] == [cid for cid, _ in expected_top([a, b], b.vectors[7], 10)]
    only_a = query(store, b.vectors[7], [a], top_k=10)
    assert len(only_a) == 10 and not {h.chunk_id for h in only_a} & set(b.ids)


def test_selective_filter_through_pgvector_hnsw(use_pgvector: None, in_alpha: Any, settings: Any) -> None:
    """pgvector with exact search switched off: the HNSW path (iterative scan or the exact
    fallback) must still return B's true top 10."""
    settings.KNOWLEDGE_EXACT_SEARCH_MAX = 0
    store = get_store()
    rng = np.random.default_rng(3)
    a = make_corpus("hnsw A", unit_vectors(rng, 2000, 384))
    b = make_corpus("hnsw B", unit_vectors(rng, 20, 384))
    store.upsert(schema=connection.schema_name, model="local-minilm", records=a.records() + b.records())
    hits = query(store, a.vectors[0], [b], top_k=10)
    assert [h.chunk_id for h in hits] == [cid for cid, _ in expected_top([b], a.vectors[0], 10)]


def test_delete_removes(store: Any, in_alpha: Any, pinecone_standin: PineconeStandIn) -> None:
    rng = np.random.default_rng(4)
    corpus = make_corpus("deleting", unit_vectors(rng, 12, 384))
    schema = connection.schema_name
    store.upsert(schema=schema, model="local-minilm", records=corpus.records())
    gone = corpus.ids[:5]
    # as the services do it: the rows go in a transaction, the store's delete follows
    Chunk.objects.filter(pk__in=gone).delete()
    store.delete(schema=schema, chunk_ids=gone)
    for i in range(12):
        hits = query(store, corpus.vectors[i], [corpus], top_k=12)
        assert not {h.chunk_id for h in hits} & set(gone)
        assert len(hits) == 7
    if store.name == "pinecone":  # the vectors themselves are gone, not only hidden
        assert pinecone_standin.indexes["syntera-384"].ids(namespace_for(schema)) == {str(i) for i in corpus.ids[5:]}
    store.delete(schema=schema, chunk_ids=[])  # nothing to do
    store.delete(schema=schema, chunk_ids=gone)  # deleting twice is harmless


def test_reupsert_replaces_without_duplicates(store: Any, in_alpha: Any, pinecone_standin: PineconeStandIn) -> None:
    rng = np.random.default_rng(5)
    corpus = make_corpus("replacing", unit_vectors(rng, 8, 384))
    schema = connection.schema_name
    store.upsert(schema=schema, model="local-minilm", records=corpus.records())
    old, new = corpus.vectors[2].copy(), unit_vectors(rng, 1, 384)[0]
    corpus.vectors[2] = new
    store.upsert(schema=schema, model="local-minilm", records=corpus.records()[2:3])
    store.upsert(schema=schema, model="local-minilm", records=corpus.records()[2:3])  # and once more

    hits = query(store, new, [corpus], top_k=100)
    assert len(hits) == 8 and len({h.chunk_id for h in hits}) == 8
    assert hits[0].chunk_id == corpus.ids[2] and hits[0].similarity == pytest.approx(1.0, abs=1e-4)
    by_old = {h.chunk_id: h.similarity for h in query(store, old, [corpus], top_k=100)}
    assert by_old[corpus.ids[2]] == pytest.approx(float(old @ new), abs=1e-4)
    if store.name == "pinecone":
        assert len(pinecone_standin.indexes["syntera-384"].ids(namespace_for(schema))) == 8


def test_tenant_isolation(store: Any, alpha: Any, beta: Any, pinecone_standin: PineconeStandIn) -> None:
    """Vectors written under alpha's schema never come back for beta's, even for beta
    queries that name alpha's knowledge-base ids and use alpha's exact vectors (chunk and
    knowledge-base ids repeat across schemas: each has its own sequences)."""
    rng = np.random.default_rng(6)
    canary = unit_vectors(rng, 5, 384)
    with schema_context(alpha.schema):
        a = make_corpus("canary-alpha", canary)
        store.upsert(schema=alpha.schema, model="local-minilm", records=a.records())
    with schema_context(beta.schema):
        b = make_corpus("canary-beta", unit_vectors(rng, 5, 384))
        store.upsert(schema=beta.schema, model="local-minilm", records=b.records())

    kb_ids = [a.kb.pk, b.kb.pk]
    with schema_context(beta.schema):
        beta_rows = set(Chunk.objects.filter(knowledge_base_id__in=kb_ids).values_list("pk", flat=True))
        for probe in canary:
            hits = query(store, probe, [a, b], top_k=10)
            assert {h.chunk_id for h in hits} <= beta_rows and set(b.ids) <= {h.chunk_id for h in hits}
            assert all(h.similarity < 0.5 for h in hits)  # alpha's own vector would score 1
    with schema_context(alpha.schema):
        alpha_rows = set(Chunk.objects.filter(knowledge_base_id__in=kb_ids).values_list("pk", flat=True))
        for i, probe in enumerate(canary):
            hits = query(store, probe, [a, b], top_k=10)
            assert hits[0].chunk_id == a.ids[i] and hits[0].similarity == pytest.approx(1.0, abs=1e-4)
            assert {h.chunk_id for h in hits} <= alpha_rows
            assert all(h.similarity < 0.5 for h in hits[1:])
        for probe in b.vectors:  # beta's vectors are not there
            assert all(h.similarity < 0.5 for h in query(store, probe, [a, b], top_k=10))
        # a delete under alpha's schema leaves beta's vectors alone
        store.delete(schema=alpha.schema, chunk_ids=b.ids)
    with schema_context(beta.schema):
        assert len(query(store, b.vectors[0], [b], top_k=10)) == 5
    if store.name == "pinecone":
        index = pinecone_standin.indexes["syntera-384"]
        assert index.ids(namespace_for(beta.schema)) == {str(i) for i in b.ids}
        assert set(index.namespaces) == {namespace_for(alpha.schema), namespace_for(beta.schema)}


def test_orphan_vectors_never_come_back(store: Any, in_alpha: Any) -> None:
    """A vector whose chunk row does not exist (its transaction rolled back) is not a hit,
    and does not cost a place in the top_k."""
    rng = np.random.default_rng(7)
    corpus = make_corpus("orphans", unit_vectors(rng, 15, 384))
    schema = connection.schema_name
    store.upsert(schema=schema, model="local-minilm", records=corpus.records())
    probe = unit_vectors(rng, 1, 384)[0]
    missing = max(corpus.ids) + 10_000
    orphans = [
        VectorRecord(
            chunk_id=missing + i, knowledge_base_id=corpus.kb.pk, source_id=corpus.source.pk, vector=probe.tolist()
        )
        for i in range(30)
    ]
    store.upsert(schema=schema, model="local-minilm", records=orphans)
    hits = query(store, probe, [corpus], top_k=10)
    assert [h.chunk_id for h in hits] == [cid for cid, _ in expected_top([corpus], probe, 10)]


def test_empty_queries(store: Any, in_alpha: Any) -> None:
    rng = np.random.default_rng(8)
    corpus = make_corpus("empty", unit_vectors(rng, 3, 384))
    probe = corpus.vectors[0]
    assert query(store, probe, [corpus], top_k=5) == []  # nothing upserted yet
    store.upsert(schema=connection.schema_name, model="local-minilm", records=[])
    store.upsert(schema=connection.schema_name, model="local-minilm", records=corpus.records())
    assert query(store, probe, [], top_k=5) == []
    assert query(store, probe, [corpus], top_k=0) == []
    assert len(query(store, probe, [corpus], top_k=5)) == 3


# --- Pinecone specifics -----------------------------------------------------------------


def test_pinecone_wire_format_batches_and_namespaces(use_pinecone: PineconeStandIn, in_alpha: Any) -> None:
    store = get_store()
    index = _by_dimension(use_pinecone)[384]
    rng = np.random.default_rng(9)
    corpus = make_corpus("wire", unit_vectors(rng, 250, 384))
    schema = connection.schema_name
    store.upsert(schema=schema, model="local-minilm", records=corpus.records())

    upserts = index.requests_to("/vectors/upsert")
    assert [len(r.body["vectors"]) for r in upserts] == [100, 100, 50]
    first = upserts[0]
    assert first.headers["api-key"] == PINECONE_KEY
    assert first.headers["x-pinecone-api-version"]
    assert first.body["namespace"] == f"tenant-{schema}"
    assert first.body["vectors"][0]["id"] == str(corpus.ids[0])
    assert first.body["vectors"][0]["metadata"] == {"knowledge_base_id": corpus.kb.pk, "source_id": corpus.source.pk}
    stored = index.record(f"tenant-{schema}", str(corpus.ids[0]))
    assert stored is not None and np.allclose(stored.values, corpus.vectors[0], atol=1e-6)

    query(store, corpus.vectors[0], [corpus], top_k=7)
    sent = index.requests_to("/query")[-1].body
    assert sent["filter"] == {"knowledge_base_id": {"$in": [corpus.kb.pk]}}
    assert sent["topK"] == 7 and sent["namespace"] == f"tenant-{schema}"

    store.delete(schema=schema, chunk_ids=corpus.ids + list(range(10**6, 10**6 + 1900)))
    deletes = index.requests_to("/vectors/delete")
    assert [len(r.body["ids"]) for r in deletes] == [1000, 1000, 150]
    assert index.ids(f"tenant-{schema}") == set()
    # the delete went to the 1536-d index as well: a chunk's vector may live there
    assert [len(r.body["ids"]) for r in _by_dimension(use_pinecone)[1536].requests_to("/vectors/delete")] == [
        1000,
        1000,
        150,
    ]


def test_pinecone_1536_upserts_stay_under_the_request_size_cap(use_pinecone: PineconeStandIn, in_alpha: Any) -> None:
    store = get_store()
    index = _by_dimension(use_pinecone)[1536]
    rng = np.random.default_rng(10)
    corpus = make_corpus("wide", unit_vectors(rng, 130, 1536), model="openai-3-small")
    store.upsert(schema=connection.schema_name, model="openai-3-small", records=corpus.records())
    upserts = index.requests_to("/vectors/upsert")
    assert len(upserts) >= 2 and all(len(r.raw) < 2 * 1024 * 1024 for r in upserts)
    assert sum(len(r.body["vectors"]) for r in upserts) == 130
    assert not _by_dimension(use_pinecone)[384].requests_to("/vectors/upsert")


def test_pinecone_resolves_index_names_through_the_control_plane(
    use_pinecone: PineconeStandIn, in_alpha: Any, settings: Any
) -> None:
    settings.PINECONE_INDEX_HOST = ""
    _store.cache_clear()
    store = get_store()
    rng = np.random.default_rng(11)
    corpus = make_corpus("by name", unit_vectors(rng, 4, 384))
    store.upsert(schema=connection.schema_name, model="local-minilm", records=corpus.records())
    assert query(store, corpus.vectors[1], [corpus], top_k=1)[0].chunk_id == corpus.ids[1]
    described = [r.path for r in use_pinecone.requests if r.path.startswith("/indexes/")]
    assert described == ["/indexes/syntera-384"]  # once: the SDK caches the host
    # an index that does not exist is skipped by deletes, and named by upserts
    settings.PINECONE_INDEX = "missing"
    _store.cache_clear()
    store = get_store()
    store.delete(schema=connection.schema_name, chunk_ids=corpus.ids)
    from pinecone import NotFoundError

    with pytest.raises(NotFoundError):
        store.upsert(schema=connection.schema_name, model="local-minilm", records=corpus.records())


def test_pinecone_single_host_serves_one_dimension(use_pinecone: PineconeStandIn, in_alpha: Any, settings: Any) -> None:
    settings.PINECONE_INDEX_HOST = _by_dimension(use_pinecone)[384].url
    _store.cache_clear()
    store = get_store()
    rng = np.random.default_rng(12)
    corpus = make_corpus("single host", unit_vectors(rng, 3, 384))
    store.upsert(schema=connection.schema_name, model="local-minilm", records=corpus.records())
    store.delete(schema=connection.schema_name, chunk_ids=corpus.ids[:1])
    assert len(_by_dimension(use_pinecone)[384].requests_to("/vectors/delete")) == 1  # one host, one delete
    wide = make_corpus("wrong width", unit_vectors(rng, 1, 1536), model="openai-3-small")
    from pinecone import PineconeError

    with pytest.raises(PineconeError, match="dimension"):
        store.upsert(schema=connection.schema_name, model="openai-3-small", records=wide.records())


def test_pinecone_retries_transient_errors_and_checks_configuration(
    use_pinecone: PineconeStandIn, in_alpha: Any, settings: Any
) -> None:
    store = get_store()
    index = _by_dimension(use_pinecone)[384]
    rng = np.random.default_rng(13)
    corpus = make_corpus("retry", unit_vectors(rng, 3, 384))
    index.fail_next(503, {"error": {"code": "UNAVAILABLE", "message": "try again"}}, path="/vectors/upsert")
    store.upsert(schema=connection.schema_name, model="local-minilm", records=corpus.records())
    assert len(index.requests_to("/vectors/upsert")) == 2
    assert len(index.ids(f"tenant-{connection.schema_name}")) == 3
    with pytest.raises(ValueError, match="384-d model"):
        store.upsert(
            schema=connection.schema_name,
            model="local-minilm",
            records=[VectorRecord(chunk_id=1, knowledge_base_id=1, source_id=1, vector=[0.1] * 10)],
        )
    settings.PINECONE_API_KEY = "wrong"
    _store.cache_clear()
    from pinecone import UnauthorizedError

    with pytest.raises(UnauthorizedError):
        query(get_store(), corpus.vectors[0], [corpus], top_k=1)
    settings.PINECONE_API_KEY = ""
    _store.cache_clear()
    with pytest.raises(ImproperlyConfigured, match="PINECONE_API_KEY"):
        get_store()
    assert parse_index_hosts("") == {}
    assert parse_index_hosts("https://one.example") == {None: "https://one.example"}
    assert parse_index_hosts("384=http://a.localhost, 1536=http://b.localhost") == {
        384: "http://a.localhost",
        1536: "http://b.localhost",
    }
    with pytest.raises(ImproperlyConfigured):
        parse_index_hosts("x=http://a.localhost")


# --- end to end: ingestion and search with the Pinecone store ----------------------------


def actor_for(info: Any) -> Any:
    from apps.accounts.models import Role, User
    from apps.accounts.services import Actor

    tenant = get_tenant_model().objects.get(schema_name=info.schema)
    user = User.objects.get(email=info.owner_email)
    return Actor(tenant=tenant, role=Role.OWNER, user=user, label=user.email)


@contextlib.contextmanager
def tenant_of(info: Any) -> Iterator[Any]:
    with tenant_context(get_tenant_model().objects.get(schema_name=info.schema)):
        yield


ARTICLE = (
    "# Shipping\n\nOrders ship within 2 business days. Express delivery costs 9 EUR.\n\n"
    "# Returns\n\nYou may return unused items within 30 days for a full refund."
)


def test_ingestion_search_and_deletion_with_pinecone(
    use_pinecone: PineconeStandIn, alpha: Any, beta: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from apps.knowledge import search, services

    index = _by_dimension(use_pinecone)[384]
    namespace = namespace_for(alpha.schema)
    actor = actor_for(alpha)
    with tenant_of(alpha):
        kb = services.knowledge_base_create(editor=actor, name="Help centre")
        with django_capture_on_commit_callbacks(execute=True):
            source = services.source_add_text(editor=actor, kb=kb, title="Policies", text=ARTICLE)
    with tenant_of(alpha):
        source.refresh_from_db()
        assert (source.status, source.progress, source.chunk_count) == ("ready", 100, 2)
        chunk_ids = set(Chunk.objects.filter(source=source).values_list("pk", flat=True))
        assert index.ids(namespace) == {str(i) for i in chunk_ids}
        assert not Chunk.objects.filter(source=source, embedding__isnull=False).exists()  # not in pgvector
        hits = search.search(
            query="how long do I have to send something back?", knowledge_base_ids=[kb.pk], mode="dense"
        )
        assert "30 days" in hits[0].text and hits[0].dense_score is not None and hits[0].dense_score > 0.3
        hybrid = search.search(query="express delivery price", knowledge_base_ids=[kb.pk])
        assert "9 EUR" in hybrid[0].text
        assert index.requests_to("/query")[-1].body["namespace"] == namespace

        # editing re-ingests: the new chunks replace the old vectors, no orphans left
        faq_kb = services.knowledge_base_create(editor=actor, name="FAQ")
        with django_capture_on_commit_callbacks(execute=True):
            faq = services.source_add_faq(
                editor=actor, kb=faq_kb, entries=[{"question": "Gift cards?", "answer": "Yes, from 10 EUR."}]
            )
    with tenant_of(alpha):
        first = set(Chunk.objects.filter(source=faq).values_list("pk", flat=True))
        with django_capture_on_commit_callbacks(execute=True):
            services.faq_replace_entries(
                editor=actor, source=faq, entries=[{"question": "Gift cards?", "answer": "No, not any more."}]
            )
    with tenant_of(alpha):
        second = set(Chunk.objects.filter(source=faq).values_list("pk", flat=True))
        assert first.isdisjoint(second)
        assert index.ids(namespace) == {str(i) for i in chunk_ids | second}

        # deleting the source removes its vectors from Pinecone once the delete commits
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            services.source_delete(editor=actor, source=source)
        assert callbacks
    with tenant_of(alpha):
        assert index.ids(namespace) == {str(i) for i in second}
        assert search.search(query="refund", knowledge_base_ids=[kb.pk]) == []
        with django_capture_on_commit_callbacks(execute=True):
            services.knowledge_base_delete(editor=actor, kb=faq_kb)
    assert index.ids(namespace) == set()


def test_pinecone_search_isolation_canaries(
    use_pinecone: PineconeStandIn, alpha: Any, beta: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Each tenant ingests a canary through the Pinecone store; no search of one tenant
    returns the other's, whatever knowledge-base ids it names."""
    from apps.knowledge import search, services

    kbs = {}
    for info in (alpha, beta):
        actor = actor_for(info)
        with tenant_of(info):
            kb = services.knowledge_base_create(editor=actor, name=f"canary-{info.slug} kb")
            with django_capture_on_commit_callbacks(execute=True):
                services.source_add_text(
                    editor=actor, kb=kb, text=f"The secret canary word of this workspace is canary-{info.slug}."
                )
            kbs[info.slug] = kb.pk
    for info, other in ((alpha, beta), (beta, alpha)):
        with tenant_of(info):
            for mode in ("dense", "hybrid"):
                hits = search.search(
                    query=f"secret canary word canary-{other.slug}", knowledge_base_ids=list(kbs.values()), mode=mode
                )
                assert hits and all(f"canary-{other.slug}" not in h.text for h in hits)
                assert any(f"canary-{info.slug}" in h.text for h in hits)
