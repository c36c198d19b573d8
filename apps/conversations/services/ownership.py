"""Ownership: every change of who answers a conversation happens here, under the conversation's
row lock, with its domain event (docs/adr/0020-one-way-layers.md).

`owner` is ai | queue | human. `epoch` changes with every ownership change and on resolve; an AI
reply computed under an older epoch is discarded, never stored. Where a first message goes and
which team and priority a hand-over gets are the routing policy's decisions
(`apps.conversations.policy`); acting on them is this module's. What follows a hand-over
(SLA clocks, the visitor's place in the queue, assignment) is routing's, from the
`conversation.queued` event.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.audit.services import audit_action
from apps.events import types as events
from apps.events.services import emit
from syntera.errors import ApplicationError

from .. import policy
from ..models import Conversation
from .notify import emit_updated, require_role, send_frame
from .transcript import add_note, display_name, system_line


def ai_agent_id(conversation: Conversation) -> int | None:
    return conversation.agent_id or conversation.inbox.agent_id


def status_event(conversation: Conversation, status: str, *, by: str) -> events.Event:
    """The event of a status change from the conversation's current status to `status`; the
    visitor's widget is told the new status after commit (a structured frame, so it never has
    to read a system line's wording)."""
    send_frame(conversation, {"type": "status", "status": status})
    if status == Conversation.Status.RESOLVED:
        return events.conversation_resolved(conversation_id=conversation.pk, assignee_id=conversation.assignee_id)
    if conversation.status == Conversation.Status.RESOLVED:
        return events.conversation_reopened(conversation_id=conversation.pk, status=status, by=by)
    return events.conversation_updated(conversation_id=conversation.pk, changed=["status"], status=status)


def take_over(conversation: Conversation, actor: Actor | None) -> list[events.Event]:
    """A person takes the conversation (call under its row lock, then save it); its event, for
    the caller to emit (none for an API key, which is nobody to assign)."""
    conversation.owner = Conversation.Owner.HUMAN
    conversation.assignee = actor.user if actor else None
    conversation.epoch += 1
    send_frame(conversation, {"type": "handoff", "status": "assigned"})
    if conversation.assignee_id is None:
        return []
    return [
        events.conversation_assigned(
            conversation_id=conversation.pk, assignee_id=conversation.assignee_id, via="takeover"
        )
    ]


@transaction.atomic
def conversation_take_over(*, actor: Actor, conversation: Conversation) -> Conversation:
    require_role(actor, Role.AGENT)
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    user_id = getattr(actor.user, "pk", None)
    if conversation.owner == Conversation.Owner.HUMAN and conversation.assignee_id == user_id:
        return conversation
    if (
        conversation.owner == Conversation.Owner.HUMAN
        and conversation.assignee_id is not None
        and not actor.has_role(Role.ADMIN)
    ):
        raise ApplicationError(
            "Another person owns this conversation; an admin can reassign it.", code="not_owner", status_code=409
        )
    emit(*take_over(conversation, actor), actor=actor)
    system_line(conversation, f"{display_name(actor)} joined the conversation.")
    conversation.save()
    return conversation


@transaction.atomic
def conversation_hand_back(*, actor: Actor, conversation: Conversation) -> Conversation:
    require_role(actor, Role.AGENT)
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if not conversation.inbox.agent_id:
        raise ApplicationError("This inbox has no AI agent to hand back to.", code="conflict", status_code=409)
    conversation.owner = Conversation.Owner.AI
    conversation.assignee = None
    conversation.epoch += 1
    conversation.abstentions = 0
    send_frame(conversation, {"type": "handoff", "status": "bot"})
    emit(
        events.conversation_handed_back(conversation_id=conversation.pk, agent_id=ai_agent_id(conversation)),
        actor=actor,
    )
    system_line(conversation, "The AI assistant is back in the conversation.")
    conversation.save()
    return conversation


def move_to_queue(conversation: Conversation, *, team_id: int | None, reason: str, priority: int) -> None:
    """Owner becomes the queue of team `team_id` (call under the conversation's row lock)."""
    conversation.owner = Conversation.Owner.QUEUE
    conversation.assignee = None
    conversation.team_id = team_id
    conversation.priority = priority
    conversation.queued_at = timezone.now()
    conversation.epoch += 1
    conversation.attributes = {**conversation.attributes, "escalation_reason": reason[:300]}
    conversation.save()
    send_frame(conversation, {"type": "handoff", "status": "queued"})
    emit(
        events.conversation_queued(conversation_id=conversation.pk, team_id=team_id, reason=reason, priority=priority),
        system_label="routing",
    )


def assign_to(conversation: Conversation, *, user_id: int, by: Actor | None) -> None:
    """A person becomes the owner (call under the conversation's row lock)."""
    from apps.accounts.models import User

    user = User.objects.get(pk=user_id)
    conversation.owner = Conversation.Owner.HUMAN
    conversation.assignee = user
    conversation.epoch += 1
    send_frame(conversation, {"type": "handoff", "status": "assigned"})
    emit(
        events.conversation_assigned(
            conversation_id=conversation.pk, assignee_id=user.pk, via="routing" if by is None else "assignment"
        ),
        actor=by,
        system_label="routing",
    )
    name = user.full_name or user.email.split("@")[0]
    system_line(conversation, f"{name} joined the conversation.")
    conversation.save()


