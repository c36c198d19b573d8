"""Guardrails around the model: prompt-injection screening of visitor text and reference
material, system-prompt leak detection on output, and per-tenant AI quotas.

Defence in depth, not a filter to trust alone: the prompt also labels reference material as
untrusted data, tools run only from a server-side allow-list with validated arguments, and
output is escaped wherever it is rendered. See docs/subsystems/agents.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.utils import timezone

from syntera.errors import ApplicationError

from .models import UsageCounter

# Phrases that address the assistant rather than inform a reader. Matched case-insensitively
# on text with collapsed whitespace.
_INJECTION = [
    r"\b(ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}\b(previous|prior|above|earlier|all|your|the)\b[^.\n]{0,30}"
    r"\b(instructions?|rules?|prompts?|guidelines?|directions?|context)\b",
    r"\b(reveal|show|print|repeat|output|display|tell me|leak|dump)\b[^.\n]{0,40}"
    r"\b(system|hidden|initial|original|secret)\b[^.\n]{0,20}\b(prompt|instructions?|message|rules?)\b",
    r"\b(reveal|print|repeat|output|display|leak|dump|recite)\b[^.\n]{0,20}\byour\b[^.\n]{0,20}"
    r"\b(prompt|instructions?|rules?|guidelines?)\b",
    r"\byou are now\b|\bfrom now on,? you\b|\bnew instructions?\s*:",
    r"^\s*(system|assistant|developer)\s*:",
    r"<\s*/?\s*(system|instructions?|reference)\b",
    r"\b(call|invoke|use|run|execute|trigger)\b[^.\n]{0,30}\b(tool|function)\b",
    r"\b(capture_lead|escalate_to_human|set_attributes|search_knowledge)\b",
    r"\bjailbreak\b|\bDAN mode\b|\bdeveloper mode\b",
]
INJECTION_RE = re.compile("|".join(f"(?:{p})" for p in _INJECTION), re.IGNORECASE | re.MULTILINE)


def looks_like_injection(text: str) -> bool:
    """True when `text` tries to instruct the assistant (change rules, reveal the prompt,
    call tools). Used to flag visitor messages and to keep such reference passages out of
    answers."""
    return bool(INJECTION_RE.search(" ".join((text or "").split())))


def strip_injections(text: str) -> str:
    """`text` without the sentences that look like instructions to the assistant."""
    sentences = re.split(r"(?<=[.!?])\s+|\n+", text or "")
    return " ".join(s for s in sentences if s.strip() and not looks_like_injection(s))


_WORD = re.compile(r"[a-z0-9']+")


def _shingles(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def leaks_prompt(answer: str, secret_parts: list[str], *, n: int = 8) -> bool:
    """True when the answer repeats a run of `n` words from the system rules or the tenant's
    instructions (the parts a visitor must not be able to extract)."""
    return LeakCheck(secret_parts, n=n)(answer)


class LeakCheck:
    """`leaks_prompt` for one turn's secret parts, their word runs taken once: a streamed answer
    is checked again at every piece, and the rules are hundreds of words long."""

    def __init__(self, secret_parts: list[str], *, n: int = 8) -> None:
        self.n = n
        self.secret: set[tuple[str, ...]] = set().union(*(_shingles(part, n) for part in secret_parts if part))
        self._streamed = ""  # what `streamed` last saw, and how many of its words it had checked
        self._checked = 0

    def __call__(self, answer: str) -> bool:
        return bool(self.secret) and not self.secret.isdisjoint(_shingles(answer, self.n))

    def streamed(self, answer: str) -> bool:
        """For an answer that grows piece by piece: True when what was added since the last call
        completes a run of the rules (a leak, once found, is the caller's to remember). Only
        the runs ending in words not seen whole before are taken (the last word of a piece may
        continue in the next), so a streamed answer costs its length once, not once per piece.
        An answer that does not continue the last one is checked whole."""
        if not self.secret:
            return False
        if not answer.startswith(self._streamed):
            self._checked = 0
        words = _WORD.findall(answer.lower())
        start = max(0, self._checked - self.n)  # the runs that end in the last, maybe partial, word
        self._streamed, self._checked = answer, len(words)
        runs = (tuple(words[i : i + self.n]) for i in range(start, len(words) - self.n + 1))
        return any(run in self.secret for run in runs)


@dataclass(frozen=True)
class Quota:
    requests: int  # 0 = unlimited
    tokens: int


def quota_for(tenant: object) -> Quota:
    plan = getattr(tenant, "plan", None)
    requests = getattr(plan, "ai_daily_requests", None)
    tokens = getattr(plan, "ai_daily_tokens", None)
    return Quota(
        requests=settings.AI_DAILY_REQUESTS if requests is None else int(requests),
        tokens=settings.AI_DAILY_TOKENS if tokens is None else int(tokens),
    )


def usage_today() -> UsageCounter:
    counter, _ = UsageCounter.objects.get_or_create(day=timezone.localdate())
    return counter


def quota_check(tenant: object) -> None:
    """Raise 429 `quota_exceeded` when today's requests or tokens reached the tenant's quota."""
    quota = quota_for(tenant)
    counter = UsageCounter.objects.filter(day=timezone.localdate()).first()
    if counter is None:
        return
    if quota.requests and counter.requests >= quota.requests:
        raise ApplicationError(
            f"The workspace reached its daily limit of {quota.requests} AI requests. It resets at midnight.",
            code="quota_exceeded",
            status_code=429,
        )
    if quota.tokens and counter.prompt_tokens + counter.completion_tokens >= quota.tokens:
        raise ApplicationError(
            f"The workspace reached its daily limit of {quota.tokens} AI tokens. It resets at midnight.",
            code="quota_exceeded",
            status_code=429,
        )


def usage_add(*, requests: int = 0, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
    """Add to today's counter in one statement (an AI turn's commit runs this on every reply)."""
    table = connection.ops.quote_name(UsageCounter._meta.db_table)
    counts = ("requests", "prompt_tokens", "completion_tokens")
    added = ", ".join(f"{name} = {table}.{name} + EXCLUDED.{name}" for name in counts)
    sql = f"INSERT INTO {table} (day, {', '.join(counts)}) VALUES (%s, %s, %s, %s) "  # noqa: S608 (the model's own names)
    sql += f"ON CONFLICT (day) DO UPDATE SET {added}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [timezone.localdate(), requests, prompt_tokens, completion_tokens])
