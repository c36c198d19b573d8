"""Diversifying the fused list: maximal marginal relevance over the hits' own vectors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import embeddings
from ..models import embedding_input
from ..stores import StoredVectors, get_store

if TYPE_CHECKING:
    from . import SearchHit


def mmr(hits: list[SearchHit], similarity: np.ndarray, top_k: int, lam: float) -> list[SearchHit]:
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


def similarities(hits: list[SearchHit], model_of: dict[int, str], schema: str) -> np.ndarray:
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
