"""Writes to conversations: the one path every message takes, whatever the channel
(docs/subsystems/conversations.md).

`message_post` stores a message through the conversation store (which allocates `seq` and
dedups `client_id`), updates the conversation record under its row lock, emits its domain
events in the same transaction (docs/subsystems/events.md), and after commit wakes the
conversation's sockets and, for a visitor message while the AI owns the conversation, queues
the AI reply. The channel layer only wakes readers: every socket reads what it sends from the
store, so a dropped wake-up delays, never loses. Staff pages, the audit trail and the agents'
statistics hear of changes from the events, not from here.

Ownership: `owner` is ai | queue | human. `epoch` changes with every ownership change and
on resolve; an AI reply computed under an older epoch is discarded, never stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import secrets
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.agents.models import Agent
from apps.audit.services import audit_action
from apps.events import types as events
from apps.events.services import emit
from apps.tenants.db import connection
from syntera.errors import ApplicationError
from syntera.realtime import publish
from syntera.tasks import enqueue_on_commit

from . import abuse
from .models import AnswerFeedback, Conversation, Inbox
from .stores import StoredMessage, get_store

if TYPE_CHECKING:
    from apps.agents.runtime import TurnResult

logger = logging.getLogger(__name__)

VISIBLE_TO_VISITOR = ("visitor", "ai", "agent", "system")


def conversation_group(schema: str, conversation_id: int) -> str:
    return f"conv.{schema}.{conversation_id}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _schema() -> str:
    return str(connection.schema_name)


def _require(actor: Actor, role: str) -> None:
    if not actor.has_role(role):
        raise ApplicationError("Your role cannot do this.", code="permission_denied", status_code=403)


def summary_row(conversation: Conversation) -> dict[str, Any]:
    """What the staff inbox shows for a conversation (sent with every update)."""
    return {
        "id": conversation.pk,
        "inbox": conversation.inbox_id,
        "channel": conversation.channel,
        "status": conversation.status,
        "owner": conversation.owner,
        "assignee": conversation.assignee_id,
        "unread": conversation.unread,
        "last_seq": conversation.last_seq,
        "last_message_at": conversation.last_message_at.isoformat() if conversation.last_message_at else None,
        "preview": conversation.last_message_preview,
        "tags": list(conversation.tags),
        "contact": conversation.contact_id,
    }


_held = threading.local()


@contextlib.contextmanager
def wakeups_held() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Collect the (group, event) pairs that `_to_sockets` sends after a commit made inside the
    block, instead of publishing them from this thread, for an async caller to send itself.
    `publish` from a database thread waits for the event loop, holding the thread and its
    connection meanwhile (the widget consumer's `_post`: docs/subsystems/realtime.md). A
    commit after the block (an enclosing transaction) publishes as usual."""
    held: list[tuple[str, dict[str, Any]]] = []
    _held.events = held
    try:
        yield held
    finally:
        _held.events = None


def _publish(group: str, event: dict[str, Any]) -> None:
    held = getattr(_held, "events", None)
    if held is None:
        publish(group, event)
    else:
        held.append((group, event))


def _to_sockets(conversation: Conversation, message: dict[str, Any]) -> None:
    """After commit: a message for the conversation's own sockets (the visitor's widget): a
    `conv.wake` (they read the new messages from the store) or a `conv.frame` (handoff,
    status). Never through the outbox: the visitor's path stays direct."""
    group = conversation_group(_schema(), conversation.pk)
    transaction.on_commit(lambda: _publish(group, message))


def _wake(conversation: Conversation, seq: int) -> None:
    _to_sockets(conversation, {"type": "conv.wake", "seq": seq})


def _frame(conversation: Conversation, frame: dict[str, Any]) -> None:
    _to_sockets(conversation, {"type": "conv.frame", "frame": frame})


def _updated(conversation: Conversation, *changed: str, actor: Actor | None = None) -> None:
    """`conversation.updated` for a change staff see; none for a conversation nobody wrote in
    yet, which is no conversation for anyone (docs/adr/0017-anonymous-visitor-limits.md)."""
    if conversation.last_seq > 0:
        emit(
            events.conversation_updated(
                conversation_id=conversation.pk, changed=list(changed), status=conversation.status
            ),
            actor=actor,
        )


def notify_frame(conversation_id: int, frame: dict[str, Any]) -> None:
    """Send an ephemeral frame (delta, typing, handoff) to the conversation's sockets now."""
    publish(conversation_group(_schema(), conversation_id), {"type": "conv.frame", "frame": frame})


# --- inboxes --------------------------------------------------------------------------------


