"""Embedding throughput of ingestion: the product's local embedder against the raw model.

Texts: the SciFact abstracts (`beir-scifact/corpus.jsonl.gz` under `SYNTERA_DATA_DIR`), each
one section headed by its title, chunked by the product's own chunker
(`apps.knowledge.chunking.chunk_sections`, KNOWLEDGE_CHUNK_TOKENS / KNOWLEDGE_CHUNK_OVERLAP);
`SYNTERA_BENCH_EMBED_CHUNKS` chunks (default 2,000) taken evenly across the whole corpus.
Without the data, synthetic text from the tokenizer's vocabulary, chunked the same way.

- Baseline: sentence-transformers on torch, `SentenceTransformer(<package model>).encode(texts,
  batch_size=64, normalize_embeddings=True)`: the raw model, given all texts of a round at
  once (it sorts them by length itself).
- Product: `embeddings.get_provider("local-minilm").embed(...)` (its ONNX model as
  KNOWLEDGE_ONNX_MODEL says: the packaged one by default, `build` for the one built with torch)
  called with 64 texts at a time
  (`services.EMBED_BATCH`, as `_index_documents` does), Python lists of floats out, so
  tokenisation, batching, inference and conversion are all inside the timing.

Both are warm when timed (model loading, and the product's one-time making of its ONNX model
when the cache is cold, are reported separately). The baseline needs the torch extra
(requirements-torch.txt; `make bench` installs it). The texts are split into rounds, and in each round both
embed the same texts back to back, in alternating order, so a busy machine slows both alike.
Speed-up = baseline seconds / product seconds over all rounds. Agreement: cosine similarity of
the product's vector to the baseline's, per text.

Run: make bench PYTEST_ARGS="-k ingestion_throughput"   (about 3 minutes on 2 cores)
"""

from __future__ import annotations

import gzip
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .helpers import data_dir, record, table

pytestmark = [pytest.mark.timeout(3600)]

SCIFACT = data_dir() / "beir-scifact"
CHUNKS = int(os.environ.get("SYNTERA_BENCH_EMBED_CHUNKS", "2000"))
ROUNDS = 4
TARGET_SPEEDUP = 3.0
TARGET_COSINE = 0.99


def _chunk(documents: list[tuple[str, str]]) -> list[str]:
    from django.conf import settings

    from apps.knowledge.chunking import chunk_sections
    from apps.knowledge.extractors import Section

    texts: list[str] = []
    for title, body in documents:
        drafts = chunk_sections(
            [Section(text=body, heading=title)],
            max_tokens=settings.KNOWLEDGE_CHUNK_TOKENS,
            overlap=settings.KNOWLEDGE_CHUNK_OVERLAP,
        )
        texts.extend(d.text for d in drafts)
    return texts


