"""Reference material in and out of a turn: the context chunks given to the model (instruction-like
sentences removed), the citations read back from its `[n]` markers, the query words no
knowledge mentions, and the reasons an answer counts as ungrounded.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from apps.knowledge.search import unknown_words

from .. import guardrails
from ..followup import terms, words
from ..providers import ContextChunk
from .turns import Citation

MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


BELOW_THRESHOLD = "retrieval below the agent's threshold"
UNCITED = "the answer cited no reference material"


def _parse_citations(text: str, context: list[ContextChunk]) -> tuple[str, list[Citation]]:
    """Citations for the valid `[n]` markers; invalid markers are removed from the text."""
    by_index = {c.index: c for c in context}
    cited: dict[int, Citation] = {}

    def replace(match: re.Match[str]) -> str:
        valid = []
        for part in match.group(1).split(","):
            n = int(part)
            chunk = by_index.get(n)
            if chunk is None:
                continue
            valid.append(n)
            cited.setdefault(n, Citation(n, chunk.source_id, chunk.title, chunk.url, chunk.chunk_id))
        return "".join(f"[{n}]" for n in valid)

    cleaned = MARKER.sub(replace, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    return cleaned.strip(), list(cited.values())


def unknown_query_words(query: str, knowledge_base_ids: list[int]) -> tuple[str, ...]:
    """The content words of `query` that nothing in these knowledge bases mentions, in order.
    A word right after "how" frames the question ("how long", "how soon", "how expensive"): a
    page answers it with a figure, not with that word, so it is never reported."""
    framing = {word for before, word in pairwise(words(query)) if before == "how"}
    asked = list(dict.fromkeys(word for _, word in terms(query) if word not in framing))
    absent = unknown_words(asked, knowledge_base_ids)
    return tuple(w for w in asked if w in absent)


def _context_from_hits(hits: list[Any]) -> tuple[list[ContextChunk], int]:
    """Reference chunks for the prompt, with instruction-like sentences removed."""
    chunks: list[ContextChunk] = []
    sanitized = 0
    for hit in hits:
        text = hit.text
        if guardrails.looks_like_injection(text):
            text = guardrails.strip_injections(text)
            sanitized += 1
        if not text.strip():
            continue
        chunks.append(
            ContextChunk(
                index=len(chunks) + 1,
                chunk_id=hit.chunk_id,
                text=text,
                score=hit.score,
                similarity=hit.dense_score,
                source_id=int(hit.source.get("id") or 0),
                title=str(hit.source.get("title") or ""),
                url=str(hit.source.get("url") or ""),
                heading=hit.heading,
            )
        )
    return chunks, sanitized
