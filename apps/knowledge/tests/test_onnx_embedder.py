"""The int8 ONNX MiniLM embedder (apps/knowledge/onnx_embedder/) against sentence-transformers.

The model is built from the package's weights once per machine, in the same cache the product
uses (var/models, or KNOWLEDGE_ONNX_CACHE_DIR): the first run of this file pays the build
(about 5 s on 2 cores), later runs load it in a fraction of a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from apps.knowledge import embeddings, onnx_embedder
from apps.knowledge.onnx_embedder import OnnxMiniLM
from apps.knowledge.onnx_embedder import cache as onnx_cache

LONG = " ".join(
    f"Section {i}: the ingestion pipeline fetches, extracts, cleans, chunks and embeds document number {i}."
    for i in range(40)
)  # ~800 tokens: truncated to 256 like sentence-transformers does

TEXTS = [
    "",
    "   ",
    "ok",
    "How do I reset my password?",
    "Olá! Ünïcödé façade — naïve café, crème brûlée and jalapeño.",
    "日本語のテキスト検索エンジンのテストです。",
    "Привет, мир! Это проверка многоязычного текста.",
    "def area(r):\n    return 3.14159 * r ** 2  # circle",
    "Patients with type 2 diabetes who received metformin showed a lower incidence of "
    "cardiovascular events over five years than those treated with sulfonylureas.",
    "Refunds are issued within 14 days to the original payment method; contact support@example.com.",
    LONG,
]
TINY = {"", "   ", "ok"}  # two or three tokens: these run on the fp32 model (SHORT_TOKENS)


@pytest.fixture(scope="module")
def onnx_model() -> OnnxMiniLM:
    return OnnxMiniLM(Path(embeddings.model_dir()))


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    model = embeddings.LocalMiniLM._load()  # sentence-transformers on torch
    return np.asarray(model.encode(TEXTS, normalize_embeddings=True, show_progress_bar=False))


def test_vectors_match_sentence_transformers(onnx_model: OnnxMiniLM, reference: np.ndarray) -> None:
    assert len(onnx_model.tokenizer.encode(LONG).ids) == onnx_embedder.MAX_TOKENS  # the long one is truncated
    vectors = onnx_model.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cosine = np.sum(vectors * reference, axis=1)
    report = {text[:30]: round(float(c), 4) for text, c in zip(TEXTS, cosine, strict=True)}
    assert cosine.mean() >= 0.99, report
    for text, c in zip(TEXTS, cosine, strict=True):
        assert c >= (0.9999 if text in TINY else 0.99), report
    # In input order: each vector is nearest to its own text's reference (the tiny ones aside,
    # which are near-duplicates of each other).
    similarity = vectors @ reference.T
    for i, text in enumerate(TEXTS):
        if text not in TINY:
            assert int(np.argmax(similarity[i])) == i, (text, report)


def test_order_and_batching_do_not_change_vectors(onnx_model: OnnxMiniLM) -> None:
    vectors = onnx_model.embed(TEXTS)
    shuffled = list(reversed(TEXTS)) * 3  # several batches, run side by side on the thread pool
    again = onnx_model.embed(shuffled)
    expected = np.concatenate([vectors[::-1]] * 3)
    # int8 activations are scaled per batch, so batch-mates may nudge a vector, a little
    assert np.min(np.sum(again * expected, axis=1)) >= 0.99
    one = onnx_model.embed([TEXTS[8]])
    assert float(one[0] @ vectors[8]) >= 0.99
    assert onnx_model.embed([]).shape == (0, 384)


def test_provider_uses_onnx_by_default_and_torch_on_request(
    monkeypatch: pytest.MonkeyPatch, reference: np.ndarray
) -> None:
    provider = embeddings.get_provider("local-minilm")
    assert provider.name == "local-minilm" and provider.dimensions == 384
    monkeypatch.delenv("KNOWLEDGE_LOCAL_EMBEDDER", raising=False)
    assert isinstance(provider, embeddings.LocalMiniLM) and provider.backend() == "onnx"
    fast = np.asarray(provider.embed(TEXTS[3:6]))
    assert fast.shape == (3, 384)
    assert np.min(np.sum(fast * reference[3:6], axis=1)) >= 0.99
    assert not np.allclose(fast, reference[3:6], atol=1e-6)  # it is not the torch path

    monkeypatch.setenv("KNOWLEDGE_LOCAL_EMBEDDER", "torch")
    assert provider.backend() == "torch"
    exact = np.asarray(provider.embed(TEXTS[3:6]))
    np.testing.assert_allclose(exact, reference[3:6], atol=1e-5)

    monkeypatch.setenv("KNOWLEDGE_LOCAL_EMBEDDER", "tensorflow")
    with pytest.raises(Exception, match="KNOWLEDGE_LOCAL_EMBEDDER"):
        provider.embed(["x"])


def test_falls_back_to_torch_when_onnx_cannot_load(monkeypatch: pytest.MonkeyPatch, reference: np.ndarray) -> None:
    monkeypatch.delenv("KNOWLEDGE_LOCAL_EMBEDDER", raising=False)
    monkeypatch.setattr(embeddings.LocalMiniLM, "_onnx", None)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ImportError("No module named 'onnxruntime'")

    monkeypatch.setattr(onnx_embedder.OnnxMiniLM, "__init__", broken)
    provider = embeddings.LocalMiniLM()
    assert provider.backend() == "torch"
    np.testing.assert_allclose(np.asarray(provider.embed(TEXTS[3:5])), reference[3:5], atol=1e-5)


@pytest.fixture
def fake_weights(tmp_path: Path) -> Iterator[Path]:
    model_dir = tmp_path / "weights"
    model_dir.mkdir()
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        (model_dir / name).write_text(name)
    yield model_dir


def test_concurrent_first_use_builds_once(tmp_path: Path, fake_weights: Path) -> None:
    """Parallel workers meeting an empty cache: one builds (under the lock, in a temp dir
    renamed into place), the others wait and reuse it; a failed build leaves nothing behind."""
    calls: list[Path] = []

    def slow_builder(model_dir: Path, destination: Path) -> None:
        calls.append(destination)
        time.sleep(0.5)
        destination.write_bytes(b"onnx")

    cache = tmp_path / "cache"
    results: list[Path] = []
    workers = [
        threading.Thread(
            target=lambda: results.append(onnx_cache.ensure_model(fake_weights, cache, builder=slow_builder))
        )
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(calls) == 1 and len(set(results)) == 1 and len(results) == 4
    target = results[0]
    assert target.read_bytes() == b"onnx" and (target.parent / "meta.json").is_file()
    assert target.parent.name == f"minilm-onnx-{onnx_cache.cache_key(fake_weights)}"
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no temp dirs left

    (fake_weights / "model.safetensors").write_text("other weights")  # new weights -> new key
    other = tmp_path / "cache2"

    def failing(model_dir: Path, destination: Path) -> None:
        destination.write_bytes(b"half")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError):
        onnx_cache.ensure_model(fake_weights, other, builder=failing)
    assert not onnx_cache.model_path(fake_weights, other).exists()
    assert [p for p in other.iterdir() if p.is_dir()] == []
