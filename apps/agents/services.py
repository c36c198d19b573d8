"""Writes to agents: create, update (with prompt versioning), delete; provider credentials.
Every change is audited. See docs/subsystems/agents.md."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.audit.services import audit_action
from apps.knowledge import services as knowledge
from apps.knowledge.models import KnowledgeBase, Source
from syntera.errors import ApplicationError

from . import credentials
from .models import (
    SETTABLE_FIELDS,
    STATS_COUNTS,
    TOOL_NAMES,
    VERSIONED_FIELDS,
    Agent,
    AgentDailyStats,
    KnowledgeGap,
    PromptVersion,
    ProviderCredential,
)
from .providers import PROVIDER_MODULES, capabilities_for


def _require_admin(editor: Actor) -> None:
    if not editor.has_role(Role.ADMIN):
        raise ApplicationError("Only owners and admins change agents.", code="permission_denied", status_code=403)


def _snapshot(agent: Agent) -> dict[str, Any]:
    data = {f: getattr(agent, f) for f in VERSIONED_FIELDS}
    data["knowledge_bases"] = sorted(agent.knowledge_bases.values_list("pk", flat=True))
    return data


def _validate(fields: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    tools = fields.get("tools")
    if tools is not None:
        unknown = [t for t in tools if t not in TOOL_NAMES]
        if unknown:
            errors["tools"] = [f"Unknown tools: {', '.join(map(str, unknown))}. Known: {', '.join(TOOL_NAMES)}."]
    provider = fields.get("provider")
    if provider is not None and provider not in PROVIDER_MODULES:
        errors["provider"] = [f"Unknown provider. Known: {', '.join(PROVIDER_MODULES)}."]
    if errors:
        raise ApplicationError("Invalid agent settings.", code="invalid", status_code=400, fields=errors)


def _set_knowledge_bases(agent: Agent, kb_ids: list[int]) -> None:
    kbs = list(KnowledgeBase.objects.filter(pk__in=kb_ids))
    missing = sorted(set(kb_ids) - {kb.pk for kb in kbs})
    if missing:
        raise ApplicationError(
            "Unknown knowledge bases.",
            code="invalid",
            status_code=400,
            fields={"knowledge_bases": [f"No knowledge base with id {', '.join(map(str, missing))}."]},
        )
    agent.knowledge_bases.set(kbs)


def _new_version(agent: Agent, editor: Actor) -> PromptVersion:
    last = agent.versions.order_by("-number").values_list("number", flat=True).first() or 0
    agent.prompt_version = last + 1
    agent.save(update_fields=["prompt_version", "updated_at"])
    return PromptVersion.objects.create(
        agent=agent, number=agent.prompt_version, snapshot=_snapshot(agent), created_by_label=editor.label
    )


@transaction.atomic
def agent_create(*, editor: Actor, name: str, knowledge_bases: list[int] | None = None, **fields: Any) -> Agent:
    _require_admin(editor)
    _validate(fields)
    agent = Agent.objects.create(
        name=name, created_by=editor.user, **{k: v for k, v in fields.items() if k in SETTABLE_FIELDS}
    )
    if knowledge_bases:
        _set_knowledge_bases(agent, knowledge_bases)
    version = _new_version(agent, editor)
    audit_action(editor, "agents.agent_created", agent, {"name": name, "prompt_version": version.number})
    return agent


@transaction.atomic
def agent_update(*, editor: Actor, agent: Agent, knowledge_bases: list[int] | None = None, **fields: Any) -> Agent:
    """Change an agent. A change to what shapes its answers makes a new prompt version."""
    _require_admin(editor)
    _validate(fields)
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    before = _snapshot(agent)
    for key, value in fields.items():
        if key in SETTABLE_FIELDS:
            setattr(agent, key, value)
    agent.save()
    if knowledge_bases is not None:
        _set_knowledge_bases(agent, knowledge_bases)
    after = _snapshot(agent)
    changed = sorted(k for k in after if before.get(k) != after.get(k))
    if changed:
        _new_version(agent, editor)
    audit_action(
        editor,
        "agents.agent_updated",
        agent,
        {
            "fields": sorted(set(fields) | ({"knowledge_bases"} if knowledge_bases is not None else set())),
            "prompt_version": agent.prompt_version,
        },
    )
    return agent


@transaction.atomic
def agent_restore_version(*, editor: Actor, agent: Agent, number: int) -> Agent:
    """Put back the settings of prompt version `number`: they become a new version (history
    is never rewritten), unless they are the current ones. Knowledge bases deleted since are
    left out."""
    _require_admin(editor)
    version = agent.versions.filter(number=number).first()
    if version is None:
        raise ApplicationError(f"Agent {agent.pk} has no prompt version {number}.", code="not_found", status_code=404)
    snapshot = dict(version.snapshot)
    wanted = [int(k) for k in snapshot.pop("knowledge_bases", []) or []]
    kept = sorted(KnowledgeBase.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    fields = {k: v for k, v in snapshot.items() if k in VERSIONED_FIELDS}
    agent = agent_update(editor=editor, agent=agent, knowledge_bases=kept, **fields)
    audit_action(
        editor,
        "agents.version_restored",
        agent,
        {
            "restored": number,
            "prompt_version": agent.prompt_version,
            "missing_knowledge_bases": sorted(set(wanted) - set(kept)),
        },
    )
    return agent


@transaction.atomic
def agent_duplicate(*, editor: Actor, agent: Agent, name: str = "") -> Agent:
    """A new agent with every setting of `agent` (knowledge bases, tools, guidance,
    escalation policy), starting its own history at version 1. Its conversations, stats,
    unanswered questions and batch tests stay with the original."""
    limit = Agent._meta.get_field("name").max_length or 120
    name = " ".join((name or "").split()) or f"{agent.name[: limit - 7]} (copy)"
    if len(name) > limit:
        raise ApplicationError(
            f"The name is at most {limit} characters.",
            code="invalid",
            status_code=400,
            fields={"name": [f"At most {limit} characters."]},
        )
    fields = {f: getattr(agent, f) for f in SETTABLE_FIELDS if f != "name"}
    copy = agent_create(
        editor=editor,
        name=name,
        knowledge_bases=list(agent.knowledge_bases.values_list("pk", flat=True)),
        **fields,
    )
    audit_action(editor, "agents.agent_duplicated", copy, {"from_agent_id": agent.pk, "name": copy.name})
    return copy


@transaction.atomic
def agent_import(
    *, editor: Actor, settings: dict[str, Any], knowledge_base_names: list[str]
) -> tuple[Agent, list[str]]:
    """A new agent from exported settings (`selectors.agent_export`, already validated by the
    caller): knowledge bases are found by name in this workspace; the names not found are
    returned (the agent is created without them)."""
    names = list(dict.fromkeys(knowledge_base_names))
    by_name: dict[str, int] = {}
    for pk, kb_name in KnowledgeBase.objects.filter(name__in=names).order_by("pk").values_list("pk", "name"):
        by_name.setdefault(kb_name, pk)
    missing = [n for n in names if n not in by_name]
    agent = agent_create(editor=editor, knowledge_bases=[by_name[n] for n in names if n in by_name], **settings)
    audit_action(editor, "agents.agent_imported", agent, {"name": agent.name, "missing_knowledge_bases": missing})
    return agent, missing


def agent_delete(*, editor: Actor, agent: Agent) -> None:
    _require_admin(editor)
    audit_action(editor, "agents.agent_deleted", None, {"agent_id": agent.pk, "name": agent.name})
    agent.delete()


@transaction.atomic
def provider_credential_set(
    *, editor: Actor, provider: str, api_key: str, base_url: str = "", organization: str = ""
) -> ProviderCredential:
    """Store the tenant's credentials for `provider` (the key encrypted). An empty `api_key`
    keeps the stored one and updates the rest, except the base URL: the stored key is never
    sent to a new address, so a changed base URL needs the key entered again. A base URL must
    lead to a public address, or one the operator's OUTBOUND_ALLOWLIST admits (syntera/outbound/)."""
    _require_admin(editor)
    if provider not in PROVIDER_MODULES or not capabilities_for(provider).needs_credentials:
        raise ApplicationError("Unknown provider.", code="invalid", status_code=400, fields={"provider": ["Unknown."]})
    base_url = base_url.strip()
    stored = ProviderCredential.objects.select_for_update().filter(provider=provider).first()
    moved = stored is not None and not credentials.same_endpoint(stored.base_url, base_url)
    if moved and stored is not None and stored.api_key_encrypted and not api_key:
        message = "Enter the API key again to change the base URL: the stored key is never sent to a new address."
        raise ApplicationError(message, code="api_key_required", fields={"api_key": [message]})
    credentials.check_base_url(base_url)
    credential = credentials.credential_set(
        provider=provider, api_key=api_key, base_url=base_url, organization=organization, label=editor.label
    )
    audit_action(
        editor,
        "agents.credentials_set",
        credential,
        {"provider": provider, "key_changed": bool(api_key), "base_url_changed": moved},
    )
    return credential


