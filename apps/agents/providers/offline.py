"""The offline responder: the default provider when no LLM is configured.

It answers only by quoting. Given the retrieved reference chunks (`request.context`) it
splits them into sentences, scores how well each sentence supports the question, and
returns the best few, each followed by its `[n]` citation marker. Nothing is invented: the
only words it writes itself are the fixed templates of `smalltalk.py` (greetings, thanks,
"who are you", and the no-answer reply that offers a person).

The question is scored without its small talk (`core_query`: clauses that greet, thank or
say nothing beyond "could you help me?" are left out), so pleasantries do not dilute it.

How a sentence is scored (all numbers in [0, 1]):
- `lexical`: the share of the question's content words the sentence (or its section
  heading, at half weight) contains; generic words ("help", "need") weigh 0.3.
- `dense`: cosine similarity of the sentence to the question (local MiniLM; only the
  `EMBEDDED_PER_CHUNK` lexically best sentences of each chunk are embedded; vectors cached).
- `support` = DENSE_WEIGHT·dense + LEXICAL_WEIGHT·lexical + CHUNK_WEIGHT·(chunk similarity).

Whether to answer at all: `answerability` = best support + COVERAGE_WEIGHT·(share of the
question's content words found anywhere in the reference text) - MISSING_PENALTY·(number of
*specific* question words the text lacks: not generic, not among the common English words of
the MiniLM vocabulary, not a misspelling of a word of the text — "placard", "acupuncture"),
each costing UNKNOWN_PENALTY instead when the whole knowledge base lacks it too
(`request.unknown_words`, found by the runtime with `apps.knowledge.search.unknown_words`).
Below `support_threshold` it abstains: Finish("no_answer"), the no-answer template offering a
person, no marker. A question whose specific words appear nowhere in the retrieved text is
rarely answered by it, however similar the chunks look.

Help pages ask their own questions ("Can I renew my licence online? Most drivers can…").
Such a question is never quoted: the first quotable sentence after it answers it
(`answered_questions`), has its words, and is as close to the visitor's question as the
better of itself and the page's question. The visitor gets the answer, not the question back,
led by the page's own "Yes." or "No." when one stands between them.

What to quote: the best-supported sentence, then the best sentence of each further source in
retrieval order (retrieval ranks sources better than one sentence's score, and a second
source confirms), each within SUPPORT_MARGIN of the best; at most MAX_SENTENCES. A sentence
found in several sources (overlapping chunks, pages that repeat each other) cites each.
Weights were fitted and thresholds tuned on doc2dial (tests/bench/test_agent_eval.py,
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
from dataclasses import dataclass, replace
from functools import lru_cache

from ..followup import GENERIC, terms, weight
from ..followup import words as _words
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

SUPPORT_THRESHOLD = 0.70  # answerability needed to answer (tuned on doc2dial)
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


_YES_NO = re.compile(r"(?:yes|no)[.!]", re.IGNORECASE)


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


# --- scoring -----------------------------------------------------------------------------


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
    weights = _query_weights(core)
    total = sum(weights.values())
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
            lead = between[0] if len(between) == 1 and _YES_NO.fullmatch(between[0]) else ""
            own = _stems(sentence) | _stems(asked)  # an answer has its question's words
            lexical = 0.0
            if total:
                for term, w in weights.items():
                    if _matches(term, own):
                        lexical += w
                    elif _matches(term, heading_stems):
                        lexical += HEADING_WEIGHT * w
                lexical /= total
            found.append(Candidate(sentence, chunk, position, lexical, asked=asked, lead=lead))
        per_chunk.append(found)
    coverage = _coverage(weights, vocabulary)
    missing = _specific(core, vocabulary, words) if total else ()

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
        vectors = _CACHE.embed(embed, [core, *texts])
        similarity = {text: _dot(vectors[0], vector) for text, vector in zip(texts, vectors[1:], strict=True)}
        for candidate in shortlist:
            dense = max(0.0, similarity[candidate.text], similarity.get(candidate.asked, 0.0))
            scored.append(replace(candidate, dense=dense, support=cheap(candidate) + DENSE_WEIGHT * dense))
    elif total:  # no embedder: the cheap score, rescaled to the same range
        scale = 1.0 / (LEXICAL_WEIGHT + CHUNK_WEIGHT)
        scored = [replace(c, support=cheap(c) * scale) for c in shortlist]
    scored = [replace(c, also=tuple(seen[c.text.lower()][1:])) for c in scored]
    scored.sort(key=lambda c: (-c.support, c.chunk.index, c.position))
    absent = {w.lower() for w in unknown}
    return Analysis(tuple(sorted(weights)), coverage, missing, tuple(scored), tuple(w for w in missing if w in absent))


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
        max_sentences: int = MAX_SENTENCES,
        embed: Embedder | None = None,
        use_embeddings: bool = True,
    ) -> None:
        self.support_threshold = support_threshold
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
        return analyse(self._query(request), request.context, embed=self.embedder(), unknown=request.unknown_words)

    def choose(self, analysis: Analysis) -> list[Candidate]:
        """The sentences to quote, or none (abstain): see the module docstring."""
        if analysis.answerability < self.support_threshold:
            return []
        return select(analysis, max_sentences=self.max_sentences)

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        query = self._query(request)
        prompt_tokens = _count_words(query, *(c.text for c in request.context))
        kind = classify(query)
        if kind is not None:
            text = reply(
                kind,
                language=request.language,
                # The name the visitor gave is theirs to hear back, verified or not.
                name=_first_name(request.contact_facts) or _first_name(request.claims)
                if kind in ("greeting", "thanks", "goodbye", "invite")
                else "",
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
            markers = "".join(f"[{c.index}]" for c in candidate.chunks[:MAX_MARKERS])
            piece = f"{'' if number == 0 else ' '}{candidate.quote} {markers}"
            produced.append(piece)
            yield TextDelta(piece)
        yield Usage(prompt_tokens=prompt_tokens, completion_tokens=_count_words(*produced))
        yield Finish("stop")


@register("offline")
def create(credentials: ProviderCredentials) -> LLMProvider:
    """The offline responder needs no credentials; any given are ignored."""
    return OfflineResponder()


__all__ = ["OfflineResponder", "addresses_assistant", "analyse", "clean_sentence", "quotable", "select"]
