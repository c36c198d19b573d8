"""Follow-up questions made to stand alone, for retrieval.

In a conversation the latest message often leans on earlier ones: "how much does it cost?",
"and for a motorcycle?", "what documents do I need then?". Searched alone it finds nothing
useful. `standalone_query(turns, question)` returns the question itself when it can stand
alone, else the question followed by the salient key terms of the conversation so far: the
content words of the earlier visitor messages (the newest weighing most) and of the last
answer. Deterministic, offline, cheap: no model is asked to rewrite anything.

A question "needs context" when it refers back (pronouns and demonstratives such as it, that,
those, them; openers such as "and", "what about", "what else") or when it has fewer than
`MIN_OWN_TERMS` specific words of its own. A long question with its own topic is searched
as it is, so a visitor who changes the subject is not dragged back to the old one.

The term helpers here (`terms`, `stem`) are shared with the offline responder, which uses
the same notion of a content word. See docs/subsystems/agents.md.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from functools import lru_cache

from .providers import Turn
from .smalltalk import classify

# Standard English function words, plus the words of asking itself ("how", "can", "need").
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "aren",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "cannot",
        "could",
        "couldn",
        "did",
        "didn",
        "do",
        "does",
        "doesn",
        "doing",
        "don",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "hadn",
        "has",
        "hasn",
        "have",
        "haven",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "isn",
        "it",
        "its",
        "itself",
        "just",
        "let",
        "me",
        "more",
        "most",
        "mustn",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "ought",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "shan",
        "she",
        "should",
        "shouldn",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "wasn",
        "we",
        "were",
        "weren",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "won",
        "would",
        "wouldn",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "s",
        "t",
        "d",
        "ll",
        "m",
        "re",
        "ve",
        "y",
        "also",
        "im",
        "ive",
        "id",
        "youre",
        "dont",
        "cant",
        "whats",
        "hi",
        "hello",
        "hey",
        "thanks",
        "thank",
        "please",
        "ok",
        "okay",
        "yes",
        "yeah",
        "yep",
        "sure",
        "may",
        "might",
        "must",
        "shall",
        "us",
        "one",
        "ones",
        "anything",
        "something",
        "everything",
        "nothing",
        "thing",
        "things",
        "way",
        "lot",
    ]
)
# Words that carry little of a question's topic: they count, but weakly.
GENERIC = frozenset(
    [
        "help",
        "need",
        "needs",
        "want",
        "wanted",
        "know",
        "like",
        "would",
        "get",
        "got",
        "go",
        "going",
        "find",
        "tell",
        "ask",
        "asking",
        "question",
        "questions",
        "information",
        "info",
        "regarding",
        "about",
        "interested",
        "looking",
        "look",
        "wondering",
        "wonder",
        "learn",
        "understand",
        "explain",
        "mean",
        "means",
        "said",
        "say",
        "see",
        "use",
        "using",
        "used",
        "make",
        "made",
        "give",
        "given",
        "take",
        "taken",
        "new",
        "good",
        "best",
        "happen",
        "happens",
        "able",
        "possible",
        "sure",
        "kind",
        "type",
        "types",
        "detail",
        "details",
        "something",
        "someone",
        "somebody",
        "people",
        "person",
        "anyone",
        "way",
        "ways",
        "case",
        "much",
        "many",
        "long",
        "time",
        "currently",
        "still",
        "already",
        "well",
        "really",
        "else",
        "also",
        "first",
    ]
)
GENERIC_WEIGHT = 0.3

# Words that point back at something said earlier.
REFERRING = frozenset(
    [
        "it",
        "its",
        "itself",
        "that",
        "this",
        "these",
        "those",
        "they",
        "them",
        "their",
        "theirs",
        "there",
        "he",
        "she",
        "him",
        "her",
        "his",
        "hers",
        "one",
        "ones",
        "same",
        "such",
        "former",
        "latter",
        "above",
        "previous",
    ]
)
# Openers of an elliptical follow-up ("and for a car?", "what about renewals?").
_FOLLOW_OPENERS = re.compile(
    r"^\s*(and|but|also|so|then|or|plus|what about|how about|what else|anything else|else|"
    r"same for|what if|in that case|if so|ok so|okay so|and if|why|why not|how come|how so|really)\b",
    re.IGNORECASE,
)
MIN_OWN_TERMS = 3  # specific (non-generic) content words a question needs to stand alone
MAX_CARRIED_TERMS = 8
ASSISTANT_WEIGHT = 0.5  # the last answer's words count half as much as the visitor's own
RECENCY_DECAY = 0.6  # each earlier visitor message weighs this much of the next one
MAX_HISTORY_TURNS = 6

_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")


def _fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    folded = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in folded if not unicodedata.combining(ch))


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix stripper (plural, -ing, -ed, -ly), enough to match "renewing" with
    "renewal"'s neighbour "renew" and "licenses" with "license"; both sides use it."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    w = w.replace("'", "")
    if len(w) <= 3:
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix in ("ingly", "edly", "ing", "ed", "ly", "ment", "al"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 4:
            w = w[: -len(suffix)]
            if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]  # running -> run, but keep "fill", "pass"
            break
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]  # renew/renewe, license/licens: one form either way
    return w


def words(text: str) -> list[str]:
    """Lower-case word tokens (accents folded, apostrophes kept inside words)."""
    return _WORD.findall(_fold(text or ""))


_CLITIC = re.compile(r"['’](?:s|d|ll|re|ve|m)$")  # "husband's" → "husband", "it'd" → "it"


def terms(text: str) -> list[tuple[str, str]]:
    """(stem, surface word) of every content word of `text`, in order, stopwords dropped
    (possessives and contractions count as the word they attach to)."""
    out = []
    for word in words(text):
        bare = _CLITIC.sub("", word).replace("'", "").replace("’", "")
        if bare in STOPWORDS or word in STOPWORDS or len(bare) < 2 or (bare.isdigit() and len(bare) < 2):
            continue
        out.append((stem(bare), bare))
    return out


def weight(surface: str) -> float:
    return GENERIC_WEIGHT if surface in GENERIC else 1.0


def needs_context(question: str) -> bool:
    """Whether `question` leans on the conversation (see the module docstring)."""
    tokens = words(question)
    if not tokens:
        return False
    if _FOLLOW_OPENERS.match(question):
        return True
    if any(t in REFERRING for t in tokens):
        return True
    own = {s for s, w in terms(question) if w not in GENERIC}
    return len(own) < MIN_OWN_TERMS


def salient_terms(
    turns: Sequence[Turn], *, exclude: AbstractSet[str] = frozenset(), limit: int = MAX_CARRIED_TERMS
) -> list[str]:
    """The key words of the conversation: content words of the visitor's earlier messages,
    newest weighing most, and of the last answer at half weight; generic words ("know",
    "info") are not carried. Ties keep the order of first mention. Stems in `exclude` are
    left out."""
    recent = []
    previous_smalltalk = False
    for turn in [t for t in turns if t.text.strip()][-MAX_HISTORY_TURNS:]:
        if turn.role == "user":
            previous_smalltalk = classify(turn.text) is not None
            if previous_smalltalk:
                continue
        elif previous_smalltalk:
            continue  # the reply to a pleasantry ("Hello! How can I help?") has no topic
        recent.append(turn)
    scores: dict[str, float] = {}
    surface: dict[str, str] = {}
    from_answer: set[str] = set()
    first_seen: dict[str, int] = {}
    order = 0
    last_answer_seen = False
    user_weight = 1.0
    for turn in reversed(recent):
        if turn.role == "assistant":
            if last_answer_seen:
                continue  # only the latest answer: older ones are further from the question
            last_answer_seen = True
            turn_weight = ASSISTANT_WEIGHT
        else:
            turn_weight = user_weight
            user_weight *= RECENCY_DECAY
        seen_here: set[str] = set()
        for stemmed, word in terms(turn.text):
            if stemmed in exclude or stemmed in seen_here or word in GENERIC:
                continue
            seen_here.add(stemmed)
            scores[stemmed] = scores.get(stemmed, 0.0) + turn_weight * weight(word)
            if stemmed not in surface or (turn.role == "user" and stemmed in from_answer):
                surface[stemmed] = word  # the visitor's own form of a word wins over the answer's
                from_answer.discard(stemmed)
                if turn.role == "assistant":
                    from_answer.add(stemmed)
            if stemmed not in first_seen:
                first_seen[stemmed] = order
                order += 1
    ranked = sorted(scores, key=lambda s: (-scores[s], first_seen[s]))
    return [surface[s] for s in ranked[:limit]]


def standalone_query(turns: list[Turn], question: str) -> str:
    """The question to search with: `question` itself, or, when it is a follow-up that leans
    on the conversation, `question` followed by the conversation's key terms (see above).
    `turns` are the earlier turns, oldest first, without the question itself."""
    question = " ".join((question or "").split())
    if not question or not turns or classify(question) is not None or not needs_context(question):
        return question
    own = {s for s, _ in terms(question)}
    carried = salient_terms(turns, exclude=own)
    return f"{question} {' '.join(carried)}" if carried else question