def provider_credential_delete(*, editor: Actor, credential: ProviderCredential) -> None:
    _require_admin(editor)
    audit_action(editor, "agents.credentials_deleted", None, {"provider": credential.provider})
    credential.delete()


# --- knowledge gaps -------------------------------------------------------------------------


def _gap_key(question: str) -> str:
    normalised = " ".join(re.findall(r"[\w']+", question.lower()))
    return hashlib.sha256(normalised.encode()).hexdigest()


def knowledge_gap_record(*, agent: Agent, question: str, unknown_words: list[str], channel: str = "") -> KnowledgeGap:
    """Count a question the agent could not answer (by its normalised wording); asking a
    dismissed one again brings it back. One statement (an abstaining turn's commit runs it)."""
    question = " ".join(question.replace("\x00", "").split())[:500]
    key = _gap_key(question)
    now = timezone.now()
    words, channel = unknown_words[:32], channel[:20]
    table = connection.ops.quote_name(KnowledgeGap._meta.db_table)
    sql = (
        f"INSERT INTO {table} (agent_id, key, question, unknown_words, channel, count, first_asked_at, "  # noqa: S608 (the model's own names)
        "last_asked_at) VALUES (%s, %s, %s, %s::jsonb, %s, 1, %s, %s) ON CONFLICT (agent_id, key) DO UPDATE SET "
        f"count = {table}.count + 1, last_asked_at = EXCLUDED.last_asked_at, unknown_words = EXCLUDED.unknown_words, "
        "channel = EXCLUDED.channel, dismissed_at = NULL RETURNING id, question, count, first_asked_at"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [agent.pk, key, question, json.dumps(words), channel, now, now])
        pk, stored_question, count, first_asked_at = cursor.fetchone()
    row = {
        "id": pk,
        "agent_id": agent.pk,
        "key": key,
        "question": stored_question,
        "unknown_words": words,
        "channel": channel,
        "count": count,
        "first_asked_at": first_asked_at,
        "last_asked_at": now,
        "dismissed_at": None,
    }
    names = [field.attname for field in KnowledgeGap._meta.concrete_fields]
    gap = KnowledgeGap.from_db(connection.alias, names, [row[name] for name in names])
    gap.agent = agent
    return gap