@transaction.atomic
def inbox_create(
    *, actor: Actor, name: str, channel: str = "web", agent_id: int | None = None, **settings: Any
) -> Inbox:
    _require(actor, Role.ADMIN)
    inbox = Inbox(name=name, channel=channel, agent_id=agent_id)
    inbox.settings = {**inbox.settings, **settings}
    inbox.save()
    audit_action(actor, "conversations.inbox_created", inbox, {"name": name, "channel": channel})
    return inbox


@transaction.atomic
def inbox_update(*, actor: Actor, inbox: Inbox, **changes: Any) -> Inbox:
    _require(actor, Role.ADMIN)
    for key in ("name", "agent_id", "is_active"):
        if key in changes:
            setattr(inbox, key, changes.pop(key))
    if changes:
        inbox.settings = {**inbox.settings, **changes}
    inbox.save()
    audit_action(actor, "conversations.inbox_updated", inbox, {"fields": sorted(changes)})
    return inbox


def inbox_rotate_key(*, actor: Actor, inbox: Inbox) -> Inbox:
    from .models import new_widget_key

    _require(actor, Role.ADMIN)
    inbox.widget_key = new_widget_key()
    inbox.save(update_fields=["widget_key"])
    audit_action(actor, "conversations.inbox_key_rotated", inbox, {})
    return inbox


def inbox_delete(*, actor: Actor, inbox: Inbox) -> None:
    _require(actor, Role.ADMIN)
    if inbox.conversations.exists():
        raise ApplicationError("This inbox has conversations; deactivate it instead.", code="conflict", status_code=409)
    audit_action(actor, "conversations.inbox_deleted", None, {"inbox_id": inbox.pk, "name": inbox.name})
    inbox.delete()


# --- conversations --------------------------------------------------------------------------


def visitor_conversation(*, inbox: Inbox, token: str | None) -> Conversation | None:
    """The conversation this visitor token opens in this inbox, if any."""
    if not token:
        return None
    return Conversation.objects.filter(inbox=inbox, visitor_token_hash=token_hash(token)).order_by("-id").first()


@transaction.atomic
def conversation_start(
    *,
    inbox: Inbox,
    channel: str | None = None,
    contact: Any = None,
    ip: str | None = None,
    attributes: dict[str, str] | None = None,
) -> tuple[Conversation, str]:
    """A new conversation and the visitor token that opens it again (shown once)."""
    token = "vt_" + secrets.token_urlsafe(24)
    conversation = Conversation.objects.create(
        inbox=inbox,
        channel=channel or inbox.channel,
        contact=contact,
        visitor_token_hash=token_hash(token),
        owner=Conversation.Owner.AI if inbox.agent_id else Conversation.Owner.QUEUE,
        visitor_ip=ip,
        attributes=attributes or {},
    )
    # Staff hear of it with its first message (`message_post`): an opened widget that nobody
    # writes in is not a conversation for anyone, and is removed by `conversations_purge_empty`.
    return conversation, token


@transaction.atomic
def conversation_claim(*, conversation_id: int, fields: dict[str, str]) -> Conversation:
    """What the visitor says about themselves (the pre-chat form, their own messages): kept on
    the conversation as claims and remembered by the conversation's own contact, a new
    unverified one when it has none. A claim never selects an existing contact, so it never
    unlocks another person's memory (docs/adr/0011-visitor-identity.md)."""
    from apps.crm.services import contact_create, contact_remember

    from .identity import clean_claims

    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    fields = clean_claims(fields)
    if not fields:
        return conversation
    contact = conversation.contact
    if contact is None:
        contact = contact_create(actor=None, tenant=connection.tenant, verified=False, system_label="visitor")
    with contextlib.suppress(ApplicationError):  # a value the CRM refuses is simply not remembered
        contact_remember(tenant=connection.tenant, contact=contact, facts=list(fields.items()))
    changed = ["claims"] if conversation.contact_id == contact.pk else ["claims", "contact"]
    conversation.contact = contact
    conversation.claims = {**(conversation.claims or {}), **fields}
    conversation.save(update_fields=["contact", "claims", "updated_at"])
    _updated(conversation, *changed)
    return conversation


@transaction.atomic
def conversation_verify(*, conversation_id: int, contact: Any) -> Conversation:
    """Attach the conversation to `contact`, whose identity a trusted party established (a
    signed identity, an authenticated integrator). The unverified contact the visitor had
    (their claims, their leads) is folded into it when no other conversation uses it."""
    from apps.crm.services import contact_merge

    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    previous = conversation.contact
    if previous is not None and previous.pk == contact.pk:
        return conversation
    if previous is not None and previous.verified:
        raise ApplicationError("This conversation belongs to another known contact.", code="conflict", status_code=409)
    if previous is not None and not previous.conversations.exclude(pk=conversation.pk).exists():
        contact_merge(actor=None, source=previous, target=contact, tenant=connection.tenant)
    conversation.contact = contact
    conversation.save(update_fields=["contact", "updated_at"])
    audit_action(
        None,
        "conversations.identity_verified",
        conversation,
        {"contact_id": contact.pk, "previous_contact_id": getattr(previous, "pk", None)},
        system_label="widget",
    )
    _updated(conversation, "contact")
    return conversation


