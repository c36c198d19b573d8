"""Guidance rules the server enforces itself: "never discuss X" and its variants.

A model reads every guidance rule in its system prompt; the offline responder cannot read
prose, and a model may still slip. So rules of the form "never/do not/don't/avoid discuss,
talk about, mention, give, share, comment on, answer questions about <topics>" are also
enforced by the runtime, for every provider: a visitor message about one of the topics gets
no answer from the knowledge, and neither does an answer that brings one up. When the rule
says to hand over ("...; hand over instead", "escalate", "transfer to a human"), the
conversation goes to a person; otherwise the AI says it cannot help with that and offers one.

Topics are the rule's words after the verb, split on "or", "and", "/" and commas: "pricing or
competitors' products" is two topics, `pricing` and `competitors products`. A text touches a
topic when it has every content word of it, compared by stem with a common ending allowed
("pricing" ~ "prices", "priced"; not "prick"). Rules of any other form ("Be friendly") are left to the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .vocabulary import terms

_RESTRICTION = re.compile(
    r"^\W*(?:please\s+)?(?:never|do\s+not|don'?t|must\s+not|should\s+not|shouldn'?t|avoid|no)\s+(?:ever\s+)?"
    r"(?:discuss(?:ing)?|talk(?:ing)?\s+about|mention(?:ing)?|giv(?:e|ing)(?:\s+out)?|provid(?:e|ing)|shar(?:e|ing)|quot(?:e|ing)|comment(?:ing)?\s+on|"
    r"answer\s+(?:any\s+)?questions?\s+(?:about|on)|speculat(?:e|ing)\s+(?:about|on)|disclos(?:e|ing))\s+"
    r"(?P<topics>[^;.!?]+)(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_SPLIT = re.compile(r"\s*(?:,|/|\bor\b|\band\b|\bnor\b)\s*", re.IGNORECASE)
_HAND_OVER = re.compile(
    r"\b(?:hand(?:\s|-)?(?:over|off)|escalate|transfer|human|person|colleague|staff|team\s+member|live\s+agent)",
    re.IGNORECASE,
)
_TRAILING = re.compile(r"\s+(?:instead|at\s+all|ever|whatsoever)\s*$", re.IGNORECASE)
MIN_PREFIX = 4
_ENDINGS = frozenset({"e", "s", "es", "ed", "er", "ing", "al", "ion", "ly", "y"})


@dataclass(frozen=True)
class Restriction:
    rule: str
    topics: tuple[tuple[str, ...], ...]  # each topic: the stems that must all appear
    hand_over: bool


def restrictions(rules: list[str]) -> list[Restriction]:
    """The rules that forbid topics, parsed (see the module docstring)."""
    out = []
    for rule in rules:
        text = " ".join(str(rule or "").split())[:500]
        match = _RESTRICTION.match(text)
        if match is None:
            continue
        phrase = _TRAILING.sub("", match.group("topics"))
        topics = []
        for part in _SPLIT.split(phrase):
            stems = tuple(dict.fromkeys(s for s, _ in terms(part)))
            if stems:
                topics.append(stems)
        if topics:
            out.append(Restriction(text, tuple(topics), bool(_HAND_OVER.search(match.group("rest") or ""))))
    return out


def _same(a: str, b: str) -> bool:
    """Same stem, or one is the other plus a common ending ("pric" ~ "price", not "prick")."""
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    return len(short) >= MIN_PREFIX and long.startswith(short) and long[len(short) :] in _ENDINGS


def violated(rules: list[Restriction], text: str) -> Restriction | None:
    """The first rule whose topic `text` touches, or None."""
    if not rules or not text:
        return None
    stems = {s for s, _ in terms(text)}
    for rule in rules:
        for topic in rule.topics:
            if all(any(_same(t, s) for s in stems) for t in topic):
                return rule
    return None
