"""The AI's turn in a conversation: the visitor's reply (`ai_reply`, on the `llm` queue) and
the staff's draft (`reply_suggestion`). The turn is computed without writing, then one commit
step stores the reply with every side effect and event of the turn, or nothing
(docs/adr/0019-ai-turn-commit.md)."""

from __future__ import annotations

import contextlib
import logging
import random
import re
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.agents.models import Agent
from apps.events import types as events
from apps.events.services import emit
from apps.tenants.db import connection, release_connection
from syntera import slots
from syntera.errors import ApplicationError

from .. import abuse
from ..models import Conversation
from ..stores import get_store
from .messages import message_post
from .notify import current_schema, emit_updated, notify_frame, require_role
from .ownership import conversation_escalate, escalate_locked
from .superseding import newest_visitor_seq
from .visitors import conversation_claim

if TYPE_CHECKING:
    from apps.agents.runtime import TurnResult

logger = logging.getLogger(__name__)


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
        schema=current_schema(), conversation_id=conversation.pk, after_seq=conversation.summary_until_seq, limit=200
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
# While a reply streams, how often to check that it is still wanted: a reply that will be
# discarded stops there instead of running the model to its end. A newer visitor message is
# asked of Redis (`superseding`) this often; the conversation itself (taken over, resolved, or
# what Redis does not know) is read every OWNER_CHECK_SECONDS.
UNWANTED_CHECK_SECONDS = 0.5
OWNER_CHECK_SECONDS = 2.0
# The streamed text goes to the sockets at most this often, the pieces in between joined: a
# model's one-token chunks would otherwise be one frame each, through Redis and the server.
DELTA_FLUSH_SECONDS = 0.1


