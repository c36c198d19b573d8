"""The agent runtime: one service that takes a conversation and computes the AI's next turn,
as a stream of text deltas followed by one `TurnResult` (text, citations, tool calls,
decision, grounding audit, and the side effects it wants as data). Chat, voice, email, SMS
and the test endpoint all call it.

A turn: quota → guard the input → escalation triggers → fold old turns into the summary →
standalone query → misspelt words corrected against the knowledge's own → retrieve → abstain
if nothing clears the agent's threshold → prompt → provider (with validated tool calls, a few
rounds at most) → citations → grounding decision → what to remember, which lead to take, which
gap to report, the usage. It writes nothing: the caller that stores the reply writes the
turn's effects in the same transaction (`apps.agents.commit`,
docs/adr/0019-ai-turn-commit.md), and a dry run writes none. What the provider can do comes
from its declared capabilities, never from its name.
See docs/subsystems/agents.md.

This package's `__init__` is the turn itself (`run_turn`, `answer_turn`); the pieces it uses
are `turns` (what a turn takes and gives), `grounding` (reference material in, citations
out) and `conversation` (summaries, hand-over triggers, what is known of the visitor, the
fixed replies).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from django.conf import settings

from apps.knowledge.search import correct_spelling, search
from apps.tenants.db import release_connection

from .. import escalation, guardrails, guidance, memory, smalltalk
from ..breaker import Breaker, CircuitOpen
from ..credentials import resolve_provider
from ..effects import GapWanted, LeadWanted, TurnEffects, UsageSpent
from ..followup import standalone_query
from ..models import Agent
from ..prompting import build_prompt
from ..providers import (
    ChatRequest,
    Finish,
    ProviderError,
    TextDelta,
    ToolCall,
    Turn,
    Usage,
    capabilities_of,
    get_provider,
)
from ..tokens import count_tokens
from ..tools import ToolContext, allowed_specs, run_tool
from .conversation import (
    _hand_over_trigger,
    _handoff_summary,
    _known_and_claimed,
    _summarize,
    abstention_text,
    escalation_text,
    refusal_text,
    restricted_text,
    unavailable_text,
)
from .grounding import BELOW_THRESHOLD, UNCITED, _context_from_hits, _parse_citations, unknown_query_words
from .turns import Citation, Decision, Delta, TurnInput, TurnResult


def run_turn(*, agent: Agent, tenant: Any, conversation: TurnInput) -> Generator[Delta | TurnResult, None, None]:
    """Produce the agent's next turn for `conversation`: `Delta`s while the answer streams,
    then one `TurnResult`. The final text is authoritative (it may replace what streamed when
    grounding fails). Raises ApplicationError 429 when the tenant's AI quota is used up."""
    started = time.perf_counter()
    guardrails.quota_check(tenant)
    if not conversation.turns or conversation.turns[-1].role != "user":
        raise ValueError("A turn needs the visitor's message last.")
    policy = agent.escalation_policy or {}
    variables = {k: str(v) for k, v in (agent.variables or {}).items()}
    company = variables.get("company_name") or getattr(tenant, "name", "") or "the company"
    variables["company_name"] = company
    facts_known, claims = _known_and_claimed(conversation)
    if facts_known.get("name"):
        variables.setdefault("contact_name", facts_known["name"])

    latest = Turn("user", conversation.turns[-1].text[: settings.AGENT_MAX_INPUT_CHARS])
    earlier = conversation.turns[:-1]
    provider_name, credentials, fallback_reason = resolve_provider(agent)
    provider = get_provider(provider_name, credentials)
    caps = capabilities_of(provider)
    if caps.waits_on_network:  # a local responder has no outage to wait out
        provider = Breaker(getattr(tenant, "schema_name", ""), provider_name).guard(provider)
    model = agent.model or caps.default_model

    def count(text: str) -> int:
        return count_tokens(text, model)

    audit: dict[str, Any] = {
        "agent_id": agent.pk,
        "prompt_version": agent.prompt_version,
        "provider": provider_name,
        "model": model,
        "channel": conversation.channel,
        "min_similarity": agent.min_similarity,
        "flags": {"injection_attempt": guardrails.looks_like_injection(latest.text)},
    }
    if fallback_reason:
        audit["provider_fallback"] = fallback_reason

    # Older turns beyond the history budget are folded into the rolling summary.
    older, recent = memory.split_history([*earlier, latest], budget=settings.AGENT_HISTORY_BUDGET, count=count)
    summary = conversation.summary
    if older:
        summary = _summarize(provider, caps, model, summary, older)
    audit["memory"] = {
        "folded_turns": len(older),
        "summary_chars": len(summary),
        "contact_facts": sorted(facts_known),
        "claims": sorted(claims),
    }

    ctx = ToolContext(
        knowledge_base_ids=list(agent.knowledge_bases.values_list("pk", flat=True)),
        contact=conversation.contact,
        attributes=dict(conversation.attributes),
        transcript_hint=latest.text[:1000],
    )
    kind = smalltalk.classify(latest.text)
    text = ""
    citations: list[Citation] = []
    tool_calls: list[dict[str, Any]] = []
    prompt_tokens = completion_tokens = 0
    decision: Decision
    reason = ""
    failed = False  # the provider broke off: the model's turn (its tools' wishes included) is dropped

    restrictions = guidance.restrictions(list(agent.guidance_rules or []))
    restricted = guidance.violated(restrictions, latest.text)
    # A draft for staff (for_staff) is written for the person already there: no hand-over.
    trigger = None if conversation.for_staff else _hand_over_trigger(policy, conversation, latest, restricted)

    if trigger:
        decision, reason, text = "escalate", trigger, escalation_text(agent.language)
        ctx.escalation_reason = trigger
        audit["retrieval"] = {"skipped": "escalation"}
    elif restricted is not None:
        decision, reason, text = "abstained", f"guidance rule: {restricted.rule}", restricted_text(agent.language)
        audit["retrieval"] = {"skipped": "guidance rule"}
    else:
        query = latest.text if kind else standalone_query(recent[:-1], latest.text)
        corrections: dict[str, str] = {}
        if not kind and settings.AGENT_SPELLING_CORRECTION:
            spelled = correct_spelling(query, ctx.knowledge_base_ids)
            query, corrections = spelled.text, spelled.corrections
        hits = search(query=query, knowledge_base_ids=ctx.knowledge_base_ids, top_k=agent.top_k) if not kind else []
        ctx.context, sanitized = _context_from_hits(hits)
        best = max((c.similarity for c in ctx.context if c.similarity is not None), default=None)
        unknown = unknown_query_words(query, ctx.knowledge_base_ids) if hits else ()
        audit["retrieval"] = {
            "query": query,
            "spelling_corrections": corrections,
            "best_similarity": best,
            "unknown_words": list(unknown),
            "sanitized_chunks": sanitized,
            "chunks": [
                {
                    "ref": c.index,
                    "chunk_id": c.chunk_id,
                    "source_id": c.source_id,
                    "title": c.title,
                    "score": round(c.score, 6),
                    "similarity": None if c.similarity is None else round(c.similarity, 4),
                }
                for c in ctx.context
            ],
        }
        below = not kind and (best is None or best < agent.min_similarity)
        if below:
            # Nothing relevant enough: the model gets no reference material, so it cannot
            # ground an answer; it may still use tools (hand over, take a lead). A provider
            # that abstains without context (the offline responder) is not asked at all.
            audit["retrieval"]["below_threshold"] = True
            ctx.context = []
        if below and caps.abstains_without_context:
            decision, reason, text = "abstained", BELOW_THRESHOLD, abstention_text(company, agent.language)
        else:
            parts = build_prompt(
                agent_name=agent.name,
                instructions=agent.instructions,
                guidance_rules=list(agent.guidance_rules or []),
                variables=variables,
                language=agent.language,
                summary=summary,
                contact_facts=facts_known,
                claims=claims,
                context=ctx.context,
                turns=recent,
                count=count,
            )
            request = ChatRequest(
                messages=parts.messages,
                model=model,
                temperature=agent.temperature,
                max_tokens=agent.max_tokens,
                tools=allowed_specs(list(agent.tools or [])) if caps.tools else [],
                query=query,
                turns=parts.turns,
                context=parts.context,
                unknown_words=unknown if ctx.context else (),
                summary=summary,
                contact_facts=facts_known,
                claims=claims,
                language=agent.language,
                company_name=company,
            )
            audit["prompt_tokens_budget"] = {
                "system": parts.system_tokens,
                "context": parts.context_tokens,
                "history": parts.history_tokens,
            }
            finish = ""
            streamed_leak = False
            # Text is held back until it cites a passage it was given: an answer that will be
            # replaced by an abstention (no citation) is never streamed. Once grounded, the
            # rest streams as it comes, watched for prompt leaks.
            held = ""
            grounded = withheld = False
            leaks = guardrails.LeakCheck(parts.secret_parts)
            for _round in range(settings.AGENT_MAX_TOOL_ROUNDS + 1):
                calls: list[ToolCall] = []
                round_text = ""
                if caps.waits_on_network:
                    release_connection()  # nothing to read here while the remote model works
                try:
                    for event in provider.stream(request):
                        if isinstance(event, TextDelta):
                            round_text += event.text
                            if leaks.streamed(text + round_text):
                                streamed_leak = True
                            elif guidance.violated(restrictions, text + round_text) is not None:
                                withheld = True  # off-limits: nothing more streams (checked below)
                            elif not streamed_leak and not withheld:
                                held += event.text
                                if not grounded:
                                    grounded = bool(_parse_citations(text + round_text, ctx.context)[1])
                                if grounded:
                                    yield Delta(held)
                                    held = ""
                        elif isinstance(event, ToolCall):
                            calls.append(event)
                        elif isinstance(event, Usage):
                            prompt_tokens += event.prompt_tokens
                            completion_tokens += event.completion_tokens
                        elif isinstance(event, Finish):
                            finish = event.reason
                except ProviderError as exc:
                    audit["provider_error"] = str(exc)
                    if isinstance(exc, CircuitOpen):
                        audit["flags"]["circuit_open"] = True
                    round_text, calls, finish = "", [], "error"
                text += round_text
                if not calls or finish == "error":
                    break
                request.messages = [
                    *request.messages,
                    {
                        "role": "assistant",
                        "content": round_text or None,
                        "tool_calls": [
                            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                            for c in calls
                        ],
                    },
                ]
                for call in calls:
                    outcome = run_tool(
                        call.name,
                        call.arguments,
                        enabled=list(agent.tools or []),
                        ctx=ctx,
                        dry_run=conversation.dry_run,
                    )
                    tool_calls.append(outcome.summary)
                    request.messages.append({"role": "tool", "tool_call_id": call.id, "content": outcome.content})
                request.context = list(ctx.context)
                if ctx.escalation_reason:
                    break
            audit["finish_reason"] = finish
            failed = finish == "error"
            text, citations = _parse_citations(text, ctx.context)
            if streamed_leak or leaks(text):
                decision, reason, text, citations = (
                    "abstained",
                    "answer repeated the system prompt",
                    refusal_text(agent.language),
                    [],
                )
                audit["flags"]["prompt_leak_blocked"] = True
            elif (broken := guidance.violated(restrictions, text)) is not None:
                # The answer brought up a topic a guidance rule forbids: it is not sent.
                audit["flags"]["guidance_blocked"] = broken.rule
                citations = []
                if broken.hand_over:
                    decision, reason, text = (
                        "escalate",
                        f"guidance rule: {broken.rule}",
                        escalation_text(agent.language),
                    )
                    ctx.escalation_reason = reason
                else:
                    decision, reason, text = (
                        "abstained",
                        f"guidance rule: {broken.rule}",
                        restricted_text(agent.language),
                    )
            elif ctx.escalation_reason:
                decision, reason = "escalate", ctx.escalation_reason
                text = text or escalation_text(agent.language)
            elif finish == "error":
                decision, reason, text, citations = (
                    "abstained",
                    "the AI provider failed",
                    unavailable_text(agent.language),
                    [],
                )
            elif kind and not citations and finish != "no_answer":
                decision, reason = "answered", f"small talk ({kind})"
            elif below:
                decision, reason, text = "abstained", BELOW_THRESHOLD, abstention_text(company, agent.language)
                citations = []
            elif not citations:
                decision, reason, text = "abstained", UNCITED, abstention_text(company, agent.language)
            else:
                decision, reason = "answered", "grounded in cited reference material"

    # The knowledge had no answer (not a rule, a failure or a leak): a gap worth writing up.
    unanswered = decision == "abstained" and reason in (BELOW_THRESHOLD, UNCITED)
    limit = 0 if conversation.for_staff else escalation.abstention_limit(policy)
    if decision == "abstained" and limit and conversation.abstentions + 1 >= limit:
        decision = "escalate"
        reason = f"the AI could not answer {conversation.abstentions + 1} times in a row"
        ctx.escalation_reason = reason
        text = f"{text}\n\n{escalation_text(agent.language)}"

    handoff = ""
    if decision == "escalate":
        handoff = _handoff_summary(provider, caps, model, summary, [*earlier, latest], reason)
    facts = memory.extract_facts(latest.text)
    if facts and ctx.contact is None and not ctx.leads and not conversation.dry_run:
        # Without a model to call capture_lead, a visitor who leaves an email address or phone
        # number is recorded as a lead (with their earlier question as the need), under a
        # contact of their own: an address never selects an existing contact.
        identity = dict(facts)
        if any(k in ("email", "phone") for k in identity) and "capture_lead" in (agent.tools or []):
            need = next((t.text for t in reversed(earlier) if t.role == "user"), latest.text)
            ctx.leads.append(
                LeadWanted.cleaned(
                    name=identity.get("name", ""),
                    email=identity.get("email", ""),
                    phone=identity.get("phone", ""),
                    company=identity.get("company", ""),
                    need=need,
                )
            )
            tool_calls.append({"tool": "capture_lead", "ok": True, "arguments": sorted(identity), "auto": True})
    # What the turn learnt is known once it is written (apps.agents.commit); a dry run shows
    # what it would have looked at.
    audit["memory"]["learned"] = [k for k, _ in facts] if conversation.dry_run else []

    if not prompt_tokens and not completion_tokens:
        prompt_tokens = sum(count(t.text) for t in recent)
        completion_tokens = count(text)
    audit.update(
        decision=decision,
        reason=reason,
        cited_chunks=[c.chunk_id for c in citations],
        tool_calls=tool_calls,
        usage={"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        latency_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    usage = UsageSpent(requests=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    if failed:
        # The visitor is told the AI could not answer; nothing the broken turn wanted is kept.
        effects = TurnEffects()
    elif conversation.dry_run:
        effects = TurnEffects(usage=usage)
    else:
        unknown_list = tuple((audit.get("retrieval") or {}).get("unknown_words") or ())
        effects = TurnEffects(
            leads=tuple(ctx.leads),
            facts=tuple(facts),
            claims={k: v for k, v in facts if k in ("name", "email", "phone")},
            gap=GapWanted(latest.text, unknown_list, conversation.channel) if unanswered else None,
            usage=usage,
            counted=True,
        )
    yield TurnResult(
        text=text,
        decision=decision,
        citations=citations,
        tool_calls=tool_calls,
        audit=audit,
        summary=summary,
        folded_turns=len(older),
        attributes=dict(conversation.attributes) if failed else ctx.attributes,
        escalation_reason=ctx.escalation_reason,
        handoff_summary=handoff,
        unanswered=unanswered,
        effects=effects,
    )


def answer_turn(*, agent: Agent, tenant: Any, conversation: TurnInput) -> TurnResult:
    """`run_turn` without the stream: the final result (computed, not written)."""
    result = None
    for event in run_turn(agent=agent, tenant=tenant, conversation=conversation):
        if isinstance(event, TurnResult):
            result = event
    assert result is not None
    return result


__all__ = [
    "BELOW_THRESHOLD",
    "UNCITED",
    "Citation",
    "Decision",
    "Delta",
    "TurnInput",
    "TurnResult",
    "abstention_text",
    "answer_turn",
    "escalation_text",
    "refusal_text",
    "restricted_text",
    "run_turn",
    "unknown_query_words",
]
