"""Routing writes: where a conversation goes (rules), the human queue, assignment, SLA.
See docs/subsystems/routing.md.

Routing decides, conversations acts: every ownership change goes through
`apps.conversations.services` (row lock, epoch bump, transcript event, domain event), so the
single-owner rule holds whatever the caller. Routing's decisions for conversations are in
`policy.py`; what follows a hand-over and the SLA clocks hear of it from the domain events
(`subscribers.py`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.audit.services import audit_action
from apps.conversations.models import Conversation
from apps.events import types as events
from apps.events.selectors import events_pending
from apps.events.services import emit
from syntera.errors import ApplicationError

from . import assignment, hours, selectors
from .models import Intent, RoutingRule, SLAEvent, Team, TeamMember

logger = logging.getLogger(__name__)

DEFAULT_WAIT_MINUTES = 3
# The events that may meet an SLA target (routing.subscribers.sla).
SLA_MEETING_EVENTS = ("message.created", "conversation.resolved")


def _require_admin(actor: Actor) -> None:
    if not actor.has_role(Role.ADMIN):
        raise ApplicationError("Only owners and admins change routing.", code="permission_denied", status_code=403)


# --- configuration ----------------------------------------------------------------------------


def default_team() -> Team:
    """The team conversations wait in when no rule names one (created on first need)."""
    team = Team.objects.filter(is_default=True).first() or Team.objects.order_by("id").first()
    if team is None:
        team, _ = Team.objects.get_or_create(name="Support", defaults={"is_default": True})
    return team


@transaction.atomic
def team_save(
    *, actor: Actor, team: Team | None = None, members: list[tuple[int, int]] | None = None, **fields: Any
) -> Team:
    """Create or change a team; `members` is the full list of (user id, capacity)."""
    _require_admin(actor)
    if "business_hours" in fields:
        try:
            fields["business_hours"] = hours.validate(fields["business_hours"])
        except hours.HoursError as exc:
            raise ApplicationError(str(exc), code="invalid", fields={"business_hours": [str(exc)]}) from exc
    team = team or Team()
    for key, value in fields.items():
        setattr(team, key, value)
    if team.is_default:
        Team.objects.exclude(pk=team.pk).filter(is_default=True).update(is_default=False)
    team.save()
    if members is not None:
        if {u for u, _ in members} - selectors.staff_ids(tenant=actor.tenant):
            raise ApplicationError(
                "Team members must be staff (agent role or above) of this workspace.",
                code="invalid",
                fields={"members": ["Not staff of this workspace."]},
            )
        TeamMember.objects.filter(team=team).delete()
        TeamMember.objects.bulk_create([TeamMember(team=team, user_id=u, capacity=max(1, c)) for u, c in members])
    audit_action(actor, "routing.team_saved", team, {"fields": sorted(fields), "members": len(members or [])})
    return team


def team_delete(*, actor: Actor, team: Team) -> None:
    _require_admin(actor)
    audit_action(actor, "routing.team_deleted", None, {"team_id": team.pk, "name": team.name})
    team.delete()


@transaction.atomic
def intent_save(*, actor: Actor, intent: Intent | None = None, **fields: Any) -> Intent:
    _require_admin(actor)
    intent = intent or Intent()
    for key, value in fields.items():
        setattr(intent, key, value)
    intent.save()
    audit_action(actor, "routing.intent_saved", intent, {"name": intent.name})
    return intent


def intent_delete(*, actor: Actor, intent: Intent) -> None:
    """Rules that name the intent go with it."""
    _require_admin(actor)
    audit_action(actor, "routing.intent_deleted", None, {"intent_id": intent.pk, "name": intent.name})
    intent.delete()


def rule_delete(*, actor: Actor, rule: RoutingRule) -> None:
    _require_admin(actor)
    audit_action(actor, "routing.rule_deleted", None, {"rule_id": rule.pk, "name": rule.name})
    rule.delete()


@transaction.atomic
def rule_save(*, actor: Actor, rule: RoutingRule | None = None, **fields: Any) -> RoutingRule:
    _require_admin(actor)
    rule = rule or RoutingRule()
    for key, value in fields.items():
        setattr(rule, key, value)
    if (rule.agent_id is None) == (rule.team_id is None):
        raise ApplicationError(
            "A rule routes to exactly one target: an AI agent or a team.",
            code="invalid",
            fields={"agent": ["Choose an agent or a team."], "team": ["Choose an agent or a team."]},
        )
    rule.save()
    audit_action(actor, "routing.rule_saved", rule, {"name": rule.name})
    return rule


# --- what follows a hand-over -------------------------------------------------------------------


def queue_position(conversation: Conversation) -> int:
    ahead = [c.pk for c in assignment.queue(conversation.team)]
    return ahead.index(conversation.pk) + 1 if conversation.pk in ahead else 0


def expected_wait_minutes(team: Team, position: int) -> int:
    """Position times the team's recent average wait (first response after queueing), shared by
    the people online; DEFAULT_WAIT_MINUTES when there is no history."""
    recent = Conversation.objects.filter(team=team, queued_at__isnull=False, first_response_at__isnull=False).order_by(
        "-queued_at"
    )[:50]
    waits = [
        (c.first_response_at - c.queued_at).total_seconds() / 60 for c in recent if c.first_response_at and c.queued_at
    ]
    average = sum(waits) / len(waits) if waits else DEFAULT_WAIT_MINUTES
    online = max(1, len(assignment.candidates(team)))
    return max(1, round(position * average / online))


def handoff_followup(*, conversation_id: int, queued_at: datetime) -> None:
    """After a conversation was handed to people (its `conversation.queued` event): start the
    SLA clocks from `queued_at`, tell the visitor what happens next (their place in the queue
    and the expected wait, or when the team is back), and try to assign someone. Nothing when
    the conversation left the queue meanwhile."""
    from apps.conversations import services as conversations

    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        if conversation.owner != Conversation.Owner.QUEUE:
            return
        team = conversation.team or default_team()
        _start_sla(
            conversation, team, SLAEvent.Kind.FIRST_RESPONSE, queued_at + timedelta(minutes=team.first_response_minutes)
        )
        _start_sla(conversation, team, SLAEvent.Kind.RESOLUTION, queued_at + timedelta(minutes=team.resolution_minutes))
        conversations.system_message(conversation, _next_step(conversation, team))
    try_assign(conversation_id=conversation_id)


def _next_step(conversation: Conversation, team: Team) -> str:
    now = timezone.now()
    if hours.is_open(team.business_hours, now):
        position = queue_position(conversation)
        minutes = expected_wait_minutes(team, position)
        return (
            f"I've passed your conversation to our team. You're number {position} in the queue; "
            f"the expected wait is about {minutes} minute{'s' if minutes != 1 else ''}."
        )
    reopen = hours.next_open(team.business_hours, now)
    when = f" We're back {reopen.astimezone(_tz(team)).strftime('%A at %H:%M')}." if reopen else ""
    return (
        (team.out_of_hours_message or "Our team is offline right now.")
        + when
        + (" Leave your email address here and we'll follow up by email.")
    )


def _tz(team: Team) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(str(team.business_hours.get("timezone") or "UTC"))


def _start_sla(conversation: Conversation, team: Team, kind: str, due_at: datetime) -> None:
    SLAEvent.objects.update_or_create(
        conversation=conversation,
        kind=kind,
        defaults={
            "team": team,
            "due_at": due_at,
            "breached_at": None,
            "met_at": None,
        },
    )


def try_assign(*, conversation_id: int) -> int | None:
    """Assign a waiting conversation by its team's strategy; the chosen user id or None."""
    from apps.conversations import services as conversations

    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        if conversation.owner != Conversation.Owner.QUEUE or conversation.status == Conversation.Status.RESOLVED:
            return None
        team = Team.objects.select_for_update().get(pk=(conversation.team or default_team()).pk)
        user_id = assignment.choose(team)
        if user_id is None:
            return None
        team.rr_last_user_id = user_id
        team.save(update_fields=["rr_last_user_id"])
        conversations.assign_to(conversation, user_id=user_id, by=None)
    return user_id


