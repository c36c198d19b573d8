"""The demo workspace answers what a newcomer types on its demo page: casual, misspelt,
no punctuation. Each answer cites the Acme article that holds it; a question the help centre
does not cover is declined with the offer of a person."""

from __future__ import annotations

from typing import Any

import pytest

from apps.agents.models import Agent
from apps.agents.providers import Turn
from apps.agents.runtime import answer_turn
from apps.agents.runtime.turns import TurnInput
from apps.workspaces.demo import AGENT_NAME, seed_demo_content


@pytest.fixture
def demo_agent(owner: Any) -> Agent:
    seed_demo_content(owner.tenant, owner.user, "http://alpha.localhost:8000")
    return Agent.objects.get(name=AGENT_NAME)


def _ask(agent: Agent, tenant: Any, text: str) -> Any:
    return answer_turn(agent=agent, tenant=tenant, conversation=TurnInput(turns=[Turn("user", text)], dry_run=True))


@pytest.mark.parametrize(
    ("question", "article", "says"),
    [
        ("hey do u ship to canada??", "Shipping and delivery", "Canada"),
        ("my order came broken what now", "Warranty", "Report a problem"),
        ("how long till i get my refund", "Returns and refunds", "within 5 business days"),
        ("can i send stuff back if i dont like it", "Returns and refunds", "30 days"),
        ("forgot my pasword how do i get back in", "Your account and password", "Forgot password"),
        ("do you take paypal", "Payment methods", "PayPal"),
    ],
)
def test_newcomers_questions_are_answered_from_the_demo_help_centre(
    demo_agent: Agent, owner: Any, question: str, article: str, says: str
) -> None:
    result = _ask(demo_agent, owner.tenant, question)
    assert result.decision == "answered", (question, result.text, result.audit.get("retrieval"))
    assert article in {c.title for c in result.citations}, (question, result.text)
    assert says in result.text


@pytest.mark.parametrize("question", ["what time does your store in berlin close", "write me a poem about autumn"])
def test_what_the_help_centre_does_not_cover_is_declined(demo_agent: Agent, owner: Any, question: str) -> None:
    result = _ask(demo_agent, owner.tenant, question)
    assert result.decision in ("abstained", "escalate") and not result.citations, (question, result.text)


@pytest.mark.parametrize(
    ("question", "rule", "article"),
    [
        ("my parcel came on March 3. until when can i return it?", "30 days", "Returns and refunds"),
        ("i ordered at 1 pm today with express, when does it arrive", "next business day", "Shipping and delivery"),
        ("my order is 42 eur. do i have to pay for shipping?", "4.90 EUR", "Shipping and delivery"),
    ],
)
def test_a_question_that_needs_a_figure_worked_out_gets_the_rule_and_no_invented_figure(
    demo_agent: Agent, owner: Any, question: str, rule: str, article: str
) -> None:
    """A question whose answer needs a date, count or amount worked out from a rule is answered
    with the rule, cited to its article; every figure in the answer is one the cited article
    states (the offline responder quotes, it never computes: no "April 2")."""
    import re

    from apps.workspaces.demo import ARTICLES

    result = _ask(demo_agent, owner.tenant, question)
    assert result.decision == "answered", (question, result.text, result.audit.get("retrieval"))
    assert rule in result.text and article in {c.title for c in result.citations}, (question, result.text)
    cited_text = " ".join(ARTICLES[c.title] for c in result.citations)
    for figure in re.findall(r"\d+(?:[.,]\d+)?", re.sub(r"\[\d+\]", "", result.text)):
        assert figure in cited_text, (figure, result.text)
