"""Which guidance rules the server enforces, and what counts as touching their topics."""

from __future__ import annotations

import pytest

from apps.agents.guidance import restrictions, violated

RULES = restrictions(
    [
        "Never discuss pricing or competitors' products; hand over instead.",
        "Please don't give legal advice.",
        "Avoid speculating about delivery dates",
        "Be friendly and brief.",
        "Always answer in English.",
        "",
        "never " * 200,
    ]
)


def test_only_rules_that_forbid_a_topic_are_parsed() -> None:
    assert [(r.topics, r.hand_over) for r in RULES] == [
        ((("pric",), ("competitor", "product")), True),
        ((("legal", "advic"),), False),
        ((("delivery", "date"),), False),
    ]


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("What are your prices?", 0),
        ("is it priced per month", 0),
        ("Are your competitors' products cheaper?", 0),
        ("I need some legal advice about my contract", 1),
        ("When is the delivery date for my order?", 2),
        ("Tell me about your products", None),  # one word of a two-word topic
        ("Is this legal?", None),
        ("The prick of a needle", None),  # a prefix is not a word
        ("How do I reset my password?", None),
        ("", None),
    ],
)
def test_a_text_touches_a_topic_when_it_has_all_its_words(text: str, rule: int | None) -> None:
    found = violated(RULES, text)
    assert (RULES.index(found) if found else None) == rule
