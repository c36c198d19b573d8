"""OpenAI embeddings through the official `openai` SDK against the local stand-in in
`tests/standins/openai_server.py`, which stands in for OpenAI's `POST /v1/embeddings`
(batches, base64 or float encoding, usage, 429 with retry-after). Then knowledge bases on
`openai-3-small` end to end, and the re-embed that follows a change of embedding model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from apps.knowledge import embeddings, search, services
from apps.knowledge.models import Chunk, Source, embedding_input
from apps.knowledge.stores import _store
from apps.knowledge.stores.pinecone import namespace_for
from syntera.errors import ApplicationError
from tests.netlocal import local_site
from tests.standins.openai_server import OpenAIStandIn, embed_text

from .test_stores import actor_for, pinecone_standin, tenant_of, use_pinecone  # noqa: F401 (fixtures)

OPENAI_KEY = "sk-test-standin"


@pytest.fixture(scope="session")
def openai_standin() -> Iterator[OpenAIStandIn]:
    standin = OpenAIStandIn(api_key=OPENAI_KEY).start()
    yield standin
    standin.stop()


@pytest.fixture
def openai(settings: Any, openai_standin: OpenAIStandIn) -> OpenAIStandIn:
    openai_standin.reset()
    settings.OPENAI_API_KEY = OPENAI_KEY
    settings.OPENAI_BASE_URL = openai_standin.base_url
    return openai_standin


def test_openai_embeddings_are_normalised_and_in_input_order(openai: OpenAIStandIn) -> None:
    provider = embeddings.get_provider("openai-3-small")
    assert provider.dimensions == 1536
    texts = [f"passage number {i} about topic {i % 7}" for i in range(300)]
    vectors = provider.embed(texts)
    assert len(vectors) == 300 and all(len(v) == 1536 for v in vectors)
    assert openai.batches == [256, 44]  # the provider's batch size, each one request
    for text, vector in zip(texts, vectors, strict=True):
        array = np.asarray(vector)
        assert np.linalg.norm(array) == pytest.approx(1.0, abs=1e-9)
        assert float(array @ embed_text(text)) == pytest.approx(1.0, abs=1e-6)  # this text's vector, here
    request = openai.requests_to("/v1/embeddings")[0]
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert request.body["model"] == "text-embedding-3-small"
    assert request.body["input"] == texts[:256]
    assert request.body["encoding_format"] == "base64"  # the SDK's wire default, decoded by it
    assert provider.embed([]) == []


def test_openai_rate_limit_is_retried(openai: OpenAIStandIn) -> None:
    openai.rate_limit(times=2)
    vectors = embeddings.get_provider("openai-3-small").embed(["hello there", "general kenobi"])
    assert len(vectors) == 2
    attempts = openai.requests_to("/v1/embeddings")
    assert len(attempts) == 3
    assert [a.headers.get("x-stainless-retry-count") for a in attempts] == ["0", "1", "2"]
    assert openai.batches == [2]


def test_openai_configuration_and_errors(openai: OpenAIStandIn, settings: Any) -> None:
    import openai as sdk

    settings.OPENAI_API_KEY = "sk-wrong"
    with pytest.raises(sdk.AuthenticationError):
        embeddings.get_provider("openai-3-small").embed(["x"])
    settings.OPENAI_API_KEY = ""
    with pytest.raises(ApplicationError) as error:
        embeddings.get_provider("openai-3-small")
    assert error.value.code == "provider_not_configured"


def test_openai_embeddings_ignore_proxies_from_the_environment(
    openai: OpenAIStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embeddings client is the guarded one: it connects itself, to the operator's endpoint,
    and never hands the request (and the key) to a proxy named in the environment."""
    with local_site("127.0.0.1") as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.url())
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        assert len(embeddings.get_provider("openai-3-small").embed(["hello"])) == 1
    assert proxy.seen == [] and openai.batches == [1]


def _openai_kb(alpha: Any, capture: Any, *, text: str, model: str = "openai-3-small") -> tuple[Any, Any, Source]:
    actor = actor_for(alpha)
    with tenant_of(alpha):
        kb = services.knowledge_base_create(editor=actor, name="Cloud embedded", embedding_model=model)
        with capture(execute=True):
            source = services.source_add_text(editor=actor, kb=kb, title="Policies", text=text)
    return actor, kb, source


ARTICLE = (
    "# Shipping\n\nOrders ship within 2 business days. Express delivery costs 9 EUR.\n\n"
    "# Returns\n\nYou may return unused items within 30 days for a full refund."
)