@transaction.atomic
def conversation_identify(*, conversation_id: int, fields: dict[str, str]) -> Conversation:
    """An authenticated integrator says who the visitor is (the API's `contact` when it starts
    a conversation): trusted, so the conversation goes to the verified contact whose email
    (else phone) staff or a verification vouch for, or to a new verified contact. Only for
    callers who authenticated; what a visitor says about themselves is `conversation_claim`."""
    from apps.crm.services import contact_by_trusted, contact_create, contact_remember

    from .identity import clean_claims

    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    fields = clean_claims(fields)
    if not fields:
        return conversation
    current = conversation.contact
    if current is not None and current.verified:
        with contextlib.suppress(ApplicationError):
            contact_remember(tenant=connection.tenant, contact=current, facts=list(fields.items()))
        return conversation
    contact = contact_by_trusted(key="email", value=fields.get("email", "")) or contact_by_trusted(
        key="phone", value=fields.get("phone", "")
    )
    if contact is None:
        contact = contact_create(actor=None, tenant=connection.tenant, verified=True, system_label="api", **fields)
    else:
        with contextlib.suppress(ApplicationError):
            contact_remember(tenant=connection.tenant, contact=contact, facts=list(fields.items()))
    return conversation_verify(conversation_id=conversation.pk, contact=contact)


def message_post(
    *,
    conversation_id: int,
    role: str,
    text: str,
    client_id: str | None = None,
    actor: Actor | None = None,
    citations: Sequence[dict[str, Any]] = (),
    audit: dict[str, Any] | None = None,
) -> tuple[StoredMessage, bool]:
    """Store one message and update the conversation; (message, created). Staff messages
    (role agent) take the conversation over from the AI; notes are never shown to the visitor.
    A visitor message while the AI owns the conversation queues the AI's reply."""
    text = (text or "").replace("\x00", "").strip()
    if not text:
        raise ApplicationError("A message needs text.", code="invalid", status_code=400, fields={"text": ["Empty."]})
    store = get_store()
    with transaction.atomic():
        # The inbox comes along (its agent answers), unlocked: only the conversation's row is.
        conversation = (
            Conversation.objects.select_for_update(of=("self",)).select_related("inbox").get(pk=conversation_id)
        )
        _check_owner(conversation, role, actor)
        message, created = store.append(
            schema=_schema(),
            conversation_id=conversation.pk,
            role=role,
            text=text,
            client_id=client_id,
            author_id=actor.user.pk if actor and actor.user else None,
            author_label=display_name(actor),
            citations=citations,
            audit=audit,
        )
        if not created and message.seq <= conversation.last_seq:
            return message, False
        first = conversation.last_message_at is None and role != "note"
        # (A store outside this transaction, MongoDB, may hold a message whose record update
        # was rolled back: a retry with the same client_id completes it.)
        conversation.last_seq = max(conversation.last_seq, message.seq)
        if role != "note":
            conversation.last_message_at = message.created_at
            conversation.last_message_preview = text[:200]
        happened: list[events.Event] = []
        if first:
            happened.append(
                events.conversation_created(
                    conversation_id=conversation.pk,
                    inbox_id=conversation.inbox_id,
                    channel=conversation.channel,
                    contact_id=conversation.contact_id,
                    owner=conversation.owner,
                )
            )
        if role == "visitor":
            conversation.unread += 1
            conversation.visitor_turns += 1
            if conversation.status in (Conversation.Status.RESOLVED, Conversation.Status.SNOOZED):
                happened.append(_status_event(conversation, Conversation.Status.OPEN, by="visitor"))
                conversation.status = Conversation.Status.OPEN
        if role == "agent":
            if conversation.owner != Conversation.Owner.HUMAN:
                happened.extend(_take_over(conversation, actor))
            if conversation.first_response_at is None:
                conversation.first_response_at = message.created_at
                from apps.routing.services import sla_met

                sla_met(conversation, "first_response")
        conversation.save()
        happened.append(_message_event(conversation, message))
        emit(*happened, actor=actor, system_label="visitor" if role == "visitor" else role)
        _wake(conversation, message.seq)
        if role == "visitor" and conversation.owner != Conversation.Owner.AI:
            # Waiting for (or talking to) a person, e.g. after the out-of-hours offer of an email
            # follow-up: what the visitor says about themselves still reaches the contact.
            _learn_from_visitor(conversation, text)
        if role == "visitor" and conversation.owner == Conversation.Owner.AI and _ai_agent_id(conversation):
            if conversation.visitor_turns == 1 and _routes_to_team(conversation, text):
                return message, True
            from .tasks import ai_reply

            enqueue_on_commit(ai_reply, conversation.pk, message.seq, conversation.epoch, queue="llm")
    return message, True


