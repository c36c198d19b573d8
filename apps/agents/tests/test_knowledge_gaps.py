"""Knowledge gaps: the questions an agent could not answer, counted per wording. Recorded by
every abstaining turn's commit, so in one statement of its own SQL; these tests hold what that
statement must keep doing."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.agents.models import KnowledgeGap
from apps.agents.services import knowledge_gap_record


def test_a_question_asked_again_is_counted_once_per_ask_in_one_statement(agent: Any) -> None:
    first = knowledge_gap_record(agent=agent, question="Do you ship to  Mars?", unknown_words=["mars"], channel="web")
    with CaptureQueriesContext(connection) as queries:
        again = knowledge_gap_record(
            agent=agent, question="do you ship to mars", unknown_words=["mars", "ship"], channel="email"
        )
    assert len(queries.captured_queries) == 1, [q["sql"] for q in queries.captured_queries]
    assert again.pk == first.pk and again.count == 2 and again.agent == agent
    stored = KnowledgeGap.objects.get(pk=first.pk)
    assert (stored.question, stored.count, stored.unknown_words, stored.channel) == (
        "Do you ship to Mars?",  # the first wording stays, spaces folded
        2,
        ["mars", "ship"],  # what the latest ask did not find
        "email",
    )
    assert stored.first_asked_at == first.first_asked_at < stored.last_asked_at
    assert (again.first_asked_at, again.unknown_words, again.dismissed_at) == (
        stored.first_asked_at,
        stored.unknown_words,
        None,
    )


def test_a_dismissed_question_asked_again_comes_back(agent: Any) -> None:
    gap = knowledge_gap_record(agent=agent, question="Gift wrap?", unknown_words=["gift", "wrap"])
    KnowledgeGap.objects.filter(pk=gap.pk).update(dismissed_at=timezone.now())
    back = knowledge_gap_record(agent=agent, question="gift wrap", unknown_words=["gift"])
    stored = KnowledgeGap.objects.get(pk=gap.pk)
    assert back.pk == gap.pk and (stored.count, stored.dismissed_at) == (2, None)


def test_hostile_and_oversized_questions_are_stored_bounded_and_in_their_workspace(agent: Any, beta: Any) -> None:
    question = "'); DROP TABLE agents_knowledgegap; --\x00 " + "why " * 400
    words = [f"w{i}" for i in range(100)]
    gap = knowledge_gap_record(agent=agent, question=question, unknown_words=words, channel="x" * 50)
    stored = KnowledgeGap.objects.get(pk=gap.pk)
    assert len(stored.question) == 500 and "\x00" not in stored.question
    assert stored.question.startswith("'); DROP TABLE agents_knowledgegap; --")
    assert (stored.unknown_words, stored.channel) == (words[:32], "x" * 20)
    with schema_context(beta.schema):
        assert not KnowledgeGap.objects.exists()
