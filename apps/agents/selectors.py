"""Reads from agents."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from .models import SETTABLE_FIELDS, STATS_COUNTS, Agent, AgentDailyStats, KnowledgeGap

STATS_MAX_DAYS = 366


def turn_queue(agent_id: int) -> str:
    """The queue of this agent's turns (`queue_for_provider`)."""
    return queue_for_provider(Agent.objects.filter(pk=agent_id).values_list("provider", flat=True).first() or "")


def queue_for_provider(provider: str) -> str:
    """`llm` (a thread pool, many turns waiting on a remote model at once) for a provider that
    waits on the network, else `llm_local` (processes sized to the cores, for a responder
    that computes here). An agent whose provider lacks its credentials answers with the
    offline responder, on the queue of the provider it names."""
    from .providers import PROVIDER_MODULES, capabilities_for

    if provider in PROVIDER_MODULES and capabilities_for(provider).waits_on_network:
        return "llm"
    return "llm_local"


def agent_list() -> QuerySet[Agent]:
    return Agent.objects.prefetch_related("knowledge_bases")


EXPORT_FORMAT = "syntera.agent"
EXPORT_VERSION = 1


def agent_export(agent: Agent) -> dict[str, Any]:
    """The agent's settings as a portable document (`agents.services.agent_import` reads it
    back, in this workspace or another): knowledge bases by name, no ids, no credentials."""
    settings = {f: getattr(agent, f) for f in SETTABLE_FIELDS}
    settings["knowledge_bases"] = [{"name": kb.name} for kb in agent.knowledge_bases.order_by("name", "pk")]
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "prompt_version": agent.prompt_version,
        "agent": settings,
    }


def knowledge_gaps(agent: Agent, *, dismissed: bool = False) -> QuerySet[KnowledgeGap]:
    """The agent's unanswered questions, most asked first (dismissed ones only if asked for)."""
    return agent.knowledge_gaps.filter(dismissed_at__isnull=not dismissed)


def _rates(row: dict[str, Any]) -> dict[str, Any]:
    """A stats row with its shares of the turns and the mean latency (None without turns)."""
    turns = row["turns"]

    def share(n: int) -> float | None:
        return round(n / turns, 4) if turns else None

    out = {k: v for k, v in row.items() if k != "latency_ms"}
    out.update(
        answer_rate=share(row["answered"]),
        abstention_rate=share(row["abstained"]),
        escalation_rate=share(row["escalated"]),
        avg_latency_ms=round(row["latency_ms"] / turns) if turns else None,
        helpful_rate=round(row["helpful"] / rated, 4) if (rated := row["helpful"] + row["unhelpful"]) else None,
    )
    return out


def _sum(rows: list[AgentDailyStats]) -> dict[str, int]:
    out = {name: sum(getattr(r, name) for r in rows) for name in STATS_COUNTS}
    out["slowest_ms"] = max((r.slowest_ms for r in rows), default=0)
    return out


def agent_performance(agent: Agent, *, days: int = 30) -> dict[str, Any]:
    """The agent's last `days` days (UTC, today included): totals with rates, every day (days
    without turns as zeros, oldest first) and every channel (busiest first)."""
    days = max(1, min(days, STATS_MAX_DAYS))
    until = timezone.now().date()
    since = until - timedelta(days=days - 1)
    rows = list(AgentDailyStats.objects.filter(agent=agent, day__gte=since, day__lte=until))
    per_day: dict[date, list[AgentDailyStats]] = defaultdict(list)
    per_channel: dict[str, list[AgentDailyStats]] = defaultdict(list)
    for row in rows:
        per_day[row.day].append(row)
        per_channel[row.channel].append(row)
    by_day = []
    for n in range(days):
        day = since + timedelta(days=n)
        by_day.append({"day": day.isoformat(), **_rates(_sum(per_day.get(day, [])))})
    by_channel = [{"channel": channel, **_rates(_sum(group))} for channel, group in per_channel.items()]
    by_channel.sort(key=lambda r: (-r["turns"], r["channel"]))
    return {
        "days": days,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "totals": _rates(_sum(rows)),
        "by_day": by_day,
        "by_channel": by_channel,
    }


def open_gap_counts() -> dict[int, int]:
    """Per agent, its unanswered questions not dismissed (for the agents list)."""
    rows = KnowledgeGap.objects.filter(dismissed_at__isnull=True).values("agent_id").annotate(open=Count("id"))
    return {r["agent_id"]: r["open"] for r in rows}


def recent_turns(days: int = 30) -> dict[int, dict[str, int]]:
    """Per agent, its turns and answers in the last `days` days (for the agents list)."""
    since = timezone.now().date() - timedelta(days=days - 1)
    rows = (
        AgentDailyStats.objects.filter(day__gte=since)
        .values("agent_id")
        .annotate(all_turns=Sum("turns"), all_answered=Sum("answered"))
    )
    return {r["agent_id"]: {"turns": r["all_turns"], "answered": r["all_answered"]} for r in rows}
