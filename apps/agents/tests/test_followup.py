"""Follow-up questions rewritten to stand alone (deterministic, no model, no database)."""

from __future__ import annotations

import pytest

from apps.agents.followup import needs_context, salient_terms, standalone_query
from apps.agents.providers import Turn
from apps.agents.vocabulary import stem, terms

DIALOGUE = [
    Turn("user", "How do I renew my driver license?"),
    Turn("assistant", "You can renew your driver license online, by mail or at a DMV office."),
]


def test_standalone_questions_are_left_alone() -> None:
    assert standalone_query([], "How do I renew my driver license?") == "How do I renew my driver license?"
    question = "What documents prove my identity for a REAL ID card?"
    assert standalone_query(DIALOGUE, question) == question


@pytest.mark.parametrize(
    "question",
    ["How much does it cost?", "and online?", "What about a motorcycle?", "What else do I need?", "Why?"],
)
def test_follow_ups_carry_the_conversation_terms(question: str) -> None:
    query = standalone_query(DIALOGUE, question)
    assert query.startswith(question)
    added = query[len(question) :].split()
    assert {"renew", "driver", "license"} <= set(added)


def test_visitor_words_outrank_the_answer_and_recent_outrank_old() -> None:
    turns = [
        Turn("user", "I want to register a snowmobile."),
        Turn("assistant", "Snowmobiles are registered at a DMV office."),
        Turn("user", "Do I need insurance for the trailer?"),
        Turn("assistant", "Trailers need a separate registration."),
    ]
    carried = salient_terms(turns)
    assert carried.index("insurance") < carried.index("snowmobile")
    assert carried[0] in ("insurance", "trailer")
    query = standalone_query(turns, "how much is it?")
    assert "trailer" in query and "snowmobile" in query


def test_smalltalk_and_empty_questions_are_not_rewritten() -> None:
    assert standalone_query(DIALOGUE, "thanks!") == "thanks!"
    assert standalone_query(DIALOGUE, "  ") == ""
    assert standalone_query(DIALOGUE, "ok   great") == "ok great"


def test_smalltalk_turns_are_not_carried() -> None:
    turns = [Turn("user", "hello there"), Turn("assistant", "Hello! How can I help you today?")]
    assert standalone_query(turns, "what does it cost?") == "what does it cost?"


def test_terms_already_in_the_question_are_not_repeated() -> None:
    query = standalone_query(DIALOGUE, "can I renew it online?")
    assert query.lower().count("renew") == 1


def test_needs_context() -> None:
    assert needs_context("Is it free?")
    assert needs_context("And for my son?")
    assert needs_context("more details")
    assert not needs_context("How do I apply for Social Security retirement benefits online?")


def test_terms_and_stems() -> None:
    assert [s for s, _ in terms("How do I renew my licenses?")] == ["renew", stem("license")]
    assert stem("renewing") == stem("renewed") == stem("renew")
    assert stem("licenses") == stem("license")
    assert stem("running") == "run"


def test_deterministic() -> None:
    assert len({standalone_query(DIALOGUE, "how much is it?") for _ in range(5)}) == 1


def test_possessives_and_contractions_count_as_their_word() -> None:
    """ "my husband's name" is about a husband, and "It'd" is no content word (neither is
    then taken for a rare word the knowledge lacks)."""
    assert [w for _, w in terms("It'd help: my husband's name, we're sure")] == ["help", "husband", "name"]
    assert [w for _, w in terms("O'Neill's form")] == ["oneill", "form"]