def _message_event(conversation: Conversation, message: StoredMessage) -> events.Event:
    """`message.created` for what the visitor sees, `note.created` (no text) for a note."""
    if message.role == "note":
        return events.note_created(conversation_id=conversation.pk, seq=message.seq, author_id=message.author_id)
    return events.message_created(
        conversation_id=conversation.pk,
        seq=message.seq,
        role=message.role,
        text=message.text,
        client_id=message.client_id,
        author_id=message.author_id,
        author=message.author_label,
        citations=list(message.citations),
    )


def _status_event(conversation: Conversation, status: str, *, by: str) -> events.Event:
    """The event of a status change from the conversation's current status to `status`; the
    visitor's widget is told the new status after commit (a structured frame, so it never has
    to read a system line's wording)."""
    _frame(conversation, {"type": "status", "status": status})
    if status == Conversation.Status.RESOLVED:
        return events.conversation_resolved(conversation_id=conversation.pk, assignee_id=conversation.assignee_id)
    if conversation.status == Conversation.Status.RESOLVED:
        return events.conversation_reopened(conversation_id=conversation.pk, status=status, by=by)
    return events.conversation_updated(conversation_id=conversation.pk, changed=["status"], status=status)


def _learn_from_visitor(conversation: Conversation, text: str) -> None:
    from apps.agents.memory import extract_facts

    facts = {k: v for k, v in extract_facts(text) if k in ("name", "email", "phone")}
    if facts:
        conversation_claim(conversation_id=conversation.pk, fields=facts)


def display_name(actor: Actor | None) -> str:
    """How a staff member is named to visitors: their name, never their email address."""
    if actor is None:
        return ""
    user = actor.user
    if user is None:
        return "Support team"
    return str(getattr(user, "full_name", "") or "").strip() or user.email.split("@")[0]


def _check_owner(conversation: Conversation, role: str, actor: Actor | None) -> None:
    """Only the owner sends non-note messages: a person replying to a conversation another
    person owns is refused (taking it over is an explicit action)."""
    if role != "agent" or conversation.owner != Conversation.Owner.HUMAN:
        return
    user_id = actor.user.pk if actor and actor.user else None
    if conversation.assignee_id is not None and conversation.assignee_id != user_id:
        raise ApplicationError(
            "Another person owns this conversation; take it over first.", code="not_owner", status_code=409
        )


def _ai_agent_id(conversation: Conversation) -> int | None:
    return conversation.agent_id or conversation.inbox.agent_id


def _routes_to_team(conversation: Conversation, text: str) -> bool:
    """Routing rules decide where a conversation's first message goes; True when it is a team
    (the AI does not answer)."""
    from apps.routing.models import RoutingRule
    from apps.routing.services import route_first_message

    if not RoutingRule.objects.filter(is_active=True).exists():
        return False
    decision = route_first_message(conversation_id=conversation.pk, text=text)
    conversation.refresh_from_db()
    return "team" in decision


def _take_over(conversation: Conversation, actor: Actor | None) -> list[events.Event]:
    """A person takes the conversation (call under its row lock, then save it); its event, for
    the caller to emit (none for an API key, which is nobody to assign)."""
    conversation.owner = Conversation.Owner.HUMAN
    conversation.assignee = actor.user if actor else None
    conversation.epoch += 1
    _frame(conversation, {"type": "handoff", "status": "assigned"})
    if conversation.assignee_id is None:
        return []
    return [
        events.conversation_assigned(
            conversation_id=conversation.pk, assignee_id=conversation.assignee_id, via="takeover"
        )
    ]


def _system(conversation: Conversation, text: str) -> None:
    """A system line in the transcript (ownership changes, rating...)."""
    message, _ = get_store().append(schema=_schema(), conversation_id=conversation.pk, role="system", text=text)
    conversation.last_seq = max(conversation.last_seq, message.seq)
    emit(_message_event(conversation, message))
    _wake(conversation, message.seq)


@transaction.atomic
def conversation_take_over(*, actor: Actor, conversation: Conversation) -> Conversation:
    _require(actor, Role.AGENT)
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
    emit(*_take_over(conversation, actor), actor=actor)
    _system(conversation, f"{display_name(actor)} joined the conversation.")
    conversation.save()
    return conversation


