"""How well each quotable sentence supports the question, whether to answer at all, and which
sentences to quote (the offline responder; the method is in __init__.py's docstring).
Weights were fitted on doc2dial; thresholds are chosen on the tune halves of doc2dial and
support-dev together (tests/bench/test_agent_eval.py)."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from ...smalltalk import classify
from ...vocabulary import GENERIC, terms, weight
from ...vocabulary import words as _words
from .. import ContextChunk
from .sentences import YES_NO, answered_questions, quotable, split_sentences

SUPPORT_THRESHOLD = 0.70  # answerability needed to answer (chosen on both sets' tune halves)
DENSE_WEIGHT = 0.40
LEXICAL_WEIGHT = 0.30
CHUNK_WEIGHT = 0.30
COVERAGE_WEIGHT = 0.18  # answerability: bonus for the share of question words the text covers
MISSING_PENALTY = 0.10  # answerability: penalty per specific question word the text lacks
UNKNOWN_PENALTY = 0.20  # ... instead, when the whole knowledge base lacks it (request.unknown_words)
COMMON_RANK = 12000  # words up to this rank in the MiniLM vocabulary count as common English
HEADING_WEIGHT = 0.5  # a query word found only in the sentence's section heading counts half
MAX_SENTENCES = 3
PER_CHUNK = 2  # sentences quoted from one chunk at most
MAX_MARKERS = 3  # markers after one sentence (the same sentence found in several sources)
SUPPORT_MARGIN = 0.15  # a further sentence must score within this of the best one
EMBEDDED_PER_CHUNK = 3  # sentences per chunk scored by embedding (the lexically best)
PREFIX_MATCH = 5  # "eligible" matches "eligibility": a shared prefix of this many letters
FOCUS = True  # score by what the question asks as well as by all of it (`asked_part`)
SYNONYM_SIMILARITY = 0.62  # a missing word this close (cosine) to a word of the best sentences is said there
SYNONYM_SENTENCES = 3  # ... of the best this many sentences

Embedder = Callable[[Sequence[str]], list[list[float]]]


@dataclass(frozen=True)
class Candidate:
    text: str
    chunk: ContextChunk
    position: int
    lexical: float
    dense: float | None = None
    support: float = 0.0
    also: tuple[ContextChunk, ...] = ()  # chunks of other sources holding the same sentence
    asked: str = ""  # the page's own question that this sentence answers, if any
    lead: str = ""  # the page's bare "Yes." / "No." between that question and this sentence

    @property
    def quote(self) -> str:
        """What the visitor is given: the sentence, after the page's "Yes." or "No."."""
        return f"{self.lead} {self.text}" if self.lead else self.text

    @property
    def chunks(self) -> tuple[ContextChunk, ...]:
        return (self.chunk, *self.also)


@dataclass(frozen=True)
class Analysis:
    """Why the responder answers what it answers (used by the tests and the benchmark)."""

    query_terms: tuple[str, ...]
    coverage: float  # weighted share of the query's content words found in the reference text
    missing: tuple[str, ...]  # specific query words the reference text lacks (see `_specific`)
    candidates: tuple[Candidate, ...]  # scored, best first
    unknown: tuple[str, ...] = ()  # those of `missing` that the whole knowledge base lacks

    @property
    def best_support(self) -> float:
        return self.candidates[0].support if self.candidates else 0.0

    @property
    def answerability(self) -> float:
        """Best support, plus a little for covering the question's words, minus a penalty for
        each specific question word the reference text lacks (a larger one when the whole
        knowledge base lacks it): compared with the threshold."""
        if not self.candidates:
            return 0.0
        penalty = MISSING_PENALTY * (len(self.missing) - len(self.unknown)) + UNKNOWN_PENALTY * len(self.unknown)
        return self.best_support + COVERAGE_WEIGHT * self.coverage - penalty


