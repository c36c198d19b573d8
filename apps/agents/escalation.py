"""When the AI hands over to a human, per the agent's escalation policy: the visitor asks for
one, sensitive keywords, or the AI abstained too often. The routing layer adds queues, teams
and further triggers on top of the decision made here. See docs/subsystems/agents.md.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

_HUMAN = (
    r"(human|person|real (?:person|human|agent)|agent|representative|rep|operator|somebody|someone|staff"
    r"|team member|colleague|support team|live (?:chat|agent|support))"
)
_ASK = r"(talk|speak|chat|connect|transfer|put|get|give|need|want|let|like|prefer|escalate|reach|have)"
WANTS_HUMAN = re.compile(
    rf"\b{_ASK}\b[^.?!]{{0,40}}\b{_HUMAN}\b|\b(human|agent|representative|operator)\s*(please|now|pls)?\s*[.!?]*\s*$"
    r"|\bis (?:there|this) (?:a )?(?:real )?(?:person|human)\b"
    r"|\bam i (?:talking|speaking|chatting) to a (?:bot|robot|machine)\b",
    re.IGNORECASE,
)
NOT_HUMAN_REQUEST = re.compile(
    r"\b(travel agent|insurance agent|real estate agent|agent orange|user agent|agent of record|chemical agent)\b"
    r"|\b(don't|do not|no need to|never)\b[^.?!]{0,20}\b(talk|speak|connect|transfer)",
    re.IGNORECASE,
)


def wants_human(text: str) -> bool:
    """True when the visitor asks to be put through to a person."""
    text = " ".join((text or "").split())
    return bool(WANTS_HUMAN.search(text)) and not NOT_HUMAN_REQUEST.search(text)


def policy_value(policy: dict[str, Any], key: str, field: str = "enabled", default: Any = None) -> Any:
    entry = policy.get(key)
    if isinstance(entry, dict):
        return entry.get(field, default)
    if field == "enabled" and isinstance(entry, bool):
        return entry
    return default


def keyword_hit(policy: dict[str, Any], text: str) -> str | None:
    """The first sensitive keyword of the policy found in `text` (whole words), if enabled."""
    if not policy_value(policy, "keywords"):
        return None
    lowered = text.lower()
    for word in policy_value(policy, "keywords", "words", []) or []:
        word = str(word).strip().lower()
        if word and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", lowered):
            return word
    return None


def abstention_limit(policy: dict[str, Any]) -> int | None:
    if not policy_value(policy, "abstentions"):
        return None
    return max(1, int(policy_value(policy, "abstentions", "threshold", 2) or 2))


@cache
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(text: str) -> float:
    """VADER's compound score of `text`: -1 (very negative) to 1 (very positive)."""
    return float(_vader().polarity_scores(text or "")["compound"])


def negative_sentiment(policy: dict[str, Any], text: str) -> float | None:
    """The compound score when the policy's negative-sentiment trigger fires, else None."""
    if not policy_value(policy, "negative_sentiment"):
        return None
    threshold = float(policy_value(policy, "negative_sentiment", "threshold", -0.5) or -0.5)
    score = sentiment(text)
    return score if score <= threshold else None


def too_many_turns(policy: dict[str, Any], visitor_turns: int) -> int | None:
    """The turn count when the max-turns trigger fires, else None."""
    if not policy_value(policy, "max_turns"):
        return None
    limit = max(1, int(policy_value(policy, "max_turns", "threshold", 12) or 12))
    return visitor_turns if visitor_turns > limit else None


def is_vip(policy: dict[str, Any], contact: Any, attributes: dict[str, Any]) -> bool:
    """The VIP trigger: the contact (or conversation) carries a truthy `vip` attribute."""
    if not policy_value(policy, "vip"):
        return False
    values = [attributes.get("vip"), (getattr(contact, "attributes", None) or {}).get("vip")]
    return any(str(v).lower() in ("1", "true", "yes") for v in values if v is not None)
