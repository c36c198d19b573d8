"""The offline responder: the default provider when no LLM is configured.

It answers only by quoting. Given the retrieved reference chunks (`request.context`) it
splits them into sentences, scores how well each sentence supports the question, and
returns the best few, each followed by its `[n]` citation marker. Nothing is invented: the
only words it writes itself are the fixed templates of `smalltalk.py` (greetings, thanks,
"who are you", and the no-answer reply that offers a person).

How a sentence is scored (all numbers in [0, 1]):
- `lexical`: the share of the question's content words the sentence (or its section
  heading, at half weight) contains; generic words ("help", "need") weigh 0.3.
- `dense`: cosine similarity of the sentence to the question (local MiniLM; only the
  `MAX_EMBEDDED` sentences with the best cheap score are embedded, and vectors are cached).
- `support` = DENSE_WEIGHT·dense + LEXICAL_WEIGHT·lexical + CHUNK_WEIGHT·(chunk similarity).

It abstains (Finish("no_answer"), the no-answer template, no marker) when the best support
is below `support_threshold`, or when the reference material as a whole covers less than
`coverage_threshold` of the question's content words: a question whose specific words
("boat", "passport") appear nowhere in the retrieved text is not answered by it, however
similar the chunks look. Thresholds were tuned on doc2dial (tests/bench/test_agent_eval.py,
figures in docs/benchmarks.md).

Reference text is untrusted. A sentence is never quoted when it addresses the assistant
(`addresses_assistant`: "ignore previous instructions", "reveal your system prompt", "call
the capture_lead tool", role labels such as "SYSTEM:"), carries markup or code, or is a
heading fragment; the rest is cleaned of stray whitespace and of the source's own bracketed
reference numbers (which would read as citation markers). Deterministic: same request, same
answer. See docs/subsystems/agents.md.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..followup import terms, weight
from ..smalltalk import classify, reply
from . import (
    ChatRequest,
    ContextChunk,
    Finish,
    LLMProvider,
    ProviderCredentials,
    ProviderEvent,
    TextDelta,
    Usage,
    register,
)

SUPPORT_THRESHOLD = 0.40
COVERAGE_THRESHOLD = 0.60
DENSE_WEIGHT = 0.55
LEXICAL_WEIGHT = 0.30
CHUNK_WEIGHT = 0.15
HEADING_WEIGHT = 0.5  # a query word found only in the sentence's section heading counts half
MAX_SENTENCES = 3
PER_CHUNK = 2  # sentences quoted from one chunk at most
SUPPORT_MARGIN = 0.15  # a further sentence must score within this of the best one
MAX_EMBEDDED = 16
MIN_WORDS = 4
MAX_WORDS = 80
PREFIX_MATCH = 5  # "eligible" matches "eligibility": a shared prefix of this many letters

Embedder = Callable[[Sequence[str]], list[list[float]]]

# --- untrusted reference text --------------------------------------------------------------

_ASSISTANT = r"(?:ai|a\.i\.|assistant|chat ?bot|bot|model|llm|language model|gpt|claude|agent model)"
_INSTRUCTION_PATTERNS = [
    r"\b(?:ignore|disregard|forget|override|bypass|skip)\b.{0,40}\b(?:instructions?|prompts?|rules|guidelines|directions|directives|messages?|context)\b",
    r"\b(?:system|developer|hidden|secret|initial|original)\s+(?:prompts?|messages?|instructions?)\b",
    r"\b(?:reveal|show|print|repeat|output|leak|display|disclose|share|dump)\b.{0,30}"
    r"\b(?:prompts?|instructions|secrets?|api[ _-]?keys?|passwords?|credentials|tokens?)\b",
    r"^\W*(?:system|assistant|developer|user|ai|human|bot)\s*:",
    r"\b(?:you are now|from now on,? you|act as|pretend (?:to be|you are)|role-?play as"
    r"|jailbreak|dan mode|developer mode)\b",
    r"\b(?:call|invoke|execute|trigger|run)\b.{0,40}\b(?:tools?|functions?)\b",
    r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\s*\(",
    r"\b(?:call|invoke|execute|trigger|use|run)\s+(?:the\s+)?[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b",
    rf"\b(?:as an?|if you are an?|dear|attention|note to( the)?|hey)\s+{_ASSISTANT}\b",
    rf"\b(?:the\s+)?{_ASSISTANT}s?\s+(?:must|should|shall|has to|needs? to|is instructed|is required)\b",
    r"\b(?:tell|inform|say to|respond to|reply to|answer)\s+the\s+(?:user|visitor|human)\b",
    r"\b(?:respond|reply|answer)\s+(?:only\s+)?(?:with|by saying)\b",
    r"\b(?:new|updated|real|actual|hidden|additional)\s+instructions?\b",
    r"\bprompt injection\b|<\|[a-z_]+\|>|\[/?inst\]|###\s*(?:instruction|system)|\bbegin (?:system|prompt)\b",
    r"\bdo not (?:tell|mention|reveal|inform)\b.{0,30}\b(?:user|visitor|customer)\b",
]
_INSTRUCTION = re.compile("|".join(f"(?:{p})" for p in _INSTRUCTION_PATTERNS), re.IGNORECASE)
_MARKUP = re.compile(
    r"<\s*/?\s*[a-z!?][^>]*>|&lt;|&#|javascript:|data:text|\bon[a-z]+\s*=|\{\{|\}\}|\{%|%\}|```|<!--|\$\{",
    re.IGNORECASE,
)
_CODE = re.compile(r"[{};]\s*$|^\s*[{}]|=>|\bfunction\s*\(|\bdef\s+\w+\(|\bimport\s+\w+|\w+\(\)\s*;")


def addresses_assistant(text: str) -> bool:
    """Whether `text` speaks to the AI rather than to a reader: an instruction aimed at the
    model (ignore/reveal/act as/call a tool/respond with), a chat role label, special tokens.
    A heuristic list, kept deliberately broad: a help article rarely talks like this."""
    return bool(_INSTRUCTION.search(text))


def has_markup(text: str) -> bool:
    return bool(_MARKUP.search(text) or _CODE.search(text))


# --- sentences ---------------------------------------------------------------------------

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_REFERENCE_NUMBER = re.compile(r"\s*\[\s*\d+\s*\]")  # the source's own footnote marks, not ours
_BULLET = re.compile(r"^\s*(?:[-*•·–—>]+|\d{1,2}[.)])\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?)])")
_SPACE_AFTER_OPEN = re.compile(r"([(])\s+")


def clean_sentence(text: str) -> str:
    """Stray whitespace removed, bullet marks and bracketed reference numbers dropped."""
    text = _REFERENCE_NUMBER.sub("", text)
    text = _BULLET.sub("", " ".join(text.split()))
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    return _SPACE_AFTER_OPEN.sub(r"\1", text).strip()


def split_sentences(text: str) -> list[str]:
    """Sentences of a chunk, cleaned, in order (lines are never joined)."""
    out = []
    for piece in _SPLIT.split(text or ""):
        cleaned = clean_sentence(piece)
        if cleaned:
            out.append(cleaned)
    return out


def quotable(sentence: str, heading: str = "") -> bool:
    """Whether a cleaned sentence may be quoted: a real sentence of reasonable length, not
    a heading, free of markup and of instructions to the assistant."""
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


# --- scoring -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    text: str
    chunk: ContextChunk
    position: int
    lexical: float
    dense: float | None = None
    support: float = 0.0


@dataclass(frozen=True)
class Analysis:
    """Why the responder answers what it answers (used by the tests and the benchmark)."""

    query_terms: tuple[str, ...]
    coverage: float  # weighted share of the query's content words found in the reference text
    candidates: tuple[Candidate, ...]  # scored, best first

    @property
    def best_support(self) -> float:
        return self.candidates[0].support if self.candidates else 0.0


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


def _stems(text: str) -> set[str]:
    return {s for s, _ in terms(text)}


def _coverage(weights: dict[str, float], vocabulary: set[str]) -> float:
    total = sum(weights.values())
    if not total:
        return 0.0
    return sum(w for t, w in weights.items() if _matches(t, vocabulary)) / total


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


def analyse(query: str, context: Sequence[ContextChunk], *, embed: Embedder | None = None) -> Analysis:
    """Score every quotable sentence of `context` against `query` (see the module docstring)."""
    weights = _query_weights(query)
    total = sum(weights.values())
    vocabulary: set[str] = set()
    candidates: list[Candidate] = []
    seen: set[str] = set()
    for chunk in context:
        vocabulary |= _stems(chunk.text) | _stems(chunk.title) | _stems(chunk.heading)
        heading_stems = _stems(chunk.heading) | _stems(chunk.title)
        for position, sentence in enumerate(split_sentences(chunk.text)):
            key = sentence.lower()
            if key in seen or not quotable(sentence, chunk.heading):
                continue  # chunks overlap: a sentence is offered once, from the best-ranked chunk
            seen.add(key)
            own = _stems(sentence)
            lexical = 0.0
            if total:
                for term, w in weights.items():
                    if _matches(term, own):
                        lexical += w
                    elif _matches(term, heading_stems):
                        lexical += HEADING_WEIGHT * w
                lexical /= total
            candidates.append(Candidate(sentence, chunk, position, lexical))
    coverage = _coverage(weights, vocabulary)

    def cheap(c: Candidate) -> float:
        return LEXICAL_WEIGHT * c.lexical + CHUNK_WEIGHT * (c.chunk.similarity or 0.0)

    candidates.sort(key=lambda c: (-cheap(c), c.chunk.index, c.position))
    shortlist = candidates[:MAX_EMBEDDED]
    scored: list[Candidate] = []
    if shortlist and embed is not None and total:
        vectors = _CACHE.embed(embed, [query, *(c.text for c in shortlist)])
        for candidate, vector in zip(shortlist, vectors[1:], strict=True):
            dense = max(0.0, _dot(vectors[0], vector))
            support = cheap(candidate) + DENSE_WEIGHT * dense
            scored.append(
                Candidate(candidate.text, candidate.chunk, candidate.position, candidate.lexical, dense, support)
            )
    else:  # no embedder: the cheap score, rescaled to the same range
        scale = 1.0 / (LEXICAL_WEIGHT + CHUNK_WEIGHT)
        scored = [Candidate(c.text, c.chunk, c.position, c.lexical, None, cheap(c) * scale) for c in shortlist if total]
    scored.sort(key=lambda c: (-c.support, c.chunk.index, c.position))
    return Analysis(tuple(sorted(weights)), coverage, tuple(scored))


def select(analysis: Analysis, *, support_threshold: float, max_sentences: int = MAX_SENTENCES) -> list[Candidate]:
    """The sentences to quote, in reading order: first the best sentence of each chunk, then
    more from the same chunks, all within SUPPORT_MARGIN of the best and above the threshold.
    Several chunks are preferred over several sentences of one (a second source confirms)."""
    eligible = [
        c
        for c in analysis.candidates
        if c.support >= support_threshold and c.support >= analysis.best_support - SUPPORT_MARGIN
    ]
    chosen: list[Candidate] = []
    per_chunk: dict[int, int] = {}
    for limit in (1, PER_CHUNK):
        for candidate in eligible:
            if len(chosen) >= max_sentences:
                break
            if candidate in chosen or per_chunk.get(candidate.chunk.index, 0) >= limit:
                continue
            chosen.append(candidate)
            per_chunk[candidate.chunk.index] = per_chunk.get(candidate.chunk.index, 0) + 1
    # Reading order: chunks by their best sentence, sentences of one chunk as they appear.
    rank: dict[int, int] = {}
    for candidate in chosen:
        rank.setdefault(candidate.chunk.index, len(rank))
    return sorted(chosen, key=lambda c: (rank[c.chunk.index], c.position))


# --- the provider ------------------------------------------------------------------------


def _count_words(*texts: str) -> int:
    return sum(len(t.split()) for t in texts)


def _first_name(facts: dict[str, str]) -> str:
    for key in ("first_name", "name", "full_name"):
        value = (facts.get(key) or "").strip()
        if value:
            return value.split()[0]
    return ""


class OfflineResponder:
    """Extractive, cited answers from the reference material; see the module docstring."""

    name = "offline"

    def __init__(
        self,
        *,
        support_threshold: float = SUPPORT_THRESHOLD,
        coverage_threshold: float = COVERAGE_THRESHOLD,
        max_sentences: int = MAX_SENTENCES,
        embed: Embedder | None = None,
        use_embeddings: bool = True,
    ) -> None:
        self.support_threshold = support_threshold
        self.coverage_threshold = coverage_threshold
        self.max_sentences = max_sentences
        self._embed = embed
        self.use_embeddings = use_embeddings

    def embedder(self) -> Embedder | None:
        if not self.use_embeddings:
            return None
        if self._embed is None:
            self._embed = local_embedder()
        return self._embed

    def _query(self, request: ChatRequest) -> str:
        if request.query.strip():
            return request.query
        users = [t.text for t in request.turns if t.role == "user"]
        return users[-1] if users else ""

    def analyse(self, request: ChatRequest) -> Analysis:
        return analyse(self._query(request), request.context, embed=self.embedder())

    def choose(self, analysis: Analysis) -> list[Candidate]:
        """The sentences to quote, or none (abstain): see the module docstring."""
        if analysis.coverage < self.coverage_threshold:
            return []
        return select(analysis, support_threshold=self.support_threshold, max_sentences=self.max_sentences)

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        query = self._query(request)
        prompt_tokens = _count_words(query, *(c.text for c in request.context))
        kind = classify(query)
        if kind is not None:
            text = reply(
                kind,
                language=request.language,
                name=_first_name(request.contact_facts) if kind in ("greeting", "thanks", "goodbye") else "",
                company=request.company_name,
            )
            yield TextDelta(text)
            yield Usage(prompt_tokens=prompt_tokens, completion_tokens=_count_words(text))
            yield Finish("smalltalk")
            return
        chosen = self.choose(self.analyse(request)) if request.context else []
        if not chosen:
            text = reply("no_answer", language=request.language, company=request.company_name)
            yield TextDelta(text)
            yield Usage(prompt_tokens=prompt_tokens, completion_tokens=_count_words(text))
            yield Finish("no_answer")
            return
        produced = []
        for number, candidate in enumerate(chosen):
            piece = f"{'' if number == 0 else ' '}{candidate.text} [{candidate.chunk.index}]"
            produced.append(piece)
            yield TextDelta(piece)
        yield Usage(prompt_tokens=prompt_tokens, completion_tokens=_count_words(*produced))
        yield Finish("stop")


@register("offline")
def create(credentials: ProviderCredentials) -> LLMProvider:
    """The offline responder needs no credentials; any given are ignored."""
    return OfflineResponder()


__all__ = ["OfflineResponder", "addresses_assistant", "analyse", "clean_sentence", "quotable", "select"]