def _query_weights(query: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for stemmed, word in terms(query):
        weights[stemmed] = max(weights.get(stemmed, 0.0), weight(word))
    return weights


def _matches(term: str, vocabulary: set[str]) -> bool:
    if term in vocabulary:
        return True
    if len(term) < PREFIX_MATCH:
        return False
    prefix = term[:PREFIX_MATCH]
    return any(v.startswith(prefix) and (v.startswith(term) or term.startswith(v)) for v in vocabulary)


def _lexical(weights: dict[str, float], own: set[str], heading: set[str]) -> float:
    """Weighted share of the query's words a sentence has (its heading's count HEADING_WEIGHT)."""
    total = sum(weights.values())
    if not total:
        return 0.0
    found = 0.0
    for term, w in weights.items():
        if _matches(term, own):
            found += w
        elif _matches(term, heading):
            found += HEADING_WEIGHT * w
    return found / total


def _stems(text: str) -> set[str]:
    return {s for s, _ in terms(text)}


def _coverage(weights: dict[str, float], vocabulary: set[str]) -> float:
    total = sum(weights.values())
    if not total:
        return 0.0
    return sum(w for t, w in weights.items() if _matches(t, vocabulary)) / total


@lru_cache(maxsize=1)
def _vocabulary_rank() -> Callable[[str], int | None]:
    """Rank of a whole word in the MiniLM word-piece vocabulary (None when it is not one word
    there). That vocabulary lists whole words roughly from the most frequent English words
    down, so a high rank or none means a rare word."""
    try:
        from apps.knowledge.embeddings import tokenizer

        vocabulary = tokenizer().get_vocab()
    except Exception:  # the model package is missing: every word counts as common
        return lambda word: 0
    return lambda word: vocabulary.get(word)


def _near(word: str, others: set[str]) -> bool:
    """Whether `word` is a misspelling of one of `others` (edit distance 1, or 2 for long words)."""
    limit = 2 if len(word) >= 7 else 1
    for other in others:
        if abs(len(other) - len(word)) > limit or other[:1] != word[:1]:
            continue
        previous = list(range(len(other) + 1))
        for i, a in enumerate(word, 1):
            current = [i]
            for j, b in enumerate(other, 1):
                current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
            previous = current
        if previous[-1] <= limit:
            return True
    return False


def _specific(query: str, vocabulary: set[str], words: set[str]) -> tuple[str, ...]:
    """Query words that the reference text lacks and that are specific: not generic, not
    among the common English words (vocabulary rank <= COMMON_RANK), not a misspelling of a
    word of the text. "placard", "acupuncture", "bootcamp" count; "husband", "came" do not."""
    rank = _vocabulary_rank()
    out = []
    for stemmed, word in terms(query):
        if word in GENERIC or _matches(stemmed, vocabulary) or len(word) < 3:
            continue
        position = rank(word)
        if position is not None and position <= COMMON_RANK:
            continue
        if len(word) >= 5 and _near(word, words):
            continue
        out.append(word)
    return tuple(dict.fromkeys(out))


class _VectorCache:
    """Sentence vectors by text (bounded LRU): chunks come back often, embedding is the cost."""

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self.items: OrderedDict[str, list[float]] = OrderedDict()
        self.lock = threading.Lock()

    def embed(self, embed: Embedder, texts: Sequence[str]) -> list[list[float]]:
        with self.lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self.items))
        if missing:
            vectors = embed(missing)
            with self.lock:
                for text, vector in zip(missing, vectors, strict=True):
                    self.items[text] = vector
                while len(self.items) > self.size:
                    self.items.popitem(last=False)
        with self.lock:
            out = []
            for text in texts:
                self.items.move_to_end(text)
                out.append(self.items[text])
            return out


_CACHE = _VectorCache()


def local_embedder() -> Embedder:
    from apps.knowledge import embeddings

    return embeddings.get_provider("local-minilm").embed


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=False)))


_CLAUSE = re.compile(r"[^.?!,;:]+(?:[.?!,;:]+|$)")
_SENTENCE = re.compile(r"[^.?!\n]+(?:[.?!]+|\n|$)")
# A sentence that asks: it ends with "?", or opens (after "so", "and", "but", "ok") with one of
# these, or has a question word in it ("if a cop pulls me over how much is that ticket").
_ASKING_OPENERS = frozenset(
    [
        "can",
        "could",
        "do",
        "does",
        "did",
        "is",
        "are",
        "was",
        "were",
        "will",
        "would",
        "should",
        "shall",
        "may",
        "might",
        "am",
        "has",
        "have",
        "had",
        "how",
        "what",
        "when",
        "where",
        "why",
        "which",
        "who",
        "whom",
        "whose",
        "whether",
    ]
)
_QUESTION_WORDS = frozenset(["how", "what", "when", "where", "why", "which", "whether"])
_LEADING_FILLERS = frozenset(["so", "and", "but", "ok", "okay", "well", "also", "then", "just"])