def _scifact_documents(path: Path) -> list[tuple[str, str]]:
    with gzip.open(path / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [(row.get("title", ""), row.get("text", "")) for row in rows]


def _synthetic_documents(count: int) -> list[tuple[str, str]]:
    from apps.knowledge.embeddings import tokenizer

    words = sorted(w for w in tokenizer().get_vocab() if w.isalpha() and w.isascii() and len(w) > 2)
    rng = random.Random(7)
    documents = []
    for _ in range(count):
        sentences = [
            " ".join(rng.choice(words) for _ in range(rng.randint(6, 24))).capitalize() + "."
            for _ in range(rng.randint(4, 14))
        ]
        documents.append((" ".join(rng.choice(words) for _ in range(5)).title(), " ".join(sentences)))
    return documents


def load_texts() -> tuple[list[str], str, int]:
    """(texts, what they are, how many chunks the whole corpus gave)."""
    if (SCIFACT / "corpus.jsonl.gz").is_file():
        texts, kind = _chunk(_scifact_documents(SCIFACT)), f"BEIR SciFact abstracts ({SCIFACT}), product chunker"
    else:
        texts, kind = _chunk(_synthetic_documents(3000)), "synthetic text from the MiniLM vocabulary, product chunker"
    total = len(texts)
    if total < CHUNKS:
        pytest.skip(f"only {total} chunks from {kind}; need {CHUNKS}")
    step = total / CHUNKS
    return [texts[int(i * step)] for i in range(CHUNKS)], kind, total


def test_ingestion_embedding_throughput(tmp_path: Path) -> None:
    from apps.knowledge import embeddings, onnx_embedder
    from apps.knowledge.onnx_embedder import cache as onnx_cache
    from apps.knowledge.services import EMBED_BATCH

    texts, kind, corpus_chunks = load_texts()
    tokens = [len(embeddings.tokenizer().encode(t).ids) for t in texts]

    started = time.perf_counter()
    import torch
    from sentence_transformers import SentenceTransformer

    baseline_model = SentenceTransformer(embeddings.model_dir(), device="cpu")
    baseline_load = time.perf_counter() - started

    weights = Path(embeddings.model_dir())
    files = onnx_embedder.choose_model(weights)  # the model the product runs (KNOWLEDGE_ONNX_MODEL)
    cached = files.path
    started = time.perf_counter()
    # what a machine's first use pays, once: deriving the packaged model's fast form, or the build
    if files.source == "packaged" and files.short is not None:
        onnx_cache.ensure_derived(files.short, onnx_embedder.packaged.SHA256, tmp_path)
    else:
        onnx_cache.ensure_model(weights, tmp_path)
    cold_build = time.perf_counter() - started
    started = time.perf_counter()
    onnx_embedder.OnnxMiniLM(weights)  # what each worker process pays when the model is made
    warm_load = time.perf_counter() - started

    product = embeddings.get_provider("local-minilm")
    assert isinstance(product, embeddings.LocalMiniLM)
    backend = product.backend()

    def run_baseline(batch: list[str]) -> np.ndarray:
        return np.asarray(
            baseline_model.encode(batch, batch_size=64, normalize_embeddings=True, show_progress_bar=False),
            dtype=np.float32,
        )

    def run_product(batch: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(batch), EMBED_BATCH):
            vectors.extend(product.embed(batch[start : start + EMBED_BATCH]))
        return vectors

    run_baseline(texts[:64])  # warm both
    run_product(texts[:64])

    timings = {"baseline": 0.0, "product": 0.0}
    baseline_vectors: list[np.ndarray] = []
    product_vectors: list[list[float]] = []
    per_round = []
    size = -(-len(texts) // ROUNDS)
    for number in range(ROUNDS):
        batch = texts[number * size : (number + 1) * size]
        order = ("baseline", "product") if number % 2 == 0 else ("product", "baseline")
        seconds = {}
        for which in order:
            began = time.perf_counter()
            if which == "baseline":
                baseline_vectors.append(run_baseline(batch))
            else:
                product_vectors.extend(run_product(batch))
            seconds[which] = time.perf_counter() - began
            timings[which] += seconds[which]
        per_round.append({k: round(len(batch) / v, 1) for k, v in seconds.items()})

    reference = np.concatenate(baseline_vectors)
    ours = np.asarray(product_vectors, dtype=np.float32)
    assert ours.shape == reference.shape == (len(texts), 384)
    cosine = np.sum(ours * reference, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1))
    baseline_rate = len(texts) / timings["baseline"]
    product_rate = len(texts) / timings["product"]
    speedup = product_rate / baseline_rate
    results: dict[str, Any] = {
        "texts": kind,
        "chunks": len(texts),
        "corpus_chunks": corpus_chunks,
        "tokens_per_chunk_mean": round(float(np.mean(tokens)), 1),
        "tokens_per_chunk_max": int(np.max(tokens)),
        "baseline_chunks_per_s": round(baseline_rate, 1),
        "product_chunks_per_s": round(product_rate, 1),
        "speedup": round(speedup, 2),
        "cosine_mean": round(float(cosine.mean()), 5),
        "cosine_min": round(float(cosine.min()), 5),
        "cosine_p1": round(float(np.percentile(cosine, 1)), 5),
        "per_round_chunks_per_s": per_round,
        "product_backend": backend,
        "product_onnx_model": files.source,
        "product_threads": getattr(product._load_onnx(), "threads", None) if backend == "onnx" else None,
        "torch_threads": torch.get_num_threads(),
        "baseline_load_s": round(baseline_load, 2),
        "onnx_model": str(cached),
        "onnx_first_use_build_s": round(cold_build, 2),
        "onnx_load_s": round(warm_load, 2),
    }
    print()
    print(
        table(
            ["embedder", "chunks/s", "seconds"],
            [
                ("baseline: sentence-transformers encode (torch)", round(baseline_rate, 1), timings["baseline"]),
                (
                    f"product: local-minilm ({backend}, {files.source} model), calls of {EMBED_BATCH}",
                    round(product_rate, 1),
                    timings["product"],
                ),
            ],
        )
    )
    print(
        f"[bench] {len(texts)} chunks ({kind}; mean {results['tokens_per_chunk_mean']} tokens): "
        f"speed-up {speedup:.2f}x, cosine mean {results['cosine_mean']} min {results['cosine_min']} "
        f"p1 {results['cosine_p1']}; ONNX model ({files.source}) made in {cold_build:.1f} s on a cold cache, "
        f"loaded in {warm_load:.2f} s from {cached.parent}"
    )
    record("ingestion_throughput", results)
    assert backend == "onnx", "the ONNX path is not in use (see the log for why)"
    assert results["cosine_mean"] >= TARGET_COSINE, results
    assert speedup >= TARGET_SPEEDUP, results