def assign_waiting() -> int:
    """Beat: offer waiting conversations (queue order) to people who came online."""
    assigned = 0
    for conversation in assignment.queue():
        if try_assign(conversation_id=conversation.pk) is None:
            continue
        assigned += 1
    return assigned


def sla_met(*, conversation_id: int, kind: str, at: datetime) -> int:
    """The conversation's open `kind` target was met at `at` (a person's first reply after the
    hand-over, or the resolve: their events). How many targets that closed."""
    return SLAEvent.objects.filter(conversation_id=conversation_id, kind=kind, met_at__isnull=True).update(met_at=at)


def sla_check() -> int:
    """Beat: mark SLA targets passed without being met; each breach is the domain event
    `sla.breached` (the staff pages and the audit trail subscribe; workflows may)."""
    now = timezone.now()
    breached = 0
    due = SLAEvent.objects.filter(breached_at__isnull=True, met_at__isnull=True, due_at__lte=now)
    for sla_id, conversation_id in due.values_list("pk", "conversation_id"):
        if events_pending(stream=f"conversation:{conversation_id}", types=SLA_MEETING_EVENTS):
            continue  # a reply or a resolve is on its way to `sla_met`: judge it next time
        with transaction.atomic():
            # The conversation's lock orders this event with the conversation's others.
            Conversation.objects.select_for_update().filter(pk=conversation_id).first()
            event = SLAEvent.objects.filter(pk=sla_id, breached_at__isnull=True, met_at__isnull=True).first()
            if event is None:
                continue
            event.breached_at = now
            event.save(update_fields=["breached_at"])
            emit(
                events.sla_breached(
                    conversation_id=conversation_id,
                    kind=event.kind,
                    team_id=event.team_id,
                    due_at=event.due_at.isoformat(),
                ),
                system_label="routing",
            )
        breached += 1
    return breached