@transaction.atomic
def conversation_hand_back(*, actor: Actor, conversation: Conversation) -> Conversation:
    _require(actor, Role.AGENT)
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if not conversation.inbox.agent_id:
        raise ApplicationError("This inbox has no AI agent to hand back to.", code="conflict", status_code=409)
    conversation.owner = Conversation.Owner.AI
    conversation.assignee = None
    conversation.epoch += 1
    conversation.abstentions = 0
    _frame(conversation, {"type": "handoff", "status": "bot"})
    emit(
        events.conversation_handed_back(conversation_id=conversation.pk, agent_id=_ai_agent_id(conversation)),
        actor=actor,
    )
    _system(conversation, "The AI assistant is back in the conversation.")
    conversation.save()
    return conversation


def move_to_queue(conversation: Conversation, *, team: Any, reason: str, priority: int) -> None:
    """Owner becomes the queue of `team` (call under the conversation's row lock)."""
    conversation.owner = Conversation.Owner.QUEUE
    conversation.assignee = None
    conversation.team = team
    conversation.priority = priority
    conversation.queued_at = timezone.now()
    conversation.epoch += 1
    conversation.attributes = {**conversation.attributes, "escalation_reason": reason[:300]}
    conversation.save()
    _frame(conversation, {"type": "handoff", "status": "queued"})
    emit(
        events.conversation_queued(
            conversation_id=conversation.pk, team_id=getattr(team, "pk", None), reason=reason, priority=priority
        ),
        system_label="routing",
    )


def assign_to(conversation: Conversation, *, user_id: int, by: Actor | None) -> None:
    """A person becomes the owner (call under the conversation's row lock)."""
    from apps.accounts.models import User

    user = User.objects.get(pk=user_id)
    conversation.owner = Conversation.Owner.HUMAN
    conversation.assignee = user
    conversation.epoch += 1
    _frame(conversation, {"type": "handoff", "status": "assigned"})
    emit(
        events.conversation_assigned(
            conversation_id=conversation.pk, assignee_id=user.pk, via="routing" if by is None else "assignment"
        ),
        actor=by,
        system_label="routing",
    )
    name = user.full_name or user.email.split("@")[0]
    _system(conversation, f"{name} joined the conversation.")
    conversation.save()


@transaction.atomic
def conversation_assign(*, actor: Actor, conversation: Conversation, user_id: int) -> Conversation:
    """Manual assignment or reassignment to a member of the workspace (admins, or the owner
    handing their own conversation on)."""
    from apps.accounts.models import Membership

    _require(actor, Role.AGENT)
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


def add_note(conversation: Conversation, text: str) -> None:
    """A private note in the transcript (staff only), e.g. the AI's handoff summary."""
    message, _ = get_store().append(schema=_schema(), conversation_id=conversation.pk, role="note", text=text)
    conversation.last_seq = max(conversation.last_seq, message.seq)
    conversation.save(update_fields=["last_seq", "updated_at"])
    emit(_message_event(conversation, message), system_label="ai")
    _wake(conversation, message.seq)


def system_message(conversation: Conversation, text: str) -> None:
    _system(conversation, text)
    conversation.save(update_fields=["last_seq", "updated_at"])


@transaction.atomic
def conversation_set_status(
    *, actor: Actor, conversation: Conversation, status: str, snoozed_until: datetime | None = None
) -> Conversation:
    """Resolving fences the AI's context: the summary so far is kept, the turns before it are
    not replayed to the AI, and a pending AI reply is discarded (epoch)."""
    _require(actor, Role.AGENT)
    if status not in Conversation.Status.values:
        raise ApplicationError("Unknown status.", code="invalid", status_code=400, fields={"status": ["Unknown."]})
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if status == conversation.status:
        return conversation
    happened = _status_event(conversation, status, by="staff")
    emit(happened, actor=actor)
    if happened.type == "conversation.updated":  # the others are audited from their event
        audit_action(actor, "conversations.status_changed", conversation, {"status": status})
    conversation.status = status
    conversation.snoozed_until = snoozed_until if status == Conversation.Status.SNOOZED else None
    if status == Conversation.Status.RESOLVED:
        from apps.routing.services import sla_met

        conversation.epoch += 1
        conversation.summary_until_seq = conversation.last_seq
        conversation.abstentions = 0
        conversation.resolved_at = timezone.now()
        conversation.queued_at = None
        if _ai_agent_id(conversation):
            conversation.owner = Conversation.Owner.AI
            conversation.assignee = None
        sla_met(conversation, "resolution")
        _system(conversation, "This conversation was resolved. How did we do? Rate it from 1 to 5.")
    conversation.save()
    return conversation


@transaction.atomic
def conversation_set_tags(*, actor: Actor, conversation: Conversation, tags: list[str]) -> Conversation:
    _require(actor, Role.AGENT)
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    tags = sorted({t.strip().lower()[:40] for t in tags if t.strip()})[:20]
    if tags != conversation.tags:
        conversation.tags = tags
        conversation.save(update_fields=["tags", "updated_at"])
        _updated(conversation, "tags", actor=actor)
    return conversation


