"""Misspelt question words corrected against the knowledge base's own words
(`apps.knowledge.search.correct_spelling`): a slip is corrected, a real English word the
knowledge lacks is not, and one workspace's words never correct another's questions."""

from __future__ import annotations

from typing import Any

import pytest

from apps.knowledge.search import correct_spelling
from apps.knowledge.search.spelling import closest, distance

ARTICLE = (
    "# Repeating a course\n\nThe GI Bill pays for a repeated statistics course only when the grade does not meet "
    "your program's requirements. Ask your school's certifying official about the cutoff grade."
)


def _kb(owner: Any, capture: Any, title: str, text: str) -> Any:
    from apps.knowledge import services

    with capture(execute=True):
        kb = services.knowledge_base_create(editor=owner, name=title)
    with capture(execute=True):
        services.source_add_text(editor=owner, kb=kb, title=title, text=text)
    return kb


def test_edit_distance_counts_a_swap_as_one_slip() -> None:
    assert distance("statistcs", "statistics", 2) == 1
    assert distance("recieve", "receive", 2) == 1
    assert distance("cuttoff", "cutoff", 2) == 1
    assert distance("placard", "placed", 1) == 2  # beyond the limit: limit + 1
    assert closest("meditate", {"medicare": 5}) is None
    assert closest("grdae", {"grade": 3, "grace": 9}) == "grade"  # a swap beats two substitutions


def test_misspelt_words_are_corrected_to_the_knowledge_bases_words(
    owner: Any, django_capture_on_commit_callbacks: Any
) -> None:
    kb = _kb(owner, django_capture_on_commit_callbacks, "Courses", ARTICLE)
    spelled = correct_spelling("got a D in statistcs, whats the cuttoff grade?", [kb.pk])
    assert spelled.corrections == {"statistcs": "statistics", "cuttoff": "cutoff"}
    assert spelled.text == "got a D in statistics, whats the cutoff grade?"


def test_real_words_the_knowledge_lacks_and_known_words_stay(
    owner: Any, django_capture_on_commit_callbacks: Any
) -> None:
    kb = _kb(owner, django_capture_on_commit_callbacks, "Courses", ARTICLE + " Parking is placed behind the hall.")
    # "placard" is an English word (a question the knowledge does not answer), not a slip of "placed".
    question = "Can I get a parking placard for my course?"
    assert correct_spelling(question, [kb.pk]).text == question
    medicare = _kb(owner, django_capture_on_commit_callbacks, "Health", "# Medicare\n\nApply for Medicare online.")
    assert correct_spelling("How do I meditate?", [medicare.pk]).corrections == {}
    assert correct_spelling("", [kb.pk]).corrections == {}
    assert correct_spelling("statistcs", []).corrections == {}


def test_a_new_article_s_words_are_used_at_once(owner: Any, django_capture_on_commit_callbacks: Any) -> None:
    from apps.knowledge import services

    kb = _kb(owner, django_capture_on_commit_callbacks, "Courses", ARTICLE)
    assert correct_spelling("mortgge", [kb.pk]).corrections == {}
    with django_capture_on_commit_callbacks(execute=True):
        services.source_add_text(editor=owner, kb=kb, title="Loans", text="# Loans\n\nA mortgage is a loan.")
    assert correct_spelling("mortgge", [kb.pk]).corrections == {"mortgge": "mortgage"}


def test_another_workspace_s_words_never_correct_a_question(
    owner: Any, beta: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from django_tenants.utils import get_tenant_model, tenant_context

    kb = _kb(owner, django_capture_on_commit_callbacks, "Courses", ARTICLE)
    assert correct_spelling("statistcs", [kb.pk]).corrections == {"statistcs": "statistics"}
    with tenant_context(get_tenant_model().objects.get(schema_name=beta.schema)):
        # The same knowledge base id in beta's schema is beta's (or nothing): alpha's words stay alpha's.
        assert correct_spelling("statistcs", [kb.pk]).corrections == {}


@pytest.mark.parametrize("hostile", ["x" * 5000, "'; DROP TABLE knowledge_chunk; --", "statistcs\x00", "ß" * 50])
def test_hostile_questions_are_left_as_they_are(
    owner: Any, django_capture_on_commit_callbacks: Any, hostile: str
) -> None:
    kb = _kb(owner, django_capture_on_commit_callbacks, "Courses", ARTICLE)
    spelled = correct_spelling(hostile, [kb.pk])
    assert spelled.text.replace("statistics", "statistcs") == hostile
