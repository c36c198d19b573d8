"""Writing a computed AI turn (docs/adr/0019-ai-turn-commit.md).

The runtime computes a turn and the side effects it wants (`TurnResult.effects`) without
writing. The caller that stores the reply (`apps.conversations.services.ai_reply`) opens one
transaction, checks under the conversation's row lock that the reply still applies (same
ownership epoch, no newer visitor message), and only then calls, in this order:

1. `turn_commit`: the leads (`crm.lead_capture`), the contact memory learnt
   (`crm.contact_remember`), the knowledge gap. It returns the contact the conversation now
   has and what changed, for the reply's audit.
2. the caller's own writes: the conversation's AI state, the visitor's claims, the reply.
3. `turn_count`: the usage counter and the agent's daily statistics, last, because every
   turn of the workspace updates the same rows and their locks are held until the commit.

A reply that is discarded never reaches step 1, so it leaves no lead, contact, memory, gap,
usage or statistics behind; if any write fails, the transaction takes the reply with it.
Dry runs (test chat, drafts, batch tests, evaluations) store nothing and write nothing of the
turn; `turn_meter` counts their usage against the AI quota, as the provider did the work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from apps.crm import services as crm

from . import guardrails
from . import services as agent_services
from .models import Agent
from .runtime.turns import TurnResult


@dataclass(frozen=True)
class Committed:
    """What `turn_commit` wrote: the contact the conversation has now (the one it had, or the
    one its first lead made), the leads, and the memory keys that changed."""

    contact: Any
    lead_ids: list[int] = field(default_factory=list)
    learned: list[str] = field(default_factory=list)


def _in_transaction() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("A turn is committed inside the transaction that checked its reply still applies.")


def turn_commit(*, agent: Agent, tenant: Any, result: TurnResult, contact: Any) -> Committed:
    """Write the leads, contact memory and knowledge gap `result` wants. `contact` is the
    conversation's contact as it is now (read under its lock), not as it was when the turn
    started. Runs inside the caller's transaction."""
    _in_transaction()
    effects = result.effects
    lead_ids: list[int] = []
    for wanted in effects.leads:
        lead = crm.lead_capture(
            tenant=tenant,
            contact=contact,
            name=wanted.name,
            email=wanted.email,
            phone=wanted.phone,
            company=wanted.company,
            need=wanted.need,
            origin="ai",
        )
        lead_ids.append(lead.pk)
        contact = lead.contact  # a second lead of this visitor joins the contact the first made
    learned: list[str] = []
    if contact is not None and effects.facts:
        learned = crm.contact_remember(tenant=tenant, contact=contact, facts=effects.facts)
    if effects.gap is not None:
        agent_services.knowledge_gap_record(
            agent=agent,
            question=effects.gap.question,
            unknown_words=list(effects.gap.unknown_words),
            channel=effects.gap.channel,
        )
    return Committed(contact=contact, lead_ids=lead_ids, learned=learned)


def turn_meter(*, result: TurnResult) -> None:
    """Count the turn's usage against the workspace's AI quota."""
    usage = result.effects.usage
    if usage.requests or usage.prompt_tokens or usage.completion_tokens:
        guardrails.usage_add(
            requests=usage.requests, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens
        )


def turn_count(*, agent: Agent, channel: str, result: TurnResult) -> None:
    """The stored turn's usage and its line on the agent's daily statistics. Runs inside the
    caller's transaction, as its last writes."""
    _in_transaction()
    turn_meter(result=result)
    if not result.effects.counted:
        return
    usage = result.audit.get("usage") or {}
    agent_services.agent_stats_record(
        agent=agent,
        channel=channel,
        decision=result.decision,
        unanswered=result.unanswered,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        latency_ms=float(result.audit.get("latency_ms") or 0),
    )