@transaction.atomic
def conversation_mark_read(*, actor: Actor, conversation: Conversation) -> Conversation:
    _require(actor, Role.AGENT)
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if conversation.unread:
        conversation.unread = 0
        conversation.save(update_fields=["unread", "updated_at"])
        _updated(conversation, "unread", actor=actor)
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
            emit(_status_event(conversation, Conversation.Status.OPEN, by="staff"), system_label="routing")
            conversation.status = Conversation.Status.OPEN
            conversation.snoozed_until = None
            conversation.save(update_fields=["status", "snoozed_until", "updated_at"])
            woken += 1
    return woken


@transaction.atomic
def conversation_rate(*, conversation_id: int, rating: int, comment: str = "") -> Conversation:
    if not 1 <= int(rating) <= 5:
        raise ApplicationError("A rating is 1 to 5.", code="invalid", status_code=400, fields={"rating": ["1-5."]})
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    conversation.rating = int(rating)
    conversation.rating_comment = (comment or "")[:2000]
    conversation.save(update_fields=["rating", "rating_comment", "updated_at"])
    emit(
        events.csat_received(
            conversation_id=conversation.pk, rating=conversation.rating, comment=conversation.rating_comment
        ),
        system_label="visitor",
    )
    return conversation


def answer_feedback(*, conversation_id: int, seq: int, helpful: bool) -> AnswerFeedback:
    """The visitor's verdict on the AI answer at `seq`: helpful or not. A second verdict on the
    same answer replaces the first; the answering agent's daily stats count the latest only."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        found = get_store().after(schema=_schema(), conversation_id=conversation_id, after_seq=seq - 1, limit=1)
        if not found or found[0].seq != seq or found[0].role != "ai":
            raise ApplicationError(
                "Feedback is given on the AI's answers; there is none with that seq.",
                code="invalid_feedback",
                status_code=400,
                fields={"seq": ["Not an AI answer of this conversation."]},
            )
        wanted = found[0].audit.get("agent_id") or conversation.agent_id
        agent_id = wanted if isinstance(wanted, int) and Agent.objects.filter(pk=wanted).exists() else None
        feedback = AnswerFeedback.objects.filter(conversation=conversation, seq=seq).first()
        if feedback is not None and feedback.helpful == helpful:
            return feedback
        replaces = None
        if feedback is not None:
            replaces = (feedback.helpful, feedback.updated_at.date().isoformat())
            feedback.helpful = helpful
            feedback.save(update_fields=["helpful", "updated_at"])
        else:
            feedback = AnswerFeedback.objects.create(
                conversation=conversation, seq=seq, agent_id=agent_id, helpful=helpful
            )
        # The staff page shows it and the agent's stats count it (their subscribers).
        emit(
            events.message_feedback(
                conversation_id=conversation.pk,
                seq=seq,
                helpful=helpful,
                agent_id=feedback.agent_id,
                channel=conversation.channel,
                replaces=replaces,
            ),
            system_label="visitor",
        )
    return feedback


def conversation_delete(*, actor: Actor, conversation: Conversation) -> None:
    _require(actor, Role.ADMIN)
    get_store().delete_conversation(schema=_schema(), conversation_id=conversation.pk)
    audit_action(actor, "conversations.deleted", None, {"conversation_id": conversation.pk})
    conversation.delete()


# --- the AI's turn ---------------------------------------------------------------------------


def _turn_input(conversation: Conversation, turns: list[Any], **extra: Any) -> Any:
    """The runtime's view of the conversation (`apps.agents.runtime.TurnInput`)."""
    from apps.agents.runtime import TurnInput

    return TurnInput(
        turns=turns,
        summary=conversation.summary,
        contact=conversation.contact,
        claims={str(k): str(v) for k, v in (conversation.claims or {}).items()},
        attributes=dict(conversation.attributes),
        channel=conversation.channel,
        **extra,
    )


def _turns_for(conversation: Conversation) -> list[Any]:
    from apps.agents.providers import Turn

    store = get_store()
    messages = store.after(
        schema=_schema(), conversation_id=conversation.pk, after_seq=conversation.summary_until_seq, limit=200
    )
    turns = []
    for m in messages:
        if m.role == "visitor":
            turns.append(Turn("user", m.text))
        elif m.role in ("ai", "agent"):
            turns.append(Turn("assistant", m.text))
    # Consecutive visitor messages are one turn to the AI.
    merged: list[Any] = []
    for turn in turns:
        if merged and merged[-1].role == turn.role:
            merged[-1] = Turn(turn.role, merged[-1].text + "\n" + turn.text)
        else:
            merged.append(turn)
    return merged


