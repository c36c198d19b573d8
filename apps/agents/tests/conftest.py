"""Fixtures for agent tests: alpha's owner as an Actor, inside alpha's schema, and a help
knowledge base ingested for real (eager Celery, on commit)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

HELP_ARTICLES = {
    "Shipping times": "# Shipping\n\nStandard shipping takes 3 to 5 business days within the EU. "
    "Express shipping arrives the next business day when ordered before 2 pm.",
    "Returns policy": "# Returns\n\nYou can return any unused item within 30 days of delivery for a full refund. "
    "Print the prepaid return label from your account page and drop the parcel at any post office.",
    "Resetting your password": "# Password reset\n\nTo reset your password, open the login page and click "
    "'Forgot password'. We email you a reset link that stays valid for one hour.",
}


def make_kb(owner: Any, capture: Any, articles: dict[str, str], name: str = "Help") -> Any:
    from apps.knowledge import services

    with capture(execute=True):
        kb = services.knowledge_base_create(editor=owner, name=name)
    for title, text in articles.items():
        with capture(execute=True):
            services.source_add_text(editor=owner, kb=kb, title=title, text=text)
    return kb


@pytest.fixture
def help_kb(owner: Any, django_capture_on_commit_callbacks: Any) -> Any:
    return make_kb(owner, django_capture_on_commit_callbacks, HELP_ARTICLES)


@pytest.fixture
def agent(owner: Any, help_kb: Any) -> Any:
    from apps.agents.services import agent_create

    return agent_create(
        editor=owner,
        name="Ava",
        instructions="Help {{ company_name }} customers.",
        variables={"company_name": "Alpha Outfitters"},
        knowledge_bases=[help_kb.pk],
    )


@pytest.fixture
def prompts(monkeypatch: Any) -> list[Any]:
    """Every ChatRequest the runtime hands to a provider (the prompt and its structured copy)."""
    from apps.agents import runtime

    seen: list[Any] = []
    real = runtime.get_provider

    def recording(name: str, credentials: Any) -> Any:
        provider = real(name, credentials)

        class Recorder:
            def __getattr__(self, attr: str) -> Any:
                return getattr(provider, attr)

            def stream(self, request: Any) -> Iterator[Any]:
                seen.append(request)
                return iter(provider.stream(request))

        return Recorder()

    monkeypatch.setattr(runtime, "get_provider", recording)
    return seen


def commit_effects(agent: Any, owner: Any, result: Any, contact: Any = None) -> Any:
    """Write a computed turn's effects the way a channel storing its reply does
    (apps.agents.commit, inside one transaction); what was committed."""
    from django.db import transaction

    from apps.agents.commit import turn_commit, turn_count

    with transaction.atomic():
        committed = turn_commit(agent=agent, tenant=owner.tenant, result=result, contact=contact)
        turn_count(agent=agent, channel=str(result.audit.get("channel") or ""), result=result)
    return committed


def stored_turn(agent: Any, owner: Any, conversation: Any) -> tuple[Any, Any]:
    """A turn computed by the runtime and then stored: (TurnResult, what was committed)."""
    from apps.agents.runtime import answer_turn

    result = answer_turn(agent=agent, tenant=owner.tenant, conversation=conversation)
    return result, commit_effects(agent, owner, result, conversation.contact)


def effects_result(**effects: Any) -> Any:
    """A computed turn that wants only `effects` written (for tests of tools and the commit)."""
    from apps.agents.effects import TurnEffects
    from apps.agents.runtime.turns import TurnResult

    return TurnResult(
        text="",
        decision="answered",
        citations=[],
        tool_calls=[],
        audit={},
        summary="",
        folded_turns=0,
        attributes={},
        effects=TurnEffects(**effects),
    )


def write_statements(queries: Any) -> list[str]:
    """The statements of a `CaptureQueriesContext` that write or lock rows."""
    import re

    writes = re.compile(r"^\s*UPDATE\b|\bINSERT\s+INTO\b|\bDELETE\s+FROM\b|\bFOR\s+(NO\s+KEY\s+)?UPDATE\b", re.I)
    return [q["sql"] for q in queries.captured_queries if writes.search(q["sql"])]


STANDIN_KEY = "sk-runtime-standin"


@pytest.fixture(scope="module")
def standin() -> Iterator[Any]:
    """A local stand-in for OpenAI's Chat Completions API (tests/standins/openai_server.py)."""
    from tests.standins.openai_server import OpenAIStandIn

    server = OpenAIStandIn(api_key=STANDIN_KEY).start()
    yield server
    server.stop()


def on_standin(agent: Any, settings: Any, standin: Any) -> Any:
    """`agent` answering through the OpenAI provider, the deployment's endpoint being the
    stand-in (its script and request log cleared)."""
    standin.reset()
    settings.OPENAI_API_KEY = STANDIN_KEY
    settings.OPENAI_BASE_URL = standin.base_url
    settings.OPENAI_TIMEOUT = 2
    settings.OPENAI_MAX_RETRIES = 1
    agent.provider = "openai"
    agent.model = "gpt-4o-mini"
    agent.save()
    return agent
