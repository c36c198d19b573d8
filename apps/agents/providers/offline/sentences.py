"""Sentences of reference chunks: split, cleaned, and whether one may be quoted; and which
sentence of a help page answers which of the page's own questions (the offline responder,
see __init__.py)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .untrusted import addresses_assistant, has_markup

MIN_WORDS = 4
MAX_WORDS = 80

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_REFERENCE_NUMBER = re.compile(r"\s*\[\s*\d+\s*\]")  # the source's own footnote marks, not ours
_BULLET = re.compile(r"^\s*(?:[-*•·–—>]+|\d{1,2}[.)])\s+")
_FAQ_LABEL = re.compile(r"^(?:Q|A):\s+")  # an FAQ chunk's "Q: ..." / "A: ..." lines (apps/knowledge)
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?)])")
_SPACE_AFTER_OPEN = re.compile(r"([(])\s+")


def clean_sentence(text: str) -> str:
    """Stray whitespace removed; bullet marks, FAQ labels and bracketed reference numbers
    dropped (an FAQ's question then equals its chunk heading, so only its answer is quoted)."""
    text = _REFERENCE_NUMBER.sub("", text)
    text = _FAQ_LABEL.sub("", _BULLET.sub("", " ".join(text.split())))
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    return _SPACE_AFTER_OPEN.sub(r"\1", text).strip()


# A line broken inside a sentence (hard-wrapped text): it ends with no stop and the next line
# goes on in lower case ("...arrives the next business day\nwhen you order before 2 pm").
_WRAPPED = re.compile(r"(?<=[A-Za-z0-9,;)])[ \t]*\n[ \t]*(?=[a-z]|\d+(?![.)]\s))")


def split_sentences(text: str) -> list[str]:
    """Sentences of a chunk, cleaned, in order (lines are joined only where a sentence was
    wrapped in the middle)."""
    out = []
    for piece in _SPLIT.split(_WRAPPED.sub(" ", text or "")):
        cleaned = clean_sentence(piece)
        if cleaned:
            out.append(cleaned)
    return out


def quotable(sentence: str, heading: str = "") -> bool:
    """Whether a cleaned sentence may be quoted: a real sentence of reasonable length, not
    a heading or a question (a page's question answers nothing, even when its answer is in
    another chunk), free of markup and of instructions to the assistant."""
    if sentence.rstrip().endswith("?"):
        return False
    count = len(sentence.split())
    if count < MIN_WORDS or count > MAX_WORDS:
        return False
    if heading and sentence.rstrip(" :") == " ".join(heading.split()).rstrip(" :"):
        return False
    if not re.search(r"[.!?:)\"']$", sentence) and count <= 10:
        return False  # a heading or a label, not a statement
    if not re.search(r"[A-Za-z]{2}", sentence):
        return False
    return not (has_markup(sentence) or addresses_assistant(sentence))


YES_NO = re.compile(r"(?:yes|no)[.!]", re.IGNORECASE)


def answered_questions(sentences: Sequence[str], heading: str = "") -> dict[int, int]:
    """Which sentence answers which of the page's own questions ("Can I renew online? You
    can renew…"): the position of each answer → the position of its question. The answer is
    the first quotable sentence after the question, before the next question."""
    out: dict[int, int] = {}
    for position, sentence in enumerate(sentences):
        if not sentence.endswith("?"):
            continue
        for later in range(position + 1, len(sentences)):
            if sentences[later].endswith("?"):
                break
            if quotable(sentences[later], heading):
                out[later] = position
                break
    return out
