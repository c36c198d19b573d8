"""Choosing a person for a waiting conversation: round robin or least busy, among a team's
members who are online and under their capacity. See docs/subsystems/routing.md.

The team's row is locked while choosing, so two conversations assigned at the same moment see
each other's assignment: capacity is never exceeded and round robin never skips or repeats.
A team without members stands for every staff member (role agent or above) of the workspace,
with the default capacity, so a new workspace works without configuring anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from apps.accounts.models import ROLE_RANK, Membership, Role
from apps.conversations.models import Conversation
from apps.tenants.db import connection

from . import presence
from .models import Team, TeamMember

DEFAULT_CAPACITY = 5
ACTIVE = (Conversation.Status.OPEN, Conversation.Status.PENDING)


@dataclass(frozen=True)
class Candidate:
    user_id: int
    capacity: int
    load: int


def members(team: Team) -> list[tuple[int, int]]:
    """(user id, capacity) of the team's members; all staff when it lists nobody."""
    rows = list(TeamMember.objects.filter(team=team).values_list("user_id", "capacity"))
    if rows:
        return rows
    staff = Membership.objects.filter(tenant__schema_name=connection.schema_name).values_list("user_id", "role")
    return [(user_id, DEFAULT_CAPACITY) for user_id, role in staff if ROLE_RANK[Role(role)] >= ROLE_RANK[Role.AGENT]]


def loads(user_ids: list[int]) -> dict[int, int]:
    counts = (
        Conversation.objects.filter(assignee_id__in=user_ids, owner=Conversation.Owner.HUMAN, status__in=ACTIVE)
        .values("assignee_id")
        .annotate(n=Count("id"))
    )
    found = {row["assignee_id"]: row["n"] for row in counts}
    return {u: int(found.get(u, 0)) for u in user_ids}


def candidates(team: Team) -> list[Candidate]:
    """Members online and under capacity, by user id."""
    rows = members(team)
    online = presence.statuses(connection.schema_name, [u for u, _ in rows])
    load = loads([u for u, _ in rows])
    return sorted(
        (Candidate(u, c, load[u]) for u, c in rows if online[u] == "online" and load[u] < c),
        key=lambda c: c.user_id,
    )


def choose(team: Team) -> int | None:
    """The user id to assign next by the team's strategy (call with the team row locked), or
    None when nobody can take it."""
    if team.strategy == Team.Strategy.MANUAL:
        return None
    pool = candidates(team)
    if not pool:
        return None
    if team.strategy == Team.Strategy.LEAST_BUSY:
        # Lowest share of capacity in use; ties go to the fewest conversations, then by id.
        return min(pool, key=lambda c: (c.load / c.capacity, c.load, c.user_id)).user_id
    after = team.rr_last_user_id or 0
    later = [c for c in pool if c.user_id > after]
    return (later or pool)[0].user_id


def queue(team: Team | None = None) -> list[Conversation]:
    """Conversations waiting for a person: highest priority first, then longest waiting. One
    without any message yet (an opened widget in an inbox without an AI) waits for nobody."""
    qs = Conversation.objects.filter(owner=Conversation.Owner.QUEUE, last_message_at__isnull=False).exclude(
        status=Conversation.Status.RESOLVED
    )
    if team is not None:
        qs = qs.filter(Q(team=team))
    return list(qs.order_by("-priority", "queued_at", "id"))