def _asks(sentence: str, *, marked: bool = False) -> bool:
    """Whether a sentence asks. `marked`: the question has a "?" somewhere, so a question word
    inside a sentence ("...where I can only drive to work.") is not enough there."""
    tokens = _words(sentence)
    while tokens and tokens[0] in _LEADING_FILLERS:
        tokens = tokens[1:]
    if not tokens:
        return False
    if sentence.rstrip().endswith("?") or tokens[0] in _ASKING_OPENERS:
        return True
    return not marked and bool(_QUESTION_WORDS & set(tokens))


def asked_part(query: str) -> str:
    """What the visitor asks, without the context they give first or after ("My dad has
    dementia and can't use a computer. Can I set up his account for him? He signed a note." →
    the middle sentence): the sentences that ask. The whole text when none does, or all do."""
    sentences = [m.group(0).strip() for m in _SENTENCE.finditer(query) if m.group(0).strip()]
    marked = "?" in query
    asked = [s for s in sentences if _asks(s, marked=marked)]
    if not asked or len(asked) == len(sentences):
        return query
    return " ".join(asked)


def core_query(query: str) -> str:
    """The question without its small talk: the clauses that greet, thank or ask how the
    assistant is, and those with no content word beyond the generic ones ("Could you help me
    with that?"), are left out, so they do not dilute its meaning; the rest is kept as
    written. All of it when nothing would be left."""
    kept = []
    for match in _CLAUSE.finditer(query):
        part = match.group(0)
        if classify(part) is not None or not any(word not in GENERIC for _, word in terms(part)):
            continue
        kept.append(part.strip())
    return " ".join(kept).strip(" ,;:") or query


def analyse(
    query: str, context: Sequence[ContextChunk], *, embed: Embedder | None = None, unknown: Sequence[str] = ()
) -> Analysis:
    """Score the quotable sentences of `context` against `query` (see the module docstring);
    `unknown`: the query words the whole knowledge base lacks (`ChatRequest.unknown_words`)."""
    core = core_query(query)
    focused = asked_part(core) if FOCUS else core
    weights = _query_weights(core)
    total = sum(weights.values())
    # Words are counted against the whole question and against what it asks, the better of
    # the two: the visitor's own context ("my grandpa", "in Afghanistan") dilutes the first.
    asked_weights = [weights] if focused == core else [weights, _query_weights(focused)]
    vocabulary: set[str] = set()
    words: set[str] = set()
    per_chunk: list[list[Candidate]] = []
    seen: dict[str, list[ContextChunk]] = {}  # sentence → the chunks holding it, best-ranked first
    for chunk in context:
        vocabulary |= _stems(chunk.text) | _stems(chunk.title) | _stems(chunk.heading)
        words.update(w for w in _words(chunk.text) if len(w) >= 4)
        heading_stems = _stems(chunk.heading) | _stems(chunk.title)
        found: list[Candidate] = []
        sentences = split_sentences(chunk.text)
        answers = answered_questions(sentences, chunk.heading)
        answered = set(answers.values())
        for position, sentence in enumerate(sentences):
            key = sentence.lower()
            if key in seen:
                # Chunks overlap and pages repeat each other: a sentence is offered once, from
                # the best-ranked chunk, and cites every source that holds it.
                if all(c.source_id != chunk.source_id for c in seen[key]):
                    seen[key].append(chunk)
                continue
            if position in answered or not quotable(sentence, chunk.heading):
                continue  # a question the page answers is quoted through its answer
            seen[key] = [chunk]
            asked = sentences[answers[position]] if position in answers else ""
            between = sentences[answers[position] + 1 : position] if asked else []
            lead = between[0] if len(between) == 1 and YES_NO.fullmatch(between[0]) else ""
            own = _stems(sentence) | _stems(asked)  # an answer has its question's words
            lexical = max(_lexical(w, own, heading_stems) for w in asked_weights)
            found.append(Candidate(sentence, chunk, position, lexical, asked=asked, lead=lead))
        per_chunk.append(found)
    coverage = max(_coverage(w, vocabulary) for w in asked_weights)
    # Only what is asked must be in the passages: the visitor's own context ("in Afghanistan",
    # "my grandpa") is theirs, and rarely what a help page says.
    missing = _specific(focused, vocabulary, words) if total else ()

    def cheap(c: Candidate) -> float:
        return LEXICAL_WEIGHT * c.lexical + CHUNK_WEIGHT * (c.chunk.similarity or 0.0)

    # Only the lexically best few sentences of each chunk are embedded (the cost is there).
    shortlist = [
        c for found in per_chunk for c in sorted(found, key=lambda c: (-c.lexical, c.position))[:EMBEDDED_PER_CHUNK]
    ]
    scored: list[Candidate] = []
    if shortlist and embed is not None and total:
        # A sentence that answers one of the page's own questions is as close to the visitor's
        # question as the better of itself and that question.
        texts = list(dict.fromkeys([*(c.text for c in shortlist), *(c.asked for c in shortlist if c.asked)]))
        # A long question is compared as a whole and by what it asks, whichever is closer: the
        # context around a question pulls its vector away from the sentence that answers it.
        questions = [core] if focused == core else [core, focused]
        vectors = _CACHE.embed(embed, [*questions, *texts])
        similarity = {
            text: max(_dot(q, vector) for q in vectors[: len(questions)])
            for text, vector in zip(texts, vectors[len(questions) :], strict=True)
        }
        for candidate in shortlist:
            dense = max(0.0, similarity[candidate.text], similarity.get(candidate.asked, 0.0))
            scored.append(replace(candidate, dense=dense, support=cheap(candidate) + DENSE_WEIGHT * dense))
    elif total:  # no embedder: the cheap score, rescaled to the same range
        scale = 1.0 / (LEXICAL_WEIGHT + CHUNK_WEIGHT)
        scored = [replace(c, support=cheap(c) * scale) for c in shortlist]
    scored = [replace(c, also=tuple(seen[c.text.lower()][1:])) for c in scored]
    scored.sort(key=lambda c: (-c.support, c.chunk.index, c.position))
    if missing and embed is not None and scored:
        missing = _unsaid(missing, scored[:SYNONYM_SENTENCES], embed)
    absent = {w.lower() for w in unknown}
    return Analysis(tuple(sorted(weights)), coverage, missing, tuple(scored), tuple(w for w in missing if w in absent))


