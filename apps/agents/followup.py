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

Content words (`terms`, `words`, `GENERIC`) are those of vocabulary.py, shared with the
runtime and the offline responder. See docs/subsystems/agents.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from .providers import Turn
from .smalltalk import classify
from .vocabulary import GENERIC, terms, weight, words

# `terms` and `words` are vocabulary.py's: the runtime imports them from here.
__all__ = ["needs_context", "salient_terms", "standalone_query", "terms", "words"]

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