_CITATION_MARK = re.compile(r"\s*\[\d+\]")


def reply_suggestion(*, actor: Actor, conversation: Conversation) -> dict[str, Any]:
    """A draft reply for staff: the conversation's AI agent answers the visitor's latest
    message from its knowledge, as a dry run (nothing is stored or sent; it counts against the
    AI quota). `text` is empty unless the agent answered; its citation marks are dropped (the
    sources come in `citations`)."""
    from apps.agents.commit import turn_meter
    from apps.agents.escalation import wants_human
    from apps.agents.providers import Turn
    from apps.agents.runtime import answer_turn

    _require(actor, Role.AGENT)
    agent = conversation.agent or conversation.inbox.agent
    if agent is None:
        raise ApplicationError("This conversation has no AI agent to draft a reply.", code="no_agent")
    turns = _turns_for(conversation)
    while turns and turns[-1].role != "user":
        turns.pop()
    # "Can I talk to a person?" is what brought staff here; the draft answers the question
    # before it, when there is one: in the same turn (consecutive messages are one turn), or
    # the visitor's turn before.
    if turns:
        lines = turns[-1].text.split("\n")
        while len(lines) > 1 and wants_human(lines[-1]):
            lines.pop()
        turns[-1] = Turn("user", "\n".join(lines))
        earlier = [i for i, t in enumerate(turns[:-1]) if t.role == "user"]
        if earlier and wants_human(turns[-1].text):
            turns = turns[: earlier[-1] + 1]
    if not turns:
        raise ApplicationError("The visitor has not written anything to answer yet.", code="nothing_to_answer")
    result = answer_turn(
        agent=agent,
        tenant=connection.tenant,
        conversation=_turn_input(conversation, turns, dry_run=True, for_staff=True),
    )
    turn_meter(result=result)
    answered = result.decision == "answered"
    return {
        "text": _CITATION_MARK.sub("", result.text).strip() if answered else "",
        "decision": result.decision,
        "reason": str(result.audit.get("reason") or ""),
        "citations": [c.as_dict() for c in result.citations] if answered else [],
    }


def ai_reply(*, conversation_id: int, trigger_seq: int, epoch: int) -> str:
    """Produce and store the AI's reply to the visitor message `trigger_seq`. The turn is
    computed without writing, its deltas streamed to the conversation's sockets; then
    `_ai_reply_commit` stores the reply with everything the turn wants written, or nothing
    (docs/adr/0019-ai-turn-commit.md)."""
    from apps.agents import runtime

    conversation = Conversation.objects.select_related("agent", "inbox__agent", "contact").get(pk=conversation_id)
    agent = conversation.agent or conversation.inbox.agent
    if agent is None or conversation.epoch != epoch or conversation.owner != Conversation.Owner.AI:
        return "skipped: not the AI's turn"
    if conversation.last_seq > trigger_seq and _newer_visitor_message(conversation, trigger_seq):
        return "skipped: superseded"
    turns = _turns_for(conversation)
    if not turns or turns[-1].role != "user":
        return "skipped: nothing to answer"
    if not abuse.ai_reply_allowed(
        _schema(), inbox_id=conversation.inbox_id, conversation_id=conversation.pk, ip=conversation.visitor_ip
    ):
        return _ai_budget_spent(conversation, turns[-1].text, trigger_seq, epoch)
    notify_frame(conversation.pk, {"type": "typing", "role": "ai"})
    result: runtime.TurnResult | None = None
    for event in runtime.run_turn(
        agent=agent,
        tenant=connection.tenant,
        conversation=_turn_input(
            conversation, turns, abstentions=conversation.abstentions, visitor_turns=conversation.visitor_turns
        ),
    ):
        if isinstance(event, runtime.Delta):
            notify_frame(conversation.pk, {"type": "delta", "reply_to": trigger_seq, "text": event.text})
        else:
            result = event
    assert result is not None
    outcome = _ai_reply_commit(
        conversation_id=conversation_id, agent=agent, result=result, trigger_seq=trigger_seq, epoch=epoch
    )
    if outcome.startswith("replied") and result.decision == "escalate":
        from apps.routing.services import escalate

        escalate(
            conversation_id=conversation_id,
            reason=result.escalation_reason or "escalated",
            epoch=epoch,
            summary=result.handoff_summary,
        )
    return outcome