def _unsaid(missing: tuple[str, ...], best: Sequence[Candidate], embed: Embedder) -> tuple[str, ...]:
    """Those of `missing` that the best sentences do not say in a word of their own: a word
    whose vector is within SYNONYM_SIMILARITY of one of their content words ("suv" and
    "vehicle", "pediatrician" and "doctor") is said, in the page's words."""
    said = sorted({word for c in best for _, word in terms(c.quote)})
    if not said:
        return missing
    vectors = _CACHE.embed(embed, [*missing, *said])
    theirs = vectors[len(missing) :]
    return tuple(
        word
        for word, vector in zip(missing, vectors, strict=False)
        if max(_dot(vector, other) for other in theirs) < SYNONYM_SIMILARITY
    )


def select(analysis: Analysis, *, max_sentences: int = MAX_SENTENCES) -> list[Candidate]:
    """The sentences to quote: the best-supported sentence, then the best sentence of each
    further source in retrieval order (retrieval ranks sources better than one sentence's
    score does, and a second source confirms), each within SUPPORT_MARGIN of the best; then,
    if room is left, further sentences of the chosen chunks. The best sentence comes first."""
    if not analysis.candidates:
        return []
    floor = analysis.best_support - SUPPORT_MARGIN
    best = analysis.candidates[0]
    chosen = [best]
    by_source: dict[int, Candidate] = {}
    source_rank: dict[int, int] = {}
    for candidate in analysis.candidates:  # best first: the first seen is each source's best
        by_source.setdefault(candidate.chunk.source_id, candidate)
        for chunk in candidate.chunks:
            source_rank[chunk.source_id] = min(source_rank.get(chunk.source_id, chunk.index), chunk.index)
    cited = {c.source_id for c in best.chunks}
    for source in sorted(by_source, key=lambda s: source_rank[s]):
        candidate = by_source[source]
        if len(chosen) >= max_sentences:
            break
        if source not in cited and candidate.support >= floor:
            chosen.append(candidate)
            cited.update(c.source_id for c in candidate.chunks)
    for candidate in analysis.candidates:
        if len(chosen) >= max_sentences:
            break
        same_chunk = sum(1 for c in chosen if c.chunk.index == candidate.chunk.index)
        if candidate not in chosen and candidate.support >= floor and 0 < same_chunk < PER_CHUNK:
            chosen.append(candidate)
    # Reading order: the best sentence's source first; sentences of one chunk as they appear.
    rank: dict[int, int] = {}
    for candidate in chosen:
        rank.setdefault(candidate.chunk.index, len(rank))
    return sorted(chosen, key=lambda c: (rank[c.chunk.index], c.position))
