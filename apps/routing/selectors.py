"""Routing reads for the dashboard and the API: teams with their members' presence and load,
the human queue with positions and waiting times, staff presence, SLA events.
See docs/subsystems/routing.md.

Everything runs in the tenant's schema (the request's); people come from the public schema's
memberships of `tenant`. Presence keys carry the schema (presence.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, QuerySet, prefetch_related_objects
from django.utils import timezone

from apps.accounts.models import ROLE_RANK, Membership, Role
from apps.conversations.models import Conversation
from apps.tenants.db import connection

from . import assignment, hours, presence
from .models import Intent, RoutingRule, SLAEvent, Team, TeamMember

SLA_STATES = ("open", "met", "breached")


def _schema() -> str:
    return str(connection.schema_name)


# --- people -----------------------------------------------------------------------------------


def staff_list(*, tenant: Any) -> list[Membership]:
    """Members who can take conversations (agent role and up), by email."""
    rows = Membership.objects.filter(tenant=tenant).select_related("user").order_by("user__email")
    return [m for m in rows if m.user.is_active and ROLE_RANK[Role(m.role)] >= ROLE_RANK[Role.AGENT]]


def staff_ids(*, tenant: Any) -> set[int]:
    return {m.user_id for m in staff_list(tenant=tenant)}


def person_label(user: Any) -> str:
    return str(user.full_name or user.email)


def presence_list(*, tenant: Any, status: str = "") -> list[dict[str, Any]]:
    """Staff with their presence (online / away / offline)."""
    people = staff_list(tenant=tenant)
    states = presence.statuses(_schema(), [m.user_id for m in people])
    rows = [
        {
            "user": m.user_id,
            "email": m.user.email,
            "name": m.user.full_name,
            "role": m.role,
            "status": states[m.user_id],
        }
        for m in people
    ]
    return [r for r in rows if r["status"] == status] if status else rows


def presence_of(*, tenant: Any, user: Any, role: str) -> dict[str, Any]:
    return {
        "user": user.pk,
        "email": user.email,
        "name": user.full_name,
        "role": role,
        "status": presence.status_of(_schema(), user.pk),
    }


# --- teams ------------------------------------------------------------------------------------


def team_list() -> QuerySet[Team]:
    return Team.objects.prefetch_related(Prefetch("members", queryset=TeamMember.objects.order_by("user_id")))


def team_get(team_id: int) -> Team | None:
    return team_list().filter(pk=team_id).first()


def default_team_id() -> int | None:
    """The team a conversation without one waits in, without creating it (see
    services.default_team)."""
    team = Team.objects.filter(is_default=True).first() or Team.objects.order_by("id").first()
    return team.pk if team else None


@dataclass(frozen=True)
class MemberRow:
    user_id: int
    email: str
    name: str
    capacity: int
    load: int
    status: str


def team_members(team: Team) -> list[MemberRow]:
    """A team's listed members with their open conversations and presence."""
    from apps.accounts.models import User

    members = list(team.members.all())
    ids = [m.user_id for m in members]
    users = {u.pk: u for u in User.objects.filter(pk__in=ids)}
    loads = assignment.loads(ids)
    states = presence.statuses(_schema(), ids)
    return [
        MemberRow(
            user_id=m.user_id,
            email=users[m.user_id].email if m.user_id in users else "",
            name=users[m.user_id].full_name if m.user_id in users else "",
            capacity=m.capacity,
            load=loads[m.user_id],
            status=states[m.user_id],
        )
        for m in members
    ]


def team_is_open(team: Team, at: datetime | None = None) -> bool:
    return hours.is_open(team.business_hours, at or timezone.now())


# --- intents and rules ------------------------------------------------------------------------


def intent_list() -> QuerySet[Intent]:
    return Intent.objects.order_by("name")


def rule_list() -> QuerySet[RoutingRule]:
    return RoutingRule.objects.select_related("intent", "team", "agent").order_by("position", "id")


# --- the queue --------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueEntry:
    conversation: Conversation
    position: int  # in its team's queue, from 1
    team_id: int | None  # the team it waits for (no team: the default team)
    waited_seconds: int


def queue_entries(*, team_id: int | None = None) -> list[QueueEntry]:
    """Conversations waiting for a person, in the order they are offered (priority, then
    waiting time), each with its position in its team's queue. A conversation without a team
    waits for the default team."""
    waiting = assignment.queue()
    prefetch_related_objects(waiting, "team", "inbox", "contact", "assignee")
    fallback = default_team_id()
    now = timezone.now()
    seen: dict[int | None, int] = {}
    entries = []
    for conversation in waiting:
        effective = conversation.team_id or fallback
        seen[effective] = seen.get(effective, 0) + 1
        since = conversation.queued_at or conversation.created_at
        entries.append(
            QueueEntry(
                conversation=conversation,
                position=seen[effective],
                team_id=effective,
                waited_seconds=max(0, int((now - since).total_seconds())),
            )
        )
    if team_id is not None:
        entries = [e for e in entries if e.team_id == team_id]
    return entries


def queue_entry(conversation: Conversation) -> QueueEntry | None:
    """This conversation's place in the queue, if it is waiting."""
    if conversation.owner != Conversation.Owner.QUEUE:
        return None
    return next((e for e in queue_entries() if e.conversation.pk == conversation.pk), None)


# --- SLA --------------------------------------------------------------------------------------


def sla_state(event: SLAEvent) -> str:
    if event.breached_at:
        return "breached"
    if event.met_at:
        return "met"
    return "open"


def sla_by_state(qs: QuerySet[SLAEvent], state: str) -> QuerySet[SLAEvent]:
    """open: neither met nor breached; met: met in time; breached: passed unmet (perhaps met
    late). Anything else: all."""
    if state == "open":
        return qs.filter(breached_at__isnull=True, met_at__isnull=True)
    if state == "met":
        return qs.filter(met_at__isnull=False, breached_at__isnull=True)
    if state == "breached":
        return qs.filter(breached_at__isnull=False)
    return qs


def sla_event_list(
    *,
    kind: str = "",
    state: str = "",
    breached: bool | None = None,
    team_id: int | None = None,
    since: datetime | None = None,
) -> QuerySet[SLAEvent]:
    """SLA events, the latest due first. `state`: open (neither met nor breached), met,
    breached; `since`: due at or after."""
    qs = sla_by_state(SLAEvent.objects.select_related("team").order_by("-due_at", "-id"), state)
    if kind:
        qs = qs.filter(kind=kind)
    if breached is not None:
        qs = qs.filter(breached_at__isnull=not breached)
    if team_id is not None:
        qs = qs.filter(team_id=team_id)
    if since is not None:
        qs = qs.filter(due_at__gte=since)
    return qs