def knowledge_gap_dismiss(*, editor: Actor, gap: KnowledgeGap) -> None:
    """Hide a gap (its answer was written, or it is out of scope) until it is asked again."""
    _require_admin(editor)
    gap.dismissed_at = timezone.now()
    gap.save(update_fields=["dismissed_at"])
    audit_action(editor, "agents.knowledge_gap_dismissed", gap, {"agent_id": gap.agent_id, "count": gap.count})


ANSWERED_FAQ_TITLE = "Answered questions"


def knowledge_gap_answer(
    *, editor: Actor, gap: KnowledgeGap, answer: str, question: str = "", knowledge_base_id: int | None = None
) -> Source:
    """Write the answer to an unanswered question into the agent's knowledge: a question and
    answer added to the "Answered questions" FAQ of one of the agent's knowledge bases (made
    on first use; the first of them unless `knowledge_base_id` says which), indexed again at
    once; the gap is then dismissed until it is asked again."""
    _require_admin(editor)
    bases = list(gap.agent.knowledge_bases.order_by("pk"))
    if not bases:
        raise ApplicationError(
            "This agent has no knowledge base to write the answer into; attach one first.",
            code="no_knowledge_base",
        )
    kb = next((b for b in bases if b.pk == knowledge_base_id), None) if knowledge_base_id is not None else bases[0]
    if kb is None:
        raise ApplicationError(
            "Answers go into one of the agent's own knowledge bases.",
            fields={"knowledge_base": ["Not a knowledge base of this agent."]},
        )
    entry = {"question": " ".join((question or gap.question).split()), "answer": (answer or "").strip()}
    if not entry["answer"]:
        raise ApplicationError("Write the answer.", fields={"answer": ["Required."]})
    with transaction.atomic():
        faq = (
            Source.objects.select_for_update()
            .filter(knowledge_base=kb, type=Source.Type.FAQ, title=ANSWERED_FAQ_TITLE)
            .order_by("pk")
            .first()
        )
        if faq is None:
            faq = knowledge.source_add_faq(editor=editor, kb=kb, entries=[entry], title=ANSWERED_FAQ_TITLE)
        else:
            # The same question answered again replaces its earlier answer.
            kept = [
                {"question": e.question, "answer": e.answer}
                for e in faq.faq_entries.all()
                if e.question.casefold() != entry["question"].casefold()
            ]
            faq = knowledge.faq_replace_entries(editor=editor, source=faq, entries=[*kept, entry])
        gap.dismissed_at = timezone.now()
        gap.save(update_fields=["dismissed_at"])
        audit_action(
            editor,
            "agents.knowledge_gap_answered",
            gap,
            {"agent_id": gap.agent_id, "count": gap.count, "knowledge_base_id": kb.pk, "source_id": faq.pk},
        )
    return faq