def test_openai_knowledge_base_ingests_and_searches(
    openai: OpenAIStandIn, alpha: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.KNOWLEDGE_VECTOR_STORE = "pgvector"
    _store.cache_clear()
    _, kb, source = _openai_kb(alpha, django_capture_on_commit_callbacks, text=ARTICLE)
    with tenant_of(alpha):
        source.refresh_from_db()
        assert (source.status, source.chunk_count) == ("ready", 2)
        chunks = list(Chunk.objects.filter(source=source))
        assert all(c.embedding is None and c.embedding_1536 is not None for c in chunks)
        for chunk in chunks:  # the stand-in's vector for title + text, in the 1536-d column
            assert chunk.context == source.title
            embedded = embed_text(embedding_input(chunk.context, chunk.text))
            assert float(np.asarray(chunk.embedding_1536) @ embedded) == pytest.approx(1.0, abs=1e-5)
        query = "return unused items refund"
        hits = search.search(query=query, knowledge_base_ids=[kb.pk], mode="dense")
        assert "30 days" in hits[0].text
        expected = float(embed_text(query) @ embed_text(embedding_input(hits[0].context, hits[0].text)))
        assert hits[0].dense_score == pytest.approx(expected, abs=1e-4)
        assert "9 EUR" in search.search(query="express delivery cost", knowledge_base_ids=[kb.pk])[0].text
    # the query was embedded by the same provider (one request per search)
    assert openai.requests_to("/v1/embeddings")[-1].body["input"] == ["express delivery cost"]


@pytest.mark.parametrize("store_name", ["pgvector", "pinecone"])
def test_changing_the_embedding_model_reembeds_every_source(
    store_name: str,
    openai: OpenAIStandIn,
    alpha: Any,
    settings: Any,
    request: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    pinecone = request.getfixturevalue("use_pinecone") if store_name == "pinecone" else None
    if pinecone is None:
        settings.KNOWLEDGE_VECTOR_STORE = "pgvector"
        _store.cache_clear()
    texts = {
        "Shipping": "# Shipping\n\nOrders ship within 2 business days.",
        "Returns": "# Returns\n\nYou may return unused items within 30 days for a full refund.",
    }
    actor = actor_for(alpha)
    with tenant_of(alpha):
        kb = services.knowledge_base_create(editor=actor, name="Switching", embedding_model="local-minilm")
        with django_capture_on_commit_callbacks(execute=True):
            sources = [services.source_add_text(editor=actor, kb=kb, title=t, text=x) for t, x in texts.items()]
    with tenant_of(alpha):
        before = {s.pk: Source.objects.get(pk=s.pk) for s in sources}
        old_chunks = set(Chunk.objects.filter(knowledge_base=kb).values_list("pk", flat=True))
        assert all(s.status == "ready" for s in before.values())
        if pinecone is None:
            assert not Chunk.objects.filter(knowledge_base=kb, embedding__isnull=True).exists()
        assert openai.requests_to("/v1/embeddings") == []

        with django_capture_on_commit_callbacks(execute=True):
            services.knowledge_base_update(editor=actor, kb=kb, embedding_model="openai-3-small")
    with tenant_of(alpha):
        for source in Source.objects.filter(knowledge_base=kb):
            assert source.status == "ready" and source.progress == 100
            assert source.run == before[source.pk].run + 1
        chunks = list(Chunk.objects.filter(knowledge_base=kb))
        assert len(chunks) == len(old_chunks) and old_chunks.isdisjoint(c.pk for c in chunks)
        embedded = [text for r in openai.requests_to("/v1/embeddings") for text in r.body["input"]]
        assert sorted(embedded) == sorted(c.text for c in chunks)  # every chunk, re-embedded
        if pinecone is None:
            assert all(c.embedding is None and c.embedding_1536 is not None for c in chunks)
        else:
            namespace = namespace_for(alpha.schema)
            assert pinecone.indexes["syntera-1536"].ids(namespace) == {str(c.pk) for c in chunks}
            assert pinecone.indexes["syntera-384"].ids(namespace) == set()  # old vectors deleted
        hits = search.search(query="return unused items refund", knowledge_base_ids=[kb.pk], mode="dense")
        assert "30 days" in hits[0].text
        assert hits[0].dense_score == pytest.approx(
            float(embed_text("return unused items refund") @ embed_text(hits[0].text)), abs=1e-4
        )
