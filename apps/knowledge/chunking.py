"""Structure-aware, token-bounded chunking with overlap.

Sections under the same heading are packed together up to the token budget; a section
longer than the budget is split on sentence boundaries with an overlap of trailing tokens
from the previous piece. FAQ pairs (`keep_whole`) are never split or merged. Each chunk
starts with its heading path, so both the embedding and full-text search see it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .embeddings import count_tokens
from .extractors import Section

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n+")


@dataclass
class ChunkDraft:
    text: str
    heading: str
    page: int | None
    anchor: str
    token_count: int


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text) if s.strip()]


def _split_long(text: str, max_tokens: int, overlap: int) -> list[str]:
    """Split on sentences; a single over-long sentence is split on words."""
    pieces: list[str] = []
    current: list[tuple[str, int]] = []
    size = 0
    units: list[tuple[str, int]] = []
    for sentence in _sentences(text):
        tokens = count_tokens(sentence)
        if tokens <= max_tokens:
            units.append((sentence, tokens))
            continue
        words = sentence.split()
        step = max(1, len(words) * max_tokens // (tokens + 1))
        for start in range(0, len(words), step):
            part = " ".join(words[start : start + step])
            units.append((part, count_tokens(part)))
    for unit, tokens in units:
        if current and size + tokens > max_tokens:
            pieces.append(" ".join(u for u, _ in current))
            # carry the tail of this piece into the next one
            tail: list[tuple[str, int]] = []
            carried = 0
            for previous in reversed(current):
                if carried + previous[1] > overlap:
                    break
                tail.insert(0, previous)
                carried += previous[1]
            current, size = tail, carried
        current.append((unit, tokens))
        size += tokens
    if current:
        pieces.append(" ".join(u for u, _ in current))
    return pieces


def chunk_sections(sections: list[Section], *, max_tokens: int = 200, overlap: int = 40) -> list[ChunkDraft]:
    drafts: list[ChunkDraft] = []
    buffer: list[str] = []
    buffer_tokens = 0
    buffer_meta: tuple[str, int | None, str] = ("", None, "")

    def emit(text: str, heading: str, page: int | None, anchor: str, prefix: bool = True) -> None:
        body = f"{heading}\n{text}" if prefix and heading and not text.startswith(heading) else text
        drafts.append(ChunkDraft(text=body, heading=heading, page=page, anchor=anchor, token_count=count_tokens(body)))

    def flush() -> None:
        nonlocal buffer, buffer_tokens
        if buffer:
            emit("\n".join(buffer), *buffer_meta)
        buffer, buffer_tokens = [], 0

    for section in sections:
        text = section.text.strip()
        if not text:
            continue
        heading_tokens = count_tokens(section.heading) if section.heading else 0
        budget = max(32, max_tokens - heading_tokens)
        if section.keep_whole:
            flush()
            emit(text, section.heading, section.page, section.anchor, prefix=False)
            continue
        tokens = count_tokens(text)
        meta = (section.heading, section.page, section.anchor)
        if buffer and (meta[0] != buffer_meta[0] or meta[1] != buffer_meta[1] or buffer_tokens + tokens > budget):
            flush()
        if tokens > budget:
            for piece in _split_long(text, budget, overlap):
                emit(piece, *meta)
            continue
        if not buffer:
            buffer_meta = meta
        buffer.append(text)
        buffer_tokens += tokens
    flush()
    return drafts