# --- performance ----------------------------------------------------------------------------

DECISIONS = ("answered", "abstained", "escalate")


def _stats_add(*, agent_id: int, day: date, channel: str, slowest_ms: int = 0, **deltas: int) -> None:
    """Add `deltas` to the agent's row for `day` and `channel`: one INSERT ... ON CONFLICT
    statement, so concurrent workers never lose a count (a count never goes below zero)."""
    names = [name for name in deltas if name in STATS_COUNTS]
    if len(names) != len(deltas):
        raise ValueError(f"unknown counters {sorted(set(deltas) - set(names))}")
    table = connection.ops.quote_name(AgentDailyStats._meta.db_table)
    added = ", ".join(f"{name} = GREATEST(0, {table}.{name} + %s)" for name in names)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (agent_id, day, channel, {', '.join(STATS_COUNTS)}, slowest_ms) "  # noqa: S608
            f"VALUES (%s, %s, %s, {', '.join(['%s'] * len(STATS_COUNTS))}, %s) "
            f"ON CONFLICT (agent_id, day, channel) DO UPDATE SET {added}, "
            f"slowest_ms = GREATEST({table}.slowest_ms, EXCLUDED.slowest_ms)",
            [
                agent_id,
                day,
                channel[:20],
                *(max(0, deltas.get(name, 0)) for name in STATS_COUNTS),
                max(0, slowest_ms),
                *(deltas[name] for name in names),
            ],
        )


def agent_stats_record(
    *,
    agent: Agent,
    channel: str,
    decision: str,
    unanswered: bool,
    prompt_tokens: int,
    completion_tokens: int,
    latency_ms: float,
) -> None:
    """Count one turn that reached a visitor on the agent's row for today (UTC) and `channel`."""
    if decision not in DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    ms = max(0, round(latency_ms))
    _stats_add(
        agent_id=agent.pk,
        day=timezone.now().date(),
        channel=channel,
        slowest_ms=ms,
        turns=1,
        answered=int(decision == "answered"),
        abstained=int(decision == "abstained"),
        escalated=int(decision == "escalate"),
        unanswered=int(unanswered),
        prompt_tokens=max(0, prompt_tokens),
        completion_tokens=max(0, completion_tokens),
        latency_ms=ms,
    )


def agent_feedback_count(*, agent_id: int, channel: str, helpful: bool, day: date, undo: bool = False) -> None:
    """Count a visitor's verdict on an answer on `day`'s row, or take back one given that day."""
    _stats_add(
        agent_id=agent_id, day=day, channel=channel, **{"helpful" if helpful else "unhelpful": -1 if undo else 1}
    )
