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
the MiniLM vocabulary, not a misspelling of a word of the text, not said in the best
sentences' own words (a word of theirs within cosine SYNONYM_SIMILARITY: "suv" and "vehicle")
— "placard", "acupuncture"),
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
Weights were fitted on doc2dial; the threshold is chosen on the tune halves of doc2dial and
support-dev together (tests/bench/test_agent_eval.py, figures in docs/benchmarks.md). A
question that needs a date, count or amount worked out from a rule gets the rule quoted and
cited: this responder never states a figure its passages do not.

Reference text is untrusted. A sentence is never quoted when it addresses the assistant
(`addresses_assistant`: "ignore previous instructions", "reveal your system prompt", "call
the capture_lead tool", role labels such as "SYSTEM:"), carries markup or code, or is a
heading fragment; the rest is cleaned of stray whitespace and of the source's own bracketed
reference numbers (which would read as citation markers). Deterministic: same request, same
answer. See docs/subsystems/agents.md.

The parts: untrusted.py (what a quoted sentence must not be), sentences.py (splitting,
cleaning, what may be quoted, the page's own questions and their answers), scoring.py
(support, answerability, the choice of sentences); this module is the provider itself.
"""

from __future__ import annotations

from collections.abc import Iterator

from ...smalltalk import classify, reply
from .. import (
    Capabilities,
    ChatRequest,
    Finish,
    LLMProvider,
    ProviderCredentials,
    ProviderEvent,
    TextDelta,
    Usage,
    register,
)
from .scoring import (
    MAX_MARKERS,
    MAX_SENTENCES,
    SUPPORT_THRESHOLD,
    Analysis,
    Candidate,
    Embedder,
    analyse,
    local_embedder,
    select,
)


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
    # It quotes the reference material it is given and does nothing else: no tools, no
    # answer without material, extractive summaries, no credentials.
    capabilities = Capabilities(default_model="offline-extractive")

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