def reply_suggestion(*, actor: Actor, conversation: Conversation) -> dict[str, Any]:
    """A draft reply for staff: the conversation's AI agent answers the visitor's latest
    message from its knowledge, as a dry run (nothing is stored or sent; it counts against the
    AI quota). `text` is empty unless the agent answered; its citation marks are dropped (the
    sources come in `citations`)."""
    from apps.agents.commit import turn_meter
    from apps.agents.escalation import wants_human
    from apps.agents.providers import Turn
    from apps.agents.runtime import answer_turn

    require_role(actor, Role.AGENT)
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
    (docs/adr/0019-ai-turn-commit.md). At most AI_TENANT_CONCURRENCY turns of a workspace run
    at once (a slot in Redis, across every worker); a turn over the cap goes back to its queue
    for a moment, never dropped and never holding a thread while it waits."""
    if newest_visitor_seq(current_schema(), conversation_id) > trigger_seq:
        return "skipped: superseded"  # without a query: most of an overloaded queue's turns
    conversation = Conversation.objects.select_related("agent", "inbox__agent", "contact").get(pk=conversation_id)
    agent = conversation.agent or conversation.inbox.agent
    if agent is None or conversation.epoch != epoch or conversation.owner != Conversation.Owner.AI:
        return "skipped: not the AI's turn"
    if conversation.last_seq > trigger_seq and (why := _overtaken(conversation, trigger_seq, epoch)) is not None:
        return f"skipped: {why}"
    turns = _turns_for(conversation)
    if not turns or turns[-1].role != "user":
        return "skipped: nothing to answer"
    if settings.CELERY_TASK_ALWAYS_EAGER or not settings.AI_TENANT_CONCURRENCY:
        return _ai_turn(conversation, agent, turns, trigger_seq, epoch)  # inline tasks cannot wait
    name = f"ai:{current_schema()}"
    holder = f"{conversation_id}:{trigger_seq}:{epoch}"
    # A turn killed with its worker never releases its slot: the slot lapses just after the limit.
    ttl = settings.AI_REPLY_TIME_LIMIT + 30
    with slots.slot(name, limit=settings.AI_TENANT_CONCURRENCY, ttl=ttl, holder=holder) as held:
        if held:
            return _ai_turn(conversation, agent, turns, trigger_seq, epoch)
    from apps.agents.selectors import queue_for_provider

    from ..tasks import ai_reply as task

    wait = settings.AI_CONCURRENCY_RETRY_SECONDS
    task.apply_async(
        args=(conversation_id, trigger_seq, epoch),
        countdown=wait + random.uniform(0, wait),  # noqa: S311 (jitter, not a secret)
        queue=queue_for_provider(agent.provider),
        headers={"_schema_name": current_schema()},
    )
    return "deferred: the workspace's AI turns are all in use"


STALL_BATCH = 500  # conversations per workspace and sweep


def turns_requeue_stalled() -> int:
    """Send again, once, the turn of every conversation of this workspace where the AI owes a
    reply to a visitor message that has waited AI_STALL_SECONDS (up to AI_STALL_MAX_AGE): its
    worker died mid-turn, and the broker would hand that task out again only after its
    visibility timeout. A turn that was only slow and then stores its reply leaves the sent
    one nothing to do ("already answered"). Returns how many were sent."""
    from apps.agents.selectors import turn_queue

    from ..tasks import ai_reply as task

    now = timezone.now()
    waiting = Conversation.objects.filter(
        owner=Conversation.Owner.AI,
        status=Conversation.Status.OPEN,
        last_role="visitor",
        last_message_at__lte=now - timedelta(seconds=settings.AI_STALL_SECONDS),
        last_message_at__gte=now - timedelta(seconds=settings.AI_STALL_MAX_AGE),
    ).values_list("pk", "last_seq", "epoch", "agent_id", "inbox__agent_id")
    schema = current_schema()
    sent = 0
    for conversation_id, seq, epoch, agent_id, inbox_agent_id in waiting.order_by("last_message_at")[:STALL_BATCH]:
        agent = agent_id or inbox_agent_id
        marker = slots.key(f"stalled:{schema}:{conversation_id}:{seq}:{epoch}")
        if agent is None or not slots.client().set(marker, "1", nx=True, ex=settings.AI_STALL_MAX_AGE):
            continue
        task.apply_async(args=(conversation_id, seq, epoch), queue=turn_queue(agent), headers={"_schema_name": schema})
        sent += 1
    if sent:
        logger.warning("sent %d stalled AI turns again", sent, extra={"data": {"schema": schema}})
    return sent


def _ai_turn(conversation: Conversation, agent: Agent, turns: list[Any], trigger_seq: int, epoch: int) -> str:
    """Stream the turn to the conversation's sockets, then commit it (or stop early once it
    can no longer apply)."""
    from apps.agents import runtime

    conversation_id = conversation.pk
    if not abuse.ai_reply_allowed(
        current_schema(), inbox_id=conversation.inbox_id, conversation_id=conversation.pk, ip=conversation.visitor_ip
    ):
        return _ai_budget_spent(conversation, turns[-1].text, trigger_seq, epoch)
    notify_frame(conversation.pk, {"type": "typing", "role": "ai"})
    result: runtime.TurnResult | None = None
    turn = runtime.run_turn(
        agent=agent,
        tenant=connection.tenant,
        conversation=_turn_input(
            conversation, turns, abstentions=conversation.abstentions, visitor_turns=conversation.visitor_turns
        ),
    )
    checked = read = time.monotonic()
    flushed, unsent = float("-inf"), ""  # the first piece goes at once

    def flush() -> None:
        nonlocal flushed, unsent
        if unsent:
            notify_frame(conversation.pk, {"type": "delta", "reply_to": trigger_seq, "text": unsent})
        flushed, unsent = time.monotonic(), ""

    with contextlib.closing(turn):  # leaving early closes the model's stream: it stops generating
        for event in turn:
            if isinstance(event, runtime.Delta):
                unsent += event.text
                if time.monotonic() - flushed >= DELTA_FLUSH_SECONDS:
                    flush()
                if time.monotonic() - checked >= UNWANTED_CHECK_SECONDS:
                    checked = time.monotonic()
                    why = None
                    if newest_visitor_seq(current_schema(), conversation_id) > trigger_seq:
                        why = "superseded"
                    elif checked - read >= OWNER_CHECK_SECONDS:
                        read = checked
                        now = Conversation.objects.only("epoch", "owner").get(pk=conversation_id)
                        why = _discarded_because(now, trigger_seq, epoch)
                        release_connection()  # back to the pool while the model goes on
                    if why is not None:
                        logger.info(
                            "AI reply stopped while streaming: %s",
                            why,
                            extra={"data": {"conversation": conversation_id}},
                        )
                        return f"discarded: {why}"
            else:
                result = event
    flush()
    assert result is not None
    return _ai_reply_commit(
        conversation_id=conversation_id, agent=agent, result=result, trigger_seq=trigger_seq, epoch=epoch
    )


def _ai_reply_commit(*, conversation_id: int, agent: Agent, result: TurnResult, trigger_seq: int, epoch: int) -> str:
    """The AI turn's commit step: one transaction, holding the conversation's row lock, that
    checks the reply still applies and then writes the reply and every side effect of the
    turn (leads, contact memory, claims, knowledge gap, usage, the agent's statistics), or
    returns "discarded: ..." having written nothing. A takeover or a resolve either happened
    before (the reply is discarded) or waits for the lock until the reply is stored."""
    from apps.agents.commit import turn_commit, turn_count

    with transaction.atomic():
        current = Conversation.objects.select_for_update().get(pk=conversation_id)
        if (why := _discarded_because(current, trigger_seq, epoch)) is not None:
            logger.info("AI reply discarded: %s", why, extra={"data": {"conversation": conversation_id}})
            return f"discarded: {why}"
        committed = turn_commit(agent=agent, tenant=connection.tenant, result=result, contact=current.contact)
        current.summary = result.summary
        if result.folded_turns:
            current.summary_until_seq = _seq_after_folding(current, result.folded_turns)
        current.attributes = {**current.attributes, **result.attributes}
        current.abstentions = current.abstentions + 1 if result.decision == "abstained" else 0
        linked = committed.contact is not None and not current.contact_id
        if linked:
            current.contact = committed.contact
        current.save(
            update_fields=["summary", "summary_until_seq", "attributes", "abstentions", "contact", "updated_at"]
        )
        if linked:
            emit_updated(current, "contact")
        if result.effects.claims:
            current = conversation_claim(conversation_id=conversation_id, fields=result.effects.claims)
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
            client_id=_reply_client_id(epoch, trigger_seq),
            locked=current,
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
        if result.decision == "escalate":
            # The hand-over is part of the reply that announces it: both are stored, or neither.
            current = (
                Conversation.objects.select_for_update(of=("self",)).select_related("contact").get(pk=conversation_id)
            )
            escalate_locked(current, reason=result.escalation_reason or "escalated", summary=result.handoff_summary)
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
        conversation_escalate(conversation_id=conversation.pk, reason="the visitor asked for a human", epoch=epoch)
        return "escalated: AI budget spent"
    if abuse.first_notice_today(current_schema(), conversation.pk):
        client_id = f"budget-{epoch}-{trigger_seq}"
        message_post(conversation_id=conversation.pk, role="system", text=AI_BUDGET_SPENT, client_id=client_id)
    return "skipped: AI budget spent"


def _discarded_because(current: Conversation, trigger_seq: int, epoch: int) -> str | None:
    """Why the reply to `trigger_seq` no longer applies to the conversation as it is now (a
    person took it, a newer visitor message supersedes it), or None. The commit asks it under
    the row lock; a reply still streaming asks it to stop early."""
    if current.epoch != epoch or current.owner != Conversation.Owner.AI:
        return "ownership changed"
    return _overtaken(current, trigger_seq, epoch)


def _overtaken(conversation: Conversation, trigger_seq: int, epoch: int) -> str | None:
    """Whether the transcript has moved past this turn: "superseded" when a newer visitor
    message came (its reply answers both), "already answered" when this reply is stored (the
    same turn ran twice: a task delivered again after its worker died, or sent again by the
    stalled-turn sweep), else None."""
    newer = get_store().after(schema=current_schema(), conversation_id=conversation.pk, after_seq=trigger_seq, limit=50)
    if any(m.role == "visitor" for m in newer):
        return "superseded"
    if any(m.client_id == _reply_client_id(epoch, trigger_seq) for m in newer):
        return "already answered"
    return None


def _reply_client_id(epoch: int, trigger_seq: int) -> str:
    return f"ai-{epoch}-{trigger_seq}"


def _seq_after_folding(conversation: Conversation, folded_turns: int) -> int:
    """The seq up to which the transcript is now covered by the summary."""
    messages = get_store().after(
        schema=current_schema(), conversation_id=conversation.pk, after_seq=conversation.summary_until_seq, limit=500
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
