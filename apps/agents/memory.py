"""Conversation memory (recent turns verbatim, older ones folded into a rolling summary) and
contact memory (durable facts extracted from what the visitor says).

Extraction is deterministic and conservative: it takes only what the visitor states about
themselves in plain patterns ("my name is ...", an email address, a phone number, "I work at
..."), because a wrong fact remembered is worse than a fact missed. Staff can edit and erase
everything it stores. See docs/subsystems/agents.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .providers import Turn

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}\b")
PHONE = re.compile(r"(?<![\w+])(\+?\d[\d ().-]{6,18}\d)(?![\w])")
_NAME_WORD = r"[A-Z][a-zA-Z'\-]{1,30}"
NAME = re.compile(
    rf"\b(?:my name is|my name's|call me|this is|i am|i'm)\s+({_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})\b", re.IGNORECASE
)
COMPANY = re.compile(
    r"\b(?i:i work (?:at|for)|i'm (?:at|with|from)|i am (?:at|with|from)|our company is|my company is)\s+"
    r"((?:[A-Z0-9][\w&.\-]{0,30})(?:\s+[A-Z0-9][\w&.\-]{0,30}){0,3})"
)
PREFERENCE = re.compile(
    r"\b(?:i prefer|i'd prefer|i would prefer|please (?:always )?(?:contact|reach|call|email) me (?:by|via|on|at))\s+"
    r"([^.!?\n]{2,80})",
    re.IGNORECASE,
)
# Words that follow "I'm"/"I am" but are not names.
NOT_NAMES = {
    "a", "an", "the", "not", "so", "very", "just", "also", "still", "here", "there", "looking", "trying",
    "having", "interested", "calling", "writing", "asking", "wondering", "sorry", "sure", "fine", "good",
    "ok", "okay", "happy", "unhappy", "glad", "new", "from", "at", "with", "in", "on", "going", "getting",
    "thinking", "planning", "waiting", "back", "done", "ready", "able", "unable", "confused", "frustrated",
}  # fmt: skip


def extract_facts(text: str) -> list[tuple[str, str]]:
    """Facts the visitor states about themselves in `text`, as (key, value) pairs."""
    facts: list[tuple[str, str]] = []
    email = EMAIL.search(text)
    if email:
        facts.append(("email", email.group(0).lower()))
    for match in PHONE.finditer(EMAIL.sub(" ", text)):
        digits = re.sub(r"\D", "", match.group(1))
        if 7 <= len(digits) <= 15:
            facts.append(("phone", match.group(1).strip()))
            break
    name = NAME.search(text)
    if name:
        words = name.group(1).split()
        # "I'm" and "this is" are followed by names only when the word is capitalised.
        keep: list[str] = []
        for word in words:
            if word.lower() in NOT_NAMES or not word[0].isupper():
                break
            keep.append(word)
        if keep:
            facts.append(("name", " ".join(keep)))
    company = COMPANY.search(text)
    if company:
        facts.append(("company", company.group(1).split(". ")[0].rstrip(".")))
    preference = PREFERENCE.search(text)
    if preference:
        facts.append(("preference", preference.group(0).strip()))
    return facts


def _first_sentence(text: str, limit: int = 200) -> str:
    sentence = re.split(r"(?<=[.!?])\s", " ".join(text.split()), maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


def extractive_summary(previous: str, turns: list[Turn], *, max_chars: int = 1500) -> str:
    """Fold `turns` into the summary without a model: the first sentence of each turn, tagged
    with who said it. The oldest lines go first when it grows past `max_chars`."""
    lines = [line for line in previous.splitlines() if line.strip()]
    for turn in turns:
        who = "Visitor" if turn.role == "user" else "Assistant"
        lines.append(f"{who}: {_first_sentence(turn.text)}")
    while len("\n".join(lines)) > max_chars and len(lines) > 1:
        lines.pop(0)
    return "\n".join(lines)


def split_history(turns: list[Turn], *, budget: int, count: Callable[[str], int]) -> tuple[list[Turn], list[Turn]]:
    """(older turns to fold into the summary, recent turns to keep verbatim). The latest turn
    is always kept; earlier ones are kept newest first while they fit `budget` tokens."""
    if not turns:
        return [], []
    kept = [turns[-1]]
    used = 0
    index = len(turns) - 1
    for index in range(len(turns) - 2, -1, -1):
        cost = count(turns[index].text) + 4
        if used + cost > budget:
            return turns[: index + 1], turns[index + 1 :]
        used += cost
        kept.insert(0, turns[index])
    return [], turns