def conversation_escalate(*, conversation_id: int, reason: str, epoch: int | None, summary: str = "") -> bool:
    """Hand the conversation to people: it waits in the queue of the team the routing policy
    names, at its priority, with the AI's summary as a private note. `epoch` fences a stale AI
    decision (None: not fenced). False when it was not the AI's to hand over, or is queued."""
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update(of=("self",)).select_related("contact").get(pk=conversation_id)
        )
        if epoch is not None and (conversation.epoch != epoch or conversation.owner != Conversation.Owner.AI):
            return False
        if conversation.owner == Conversation.Owner.QUEUE and conversation.queued_at:
            return False
        escalate_locked(conversation, reason=reason, summary=summary)
    return True


def escalate_locked(conversation: Conversation, *, reason: str, summary: str = "") -> None:
    """`conversation_escalate` for a caller already holding the conversation's row lock."""
    handoff = policy.current().handoff(conversation)
    emit(events.handoff_requested(conversation_id=conversation.pk, reason=reason), system_label="routing")
    move_to_queue(conversation, team_id=handoff.team_id, reason=reason, priority=handoff.priority)
    if summary:
        add_note(conversation, f"Handoff summary (AI): {summary}")


def route_first_message(conversation: Conversation, text: str) -> bool:
    """Ask the routing policy where the first visitor message of a conversation the AI owns
    goes, and act on it (call under the row lock): another AI agent answers, or it waits for a
    team. True when a team has it (the AI does not answer)."""
    route = policy.current().first_message(conversation, text)
    if route is None:
        return False
    changed: list[str] = []
    if (route.intent, route.confidence) != (conversation.intent, conversation.intent_confidence):
        conversation.intent, conversation.intent_confidence = route.intent, route.confidence
        changed.append("intent")
    if route.agent_id is not None and route.agent_id != conversation.agent_id:
        conversation.agent_id = route.agent_id
        changed.append("agent")
    if route.team_id is not None and route.team_id != conversation.team_id:
        conversation.team_id = route.team_id
        changed.append("team")
    if changed:
        conversation.save()
        emit_updated(conversation, *changed)
    if route.team_id is None:
        return False
    escalate_locked(conversation, reason=f"routing rule {route.rule}")
    return True


@transaction.atomic
def conversation_assign(*, actor: Actor, conversation: Conversation, user_id: int) -> Conversation:
    """Manual assignment or reassignment to a member of the workspace (admins, or the owner
    handing their own conversation on)."""
    from apps.accounts.models import Membership

    require_role(actor, Role.AGENT)
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    own = conversation.assignee_id == getattr(actor.user, "pk", None)
    if not (actor.has_role(Role.ADMIN) or own or conversation.owner != Conversation.Owner.HUMAN):
        raise ApplicationError("Only admins reassign other people's conversations.", code="not_owner", status_code=409)
    membership = Membership.objects.filter(tenant=actor.tenant, user_id=user_id).first()
    if membership is None or not membership.has_role(Role.AGENT):
        raise ApplicationError(
            "Assign to a member with the agent role or above.", code="invalid", fields={"assignee": ["Not staff."]}
        )
    assign_to(conversation, user_id=user_id, by=actor)
    return conversation


@transaction.atomic
def conversation_set_status(
    *, actor: Actor, conversation: Conversation, status: str, snoozed_until: datetime | None = None
) -> Conversation:
    """Resolving fences the AI's context: the summary so far is kept, the turns before it are
    not replayed to the AI, and a pending AI reply is discarded (epoch)."""
    require_role(actor, Role.AGENT)
    if status not in Conversation.Status.values:
        raise ApplicationError("Unknown status.", code="invalid", status_code=400, fields={"status": ["Unknown."]})
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if status == conversation.status:
        return conversation
    happened = status_event(conversation, status, by="staff")
    emit(happened, actor=actor)
    if happened.type == "conversation.updated":  # the others are audited from their event
        audit_action(actor, "conversations.status_changed", conversation, {"status": status})
    conversation.status = status
    conversation.snoozed_until = snoozed_until if status == Conversation.Status.SNOOZED else None
    if status == Conversation.Status.RESOLVED:
        conversation.epoch += 1
        conversation.summary_until_seq = conversation.last_seq
        conversation.abstentions = 0
        conversation.resolved_at = timezone.now()
        conversation.queued_at = None
        if ai_agent_id(conversation):
            conversation.owner = Conversation.Owner.AI
            conversation.assignee = None
        system_line(conversation, "This conversation was resolved. How did we do? Rate it from 1 to 5.")
    conversation.save()
    return conversation


def conversations_wake_snoozed() -> int:
    """Beat: snoozed conversations whose time has come are open again (and told to staff)."""
    woken = 0
    due = Conversation.objects.filter(status=Conversation.Status.SNOOZED, snoozed_until__lte=timezone.now())
    for conversation_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
            if conversation.status != Conversation.Status.SNOOZED:
                continue
            emit(status_event(conversation, Conversation.Status.OPEN, by="staff"), system_label="routing")
            conversation.status = Conversation.Status.OPEN
            conversation.snoozed_until = None
            conversation.save(update_fields=["status", "snoozed_until", "updated_at"])
            woken += 1
    return woken
