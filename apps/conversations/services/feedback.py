"""The visitor's verdicts: the conversation's rating (CSAT) and "helpful?" on the AI's answers.
Both are domain events; the staff pages and the agents' statistics subscribe."""

from __future__ import annotations

from django.db import transaction

from apps.agents.models import Agent
from apps.events import types as events
from apps.events.services import emit
from syntera.errors import ApplicationError

from ..models import AnswerFeedback, Conversation
from ..stores import get_store
from .notify import current_schema


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
        found = get_store().after(schema=current_schema(), conversation_id=conversation_id, after_seq=seq - 1, limit=1)
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