def _ai_reply_commit(*, conversation_id: int, agent: Agent, result: TurnResult, trigger_seq: int, epoch: int) -> str:
    """The AI turn's commit step: one transaction, holding the conversation's row lock, that
    checks the reply still applies and then writes the reply and every side effect of the
    turn (leads, contact memory, claims, knowledge gap, usage, the agent's statistics), or
    returns "discarded: ..." having written nothing. A takeover or a resolve either happened
    before (the reply is discarded) or waits for the lock until the reply is stored."""
    from apps.agents.commit import turn_commit, turn_count

    with transaction.atomic():
        current = Conversation.objects.select_for_update().get(pk=conversation_id)
        if current.epoch != epoch or current.owner != Conversation.Owner.AI:
            logger.info("AI reply discarded: ownership changed", extra={"data": {"conversation": conversation_id}})
            return "discarded: ownership changed"
        if _newer_visitor_message(current, trigger_seq):
            return "discarded: superseded"
        committed = turn_commit(agent=agent, tenant=connection.tenant, result=result, contact=current.contact)
        current.summary = result.summary
        if result.folded_turns:
            current.summary_until_seq = _seq_after_folding(current, result.folded_turns)
        current.attributes = {**current.attributes, **result.attributes}
        current.abstentions = current.abstentions + 1 if result.decision == "abstained" else 0
        if committed.contact is not None and not current.contact_id:
            current.contact = committed.contact
        current.save()
        if result.effects.claims:
            conversation_claim(conversation_id=conversation_id, fields=result.effects.claims)
        memory = {**result.audit.get("memory", {}), "learned": committed.learned}
        audit = {**result.audit, "memory": memory, "reply_to": trigger_seq, "epoch": epoch}
        if committed.lead_ids:
            audit["lead_ids"] = committed.lead_ids
        message_post(
            conversation_id=conversation_id,
            role="ai",
            text=result.text,
            citations=[c.as_dict() for c in result.citations],
            audit=audit,
            client_id=f"ai-{epoch}-{trigger_seq}",
        )
        if result.decision == "abstained" or result.unanswered:
            # Also when repeated abstentions turned into a hand-over (`unanswered` stays set).
            emit(
                events.ai_abstained(
                    conversation_id=conversation_id,
                    agent_id=agent.pk,
                    reply_to=trigger_seq,
                    reason=str(result.audit.get("reason") or ""),
                ),
                system_label="ai",
            )
        turn_count(agent=agent, channel=current.channel, result=result)
    return f"replied: {result.decision}"


AI_BUDGET_SPENT = (
    "This chat has had as many automatic answers as it can today. "
    "Ask for a person if you need more help, and someone from the team will reply."
)


def _ai_budget_spent(conversation: Conversation, text: str, trigger_seq: int, epoch: int) -> str:
    """The visitor (or their address) used up its share of the AI for today: no model call.
    Asking for a person still works; otherwise the visitor is told once a day."""
    from apps.agents.escalation import wants_human

    if wants_human(text):
        from apps.routing.services import escalate

        escalate(conversation_id=conversation.pk, reason="the visitor asked for a human", epoch=epoch)
        return "escalated: AI budget spent"
    if abuse.first_notice_today(_schema(), conversation.pk):
        client_id = f"budget-{epoch}-{trigger_seq}"
        message_post(conversation_id=conversation.pk, role="system", text=AI_BUDGET_SPENT, client_id=client_id)
    return "skipped: AI budget spent"


def conversations_purge_empty() -> int:
    """Remove conversations nobody wrote in (nothing stored) older than
    EMPTY_CONVERSATION_TTL_HOURS: opened widgets, abandoned API starts. Returns how many."""
    from django.conf import settings

    cutoff = timezone.now() - timedelta(hours=settings.EMPTY_CONVERSATION_TTL_HOURS)
    empty = Conversation.objects.filter(last_seq=0, created_at__lt=cutoff)
    ids = list(empty.values_list("pk", flat=True)[:5000])
    if not ids:
        return 0
    store = get_store()
    for conversation_id in ids:
        store.delete_conversation(schema=_schema(), conversation_id=conversation_id)
    deleted, _ = Conversation.objects.filter(pk__in=ids, last_seq=0).delete()
    return deleted


def _newer_visitor_message(conversation: Conversation, trigger_seq: int) -> bool:
    newer = get_store().after(schema=_schema(), conversation_id=conversation.pk, after_seq=trigger_seq, limit=50)
    return any(m.role == "visitor" for m in newer)


def _seq_after_folding(conversation: Conversation, folded_turns: int) -> int:
    """The seq up to which the transcript is now covered by the summary."""
    messages = get_store().after(
        schema=_schema(), conversation_id=conversation.pk, after_seq=conversation.summary_until_seq, limit=500
    )
    seen = 0
    previous_role = None
    for m in messages:
        if m.role not in ("visitor", "ai", "agent"):
            continue
        role = "user" if m.role == "visitor" else "assistant"
        if role != previous_role:
            seen += 1
            previous_role = role
        if seen > folded_turns:
            return m.seq - 1
    return conversation.summary_until_seq
