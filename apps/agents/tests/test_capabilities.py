"""What a provider can do is declared by its class (`Capabilities`) and read by the runtime and
the pages; no code outside the providers tells providers apart by their name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from apps.agents import providers
from apps.agents.providers import (
    Capabilities,
    ChatRequest,
    Finish,
    ProviderCredentials,
    ProviderEvent,
    TextDelta,
    Turn,
    capabilities_for,
)
from apps.agents.runtime import answer_turn
from apps.agents.runtime.turns import TurnInput

MODEL = Capabilities(tools=True, abstains_without_context=False, summaries=True, default_model="scripted-1")


class Scripted:
    """A provider that cites the first passage it is given, or says it has none."""

    name = "scripted"

    def __init__(self, seen: list[ChatRequest]) -> None:
        self.seen = seen

    def stream(self, request: ChatRequest) -> Iterator[ProviderEvent]:
        self.seen.append(request)
        yield TextDelta("Standard shipping takes 3 to 5 business days [1]." if request.context else "Noted.")
        yield Finish("stop")


class ScriptedModel(Scripted):
    capabilities = MODEL


@pytest.fixture
def scripted(agent: Any, monkeypatch: Any) -> Any:
    """The agent on a provider registered as "scripted"; `use(cls)` picks its class and returns
    the requests it receives."""

    def use(cls: type[Scripted]) -> list[ChatRequest]:
        seen: list[ChatRequest] = []
        monkeypatch.setitem(providers.PROVIDER_MODULES, "scripted", __name__)
        monkeypatch.setitem(providers.PROVIDERS, "scripted", lambda _credentials: cls(seen))
        agent.provider = "scripted"
        agent.save()
        return seen

    return use


def _turn(agent: Any, owner: Any, *texts: str) -> Any:
    turns = [Turn("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)]
    return answer_turn(agent=agent, tenant=owner.tenant, conversation=TurnInput(turns=turns, dry_run=True))


def test_a_provider_that_declares_a_model_gets_tools_summaries_and_no_context_turns(
    agent: Any, owner: Any, scripted: Any, settings: Any
) -> None:
    seen = scripted(ScriptedModel)
    answered = _turn(agent, owner, "How long does standard shipping take?")
    assert answered.decision == "answered" and answered.audit["model"] == "scripted-1"
    assert {t.name for t in seen[-1].tools} == {
        "search_knowledge",
        "capture_lead",
        "escalate_to_human",
        "set_attributes",
    }
    # Nothing in the knowledge clears the threshold: the model is still asked (it may hand over
    # or take a lead), given no passage, and what it says is replaced by an abstention.
    asked = len(seen)
    unanswered = _turn(agent, owner, "Do you ship to Antarctica?")
    assert len(seen) == asked + 1 and seen[-1].context == []
    assert unanswered.decision == "abstained" and unanswered.audit["reason"] == "retrieval below the agent's threshold"
    # It writes the running summary when old turns are folded.
    settings.AGENT_HISTORY_BUDGET = 20
    history = [f"Question {i} about my order {1000 + i} and its delivery, in some detail." for i in range(6)]
    _turn(agent, owner, *history, "How long does standard shipping take?")
    assert any("Update the running summary" in str(r.messages[0]["content"]) for r in seen)


def test_a_provider_that_declares_nothing_gets_the_least(agent: Any, owner: Any, scripted: Any, settings: Any) -> None:
    seen = scripted(Scripted)
    assert providers.capabilities_of(Scripted([])) == Capabilities()
    answered = _turn(agent, owner, "How long does standard shipping take?")
    assert answered.decision == "answered" and seen[-1].tools == []
    asked = len(seen)
    unanswered = _turn(agent, owner, "Do you ship to Antarctica?")
    assert len(seen) == asked and unanswered.audit["reason"] == "retrieval below the agent's threshold"
    settings.AGENT_HISTORY_BUDGET = 20
    history = [f"Question {i} about my order {1000 + i} and its delivery, in some detail." for i in range(6)]
    folded = _turn(agent, owner, *history, "How long does standard shipping take?")
    assert folded.folded_turns and "order 1000" in folded.summary  # folded extractively, not asked
    assert not any("Update the running summary" in str(r.messages[0]["content"]) for r in seen)


def test_the_shipped_providers_declare_what_they_can_do() -> None:
    offline, openai = capabilities_for("offline"), capabilities_for("openai")
    assert (offline.tools, offline.abstains_without_context, offline.summaries) == (False, True, False)
    assert (offline.default_model, offline.needs_credentials) == ("offline-extractive", False)
    assert (openai.tools, openai.abstains_without_context, openai.summaries) == (True, False, True)
    assert (openai.default_model, openai.needs_credentials) == (django_settings.OPENAI_CHAT_MODEL, True)
    assert providers.get_provider("openai", ProviderCredentials()).capabilities == openai  # type: ignore[attr-defined]


def test_only_providers_that_need_credentials_take_them(api_for: Any, alpha: Any) -> None:
    api = api_for(alpha.host, alpha.api_key)
    refused = api.put("/api/v1/llm-credentials/offline", {"api_key": "sk-x"}, format="json")
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"


ROOT = Path(__file__).resolve().parents[3]
# Business code, pages and templates: providers are told apart by their capabilities there.
SCANNED = ["apps/agents", "apps/conversations", "apps/routing", "apps/dashboard", "templates"]
# Where a provider's name meets the deployment's settings that configure it (OPENAI_API_KEY).
NAMED_ON_PURPOSE = {"apps/agents/credentials.py"}
# A comparison with a provider's name, on a line about providers (presence also has "offline").
NAME_CHECK = re.compile(r"""(?:==|!=|\bin\b)\s*\(?\s*["'](?:offline|openai)["']""")


def test_no_code_outside_the_providers_checks_a_providers_name() -> None:
    found = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".html") or "tests" in path.parts or "migrations" in path.parts:
                continue
            if "providers" in path.parts or str(path.relative_to(ROOT)) in NAMED_ON_PURPOSE:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if NAME_CHECK.search(line) and "provider" in line.lower():
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
