"""Spelling correction of a question against the knowledge base's own words.

Visitors type "statistcs", "cuttoff", "finaly". The full-text leg then matches nothing for that
word, and the agent takes it for a word its knowledge never mentions (a reason to decline). A
word is corrected only when all of these hold:
- no chunk of the knowledge bases has it (compared as a full-text lexeme, `unknown_words`);
- it is not an English word the embedding model knows as a whole word (its word-piece
  vocabulary);
- a word of the knowledge bases is one slip from it (insert, delete, substitute, swap two
  neighbours), starting with the same letter; the most frequent wins. "placard" and
  "meditate" (real words, though not whole words of that vocabulary) are two slips from
  "placed" and "medicare" and stay: a question the knowledge does not answer must not be
  turned into one it seems to.
No trigram index is needed (the embedded PostgreSQL has no `pg_trgm`): the knowledge bases'
words come from `ts_stat` once per version of their chunks and are kept per tenant schema.
See docs/subsystems/knowledge.md.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from django.db import connection

from .fulltext import MAX_QUERY_TERMS, unknown_words

MIN_LENGTH = 4  # shorter words are too ambiguous to correct ("tha", "teh" aside)
VOCABULARIES_KEPT = 64  # (schema, knowledge bases) vocabularies kept per process

_WORD = re.compile(r"[a-z]+")
_VERSION_SQL = "SELECT count(*), coalesce(max(id), 0) FROM knowledge_chunk WHERE knowledge_base_id = ANY(%s)"


@dataclass(frozen=True)
class Spelled:
    text: str  # the question with its misspellings corrected (as written otherwise)
    corrections: dict[str, str] = field(default_factory=dict)  # word as typed → the knowledge's word


def max_edits(word: str) -> int:
    # Two slips turned the off-topic "How do I meditate?" into "How do I medicare?" (answered).
    return 1


def distance(a: str, b: str, limit: int) -> int:
    """Edit distance with adjacent swaps (optimal string alignment); `limit + 1` once it is
    certain to exceed `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cost = min(cost, before[j - 2] + 1)
            current.append(cost)
        if min(current) > limit:
            return limit + 1
        before, previous = previous, current
    return previous[-1]


class _Vocabularies:
    """word → number of chunks holding it, per (schema, knowledge bases), rebuilt when their
    chunks change (count or newest id)."""

    def __init__(self) -> None:
        self.items: OrderedDict[tuple[str, tuple[int, ...]], tuple[tuple[int, int], dict[str, int]]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, kb_ids: Sequence[int]) -> dict[str, int]:
        ids = tuple(sorted({int(i) for i in kb_ids}))
        key = (str(connection.schema_name), ids)  # type: ignore[attr-defined]
        with connection.cursor() as cursor:
            cursor.execute(_VERSION_SQL, [list(ids)])
            count, newest = cursor.fetchone()
        version = (int(count), int(newest))
        with self.lock:
            kept = self.items.get(key)
            if kept is not None and kept[0] == version:
                self.items.move_to_end(key)
                return kept[1]
        # The ids are integers: ts_stat takes its query as text.
        listed = ",".join(str(i) for i in ids) or "NULL"
        inner = (
            f"SELECT to_tsvector('simple'::regconfig, text) FROM knowledge_chunk WHERE knowledge_base_id IN ({listed})"  # noqa: S608
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT word, ndoc FROM ts_stat(%s) WHERE word ~ '^[a-z]+$'", [inner])
            vocabulary = {word: int(ndoc) for word, ndoc in cursor.fetchall()}
        with self.lock:
            self.items[key] = (version, vocabulary)
            while len(self.items) > VOCABULARIES_KEPT:
                self.items.popitem(last=False)
        return vocabulary


_VOCABULARIES = _Vocabularies()


@lru_cache(maxsize=1)
def _english() -> frozenset[str]:
    """The whole words of the embedding model's word-piece vocabulary (empty without it)."""
    try:
        from ..embeddings import tokenizer

        return frozenset(w for w in tokenizer().get_vocab() if w.isalpha())
    except Exception:  # the model package is missing: nothing counts as English, none is corrected
        return frozenset()


def closest(word: str, vocabulary: dict[str, int]) -> str | None:
    """The knowledge's word nearest to `word` (see the module docstring), or None."""
    limit = max_edits(word)
    best: tuple[int, int, str] | None = None
    for other, count in vocabulary.items():
        if other[0] != word[0] or abs(len(other) - len(word)) > limit or other == word:
            continue
        d = distance(word, other, limit)
        if d <= limit and (best is None or (d, -count, other) < best):
            best = (d, -count, other)
    return None if best is None else best[2]


def correct_spelling(query: str, knowledge_base_ids: Sequence[int]) -> Spelled:
    """`query` with the words the knowledge bases lack, that are no English word and that are
    one or two typing slips from one of the knowledge bases' words, replaced by that word."""
    english = _english()
    asked = list(dict.fromkeys(w for w in _WORD.findall((query or "").lower()) if len(w) >= MIN_LENGTH))
    suspects = [w for w in asked if english and w not in english][:MAX_QUERY_TERMS]
    if not suspects or not knowledge_base_ids:
        return Spelled(query)
    absent = unknown_words(suspects, knowledge_base_ids)
    if not absent:
        return Spelled(query)
    vocabulary = _VOCABULARIES.get(knowledge_base_ids)
    corrections = {w: fix for w in suspects if w in absent and (fix := closest(w, vocabulary))}
    if not corrections:
        return Spelled(query)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, corrections)) + r")\b", re.IGNORECASE)
    return Spelled(pattern.sub(lambda m: corrections[m.group(0).lower()], query), corrections)
