"""Intent detection: embedding similarity of the message to each intent's examples (local
MiniLM), plus keyword rules, with a confidence. See docs/subsystems/routing.md.

Confidence is the best cosine similarity to an intent's examples; a keyword hit (whole word or
phrase) sets it to at least 0.9. The best intent whose confidence reaches its threshold wins.
Example vectors are cached per process, keyed by the examples' text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .models import Intent

KEYWORD_CONFIDENCE = 0.9


@dataclass(frozen=True)
class Detection:
    intent: str
    confidence: float
    by: str  # "examples" | "keyword"


@lru_cache(maxsize=512)
def _vectors(texts: tuple[str, ...]) -> np.ndarray:
    from apps.knowledge.embeddings import get_provider

    return np.asarray(get_provider("local-minilm").embed(list(texts)), dtype=np.float32)


def _keyword_hit(text: str, keywords: list[str]) -> bool:
    lowered = text.lower()
    return any(k.strip() and re.search(rf"(?<!\w){re.escape(k.strip().lower())}(?!\w)", lowered) for k in keywords)


def detect(text: str, intents: list[Intent] | None = None) -> Detection | None:
    """The intent of `text`, or None when no intent reaches its threshold."""
    text = " ".join((text or "").split())[:2000]
    if not text:
        return None
    intents = list(Intent.objects.all()) if intents is None else intents
    if not intents:
        return None
    query = _vectors((text,))[0]
    best: Detection | None = None
    best_margin = -1.0
    for intent in intents:
        examples = tuple(str(e) for e in intent.examples if str(e).strip())
        confidence = float(np.max(_vectors(examples) @ query)) if examples else 0.0
        by = "examples"
        if _keyword_hit(text, [str(k) for k in intent.keywords]) and confidence < KEYWORD_CONFIDENCE:
            confidence, by = KEYWORD_CONFIDENCE, "keyword"
        margin = confidence - intent.threshold
        if margin >= 0 and margin > best_margin:
            best, best_margin = Detection(intent.name, round(confidence, 4), by), margin
    return best
