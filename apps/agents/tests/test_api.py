"""Agents through the API as a tenant admin and an integrator use them: configuration with
prompt versions, the test turn (the same service the channels use) answering with citations,
abstaining and escalating, provider credentials, quotas, and the bad inputs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.agents.models import ProviderCredential

ARTICLES = {
    "Shipping times": "# Shipping\n\nStandard shipping takes 3 to 5 business days within the EU. "
    "Express shipping arrives the next business day when ordered before 2 pm.",
    "Returns policy": "# Returns\n\nYou can return any unused item within 30 days of delivery for a full refund. "
    "Print the prepaid return label from your account page and drop the parcel at any post office.",
    "Resetting your password": "# Password reset\n\nTo reset your password, open the login page and click "
    "'Forgot password'. We email you a reset link that stays valid for one hour.",
}


@pytest.fixture
def api(alpha: Any, api_for: Any, django_capture_on_commit_callbacks: Any) -> Iterator[Any]:
    """Alpha's API client (owner key); ingestion runs when each request's transaction commits."""
    client = api_for(alpha.host, alpha.api_key)

    class Committing:
        def __getattr__(self, name: str) -> Any:
            method = getattr(client, name)

            def call(*args: Any, **kwargs: Any) -> Any:
                with django_capture_on_commit_callbacks(execute=True):
                    return method(*args, **kwargs)

            return call

    yield Committing()


@pytest.fixture
def help_kb(api: Any) -> int:
    kb = api.post("/api/v1/knowledge-bases/", {"name": "Help centre"}, format="json").json()["id"]
    for title, text in ARTICLES.items():
        response = api.post(
            f"/api/v1/knowledge-bases/{kb}/sources/", {"type": "text", "title": title, "text": text}, format="json"
        )
        assert response.status_code == 201, response.content
    return int(kb)


def _agent(api: Any, kb: int | None = None, **extra: Any) -> dict[str, Any]:
    body = {
        "name": "Ava",
        "instructions": "Help {{ company_name }} customers with orders.",
        "greeting": "Hi! How can I help?",
        "knowledge_bases": [kb] if kb else [],
        "variables": {"company_name": "Alpha Outfitters"},
        **extra,
    }
    response = api.post("/api/v1/agents/", body, format="json")
    assert response.status_code == 201, response.content
    return dict(response.json())


def _ask(api: Any, agent_id: int, *texts: str) -> dict[str, Any]:
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "text": t} for i, t in enumerate(texts)]
    response = api.post(f"/api/v1/agents/{agent_id}/test", {"messages": messages}, format="json")
    assert response.status_code == 200, response.content
    return dict(response.json())


def test_agent_defaults_and_prompt_versions(api: Any, help_kb: int) -> None:
    agent = _agent(api, help_kb)
    assert agent["provider"] == "offline" and agent["knowledge_bases"] == [help_kb]
    assert agent["tools"] == ["search_knowledge", "capture_lead", "escalate_to_human", "set_attributes"]
    assert agent["prompt_version"] == 1 and agent["escalation_policy"]["on_request"] is True

    # A change to what shapes answers makes a new version; the active flag does not.
    updated = api.patch(f"/api/v1/agents/{agent['id']}/", {"instructions": "Be brief."}, format="json").json()
    assert updated["prompt_version"] == 2
    same = api.patch(f"/api/v1/agents/{agent['id']}/", {"is_active": False}, format="json").json()
    assert same["prompt_version"] == 2
    versions = api.get(f"/api/v1/agents/{agent['id']}/versions/").json()["results"]
    assert [v["number"] for v in versions] == [2, 1]
    assert versions[0]["snapshot"]["instructions"] == "Be brief."
    assert versions[1]["snapshot"]["instructions"].startswith("Help {{ company_name }}")

    listed = api.get("/api/v1/agents/").json()
    assert agent["id"] in [a["id"] for a in listed["results"]]
    assert api.delete(f"/api/v1/agents/{agent['id']}/").status_code == 204
    assert api.get(f"/api/v1/agents/{agent['id']}/").status_code == 404


def test_an_earlier_prompt_version_is_restored_as_a_new_version(
    api: Any, help_kb: int, alpha: Any, api_for: Any, make_member: Any, jwt_for: Any, beta: Any
) -> None:
    agent = _agent(api, help_kb)
    url = f"/api/v1/agents/{agent['id']}"
    original = agent["instructions"]
    api.patch(f"{url}/", {"instructions": "Be brief.", "temperature": 0.9, "knowledge_bases": []}, format="json")
    restored = api.post(f"{url}/versions/1/restore")
    assert restored.status_code == 200, restored.content
    body = restored.json()
    assert (body["prompt_version"], body["instructions"]) == (3, original)
    assert body["temperature"] == agent["temperature"] and body["knowledge_bases"] == [help_kb]
    versions = api.get(f"{url}/versions/").json()["results"]
    assert [v["number"] for v in versions] == [3, 2, 1]  # history is never rewritten
    assert versions[0]["snapshot"] == versions[2]["snapshot"]
    # Answers record the version that produced them: the restored one.
    answer = _ask(api, agent["id"], "How long does standard shipping take?")
    assert answer["audit"]["prompt_version"] == 3
    # Restoring what is already current makes no version.
    assert api.post(f"{url}/versions/3/restore").json()["prompt_version"] == 3
    # Bad input, roles, other workspaces.
    assert api.post(f"{url}/versions/99/restore").status_code == 404
    assert api.post("/api/v1/agents/999999/versions/1/restore").status_code == 404
    viewer, _ = make_member(alpha, "viewer")
    assert api_for(alpha.host, jwt_for(alpha, viewer.email)).post(f"{url}/versions/2/restore").status_code == 403
    assert api_for(beta.host, beta.api_key).post(f"{url}/versions/2/restore").status_code == 404
    assert api.get(f"{url}/").json()["prompt_version"] == 3


def test_an_agent_is_duplicated_with_every_setting(
    api: Any, help_kb: int, alpha: Any, api_for: Any, make_member: Any, jwt_for: Any, beta: Any
) -> None:
    policy = {"on_request": False, "keywords": {"enabled": True, "words": ["refund"]}}
    agent = _agent(
        api,
        help_kb,
        guidance_rules=["never discuss pricing"],
        tools=["search_knowledge"],
        temperature=0.7,
        escalation_policy=policy,
    )
    url = f"/api/v1/agents/{agent['id']}"
    api.patch(f"{url}/", {"instructions": "Be brief."}, format="json")  # the original is at version 2

    response = api.post(f"{url}/duplicate", {}, format="json")
    assert response.status_code == 201, response.content
    copy = response.json()
    assert copy["id"] != agent["id"] and copy["name"] == "Ava (copy)" and copy["prompt_version"] == 1
    same = ("instructions", "greeting", "variables", "guidance_rules", "tools", "temperature", "knowledge_bases")
    original = api.get(f"{url}/").json()
    assert {k: copy[k] for k in same} == {k: original[k] for k in same}
    assert copy["escalation_policy"] == original["escalation_policy"]
    assert [v["number"] for v in api.get(f"/api/v1/agents/{copy['id']}/versions/").json()["results"]] == [1]
    # It answers from the same knowledge, as its own version 1.
    answer = _ask(api, copy["id"], "How long does standard shipping take?")
    assert answer["decision"] == "answered" and answer["audit"]["prompt_version"] == 1
    # Changing the copy leaves the original alone.
    api.patch(f"/api/v1/agents/{copy['id']}/", {"knowledge_bases": [], "name": "Bea"}, format="json")
    assert api.get(f"{url}/").json()["knowledge_bases"] == [help_kb]

    named = api.post(f"{url}/duplicate", {"name": "  Ava   for sales "}, format="json").json()
    assert named["name"] == "Ava for sales"
    long = _agent(api, name="n" * 120)
    assert api.post(f"/api/v1/agents/{long['id']}/duplicate", {}, format="json").json()["name"] == "n" * 113 + " (copy)"
    # Bad input, roles, other workspaces: nothing is created.
    count = api.get("/api/v1/agents/").json()["count"]
    assert api.post(f"{url}/duplicate", {"name": "x" * 121}, format="json").status_code == 400
    assert api.post(f"{url}/duplicate", {"name": ["a"]}, format="json").status_code == 400
    assert api.post("/api/v1/agents/999999/duplicate", {}, format="json").status_code == 404
    viewer, _ = make_member(alpha, "viewer")
    assert api_for(alpha.host, jwt_for(alpha, viewer.email)).post(f"{url}/duplicate", {}).status_code == 403
    assert api_for(beta.host, beta.api_key).post(f"{url}/duplicate", {}).status_code == 404
    assert api.get("/api/v1/agents/").json()["count"] == count


def test_an_agent_is_exported_and_imported_into_another_workspace(
    api: Any, help_kb: int, alpha: Any, api_for: Any, make_member: Any, jwt_for: Any, beta: Any
) -> None:
    agent = _agent(api, help_kb, guidance_rules=["never discuss pricing"], tools=["search_knowledge"], top_k=6)
    notes_kb = api.post("/api/v1/knowledge-bases/", {"name": "Internal notes"}, format="json").json()["id"]
    exported = api.get(f"/api/v1/agents/{agent['id']}/export")
    assert exported.status_code == 200
    document = exported.json()
    assert (document["format"], document["version"], document["prompt_version"]) == ("syntera.agent", 1, 1)
    assert document["agent"]["knowledge_bases"] == [{"name": "Help centre"}]
    assert document["agent"]["instructions"] == agent["instructions"] and "id" not in document["agent"]
    viewer, _ = make_member(alpha, "viewer")
    as_viewer = api_for(alpha.host, jwt_for(alpha, viewer.email))
    assert as_viewer.get(f"/api/v1/agents/{agent['id']}/export").json()["agent"] == document["agent"]

    # Into beta: a knowledge base of the same name is attached; one it lacks is reported.
    other = api_for(beta.host, beta.api_key)
    assert other.get(f"/api/v1/agents/{agent['id']}/export").status_code == 404  # not beta's to export
    beta_kb = other.post("/api/v1/knowledge-bases/", {"name": "Help centre"}, format="json").json()["id"]
    document["agent"]["knowledge_bases"].append({"name": "Internal notes"})
    imported = other.post("/api/v1/agents/import", document, format="json")
    assert imported.status_code == 201, imported.content
    body = imported.json()
    assert body["missing_knowledge_bases"] == ["Internal notes"]
    copy = body["agent"]
    assert copy["knowledge_bases"] == [beta_kb] and copy["prompt_version"] == 1
    for field in (
        "name",
        "instructions",
        "greeting",
        "variables",
        "guidance_rules",
        "tools",
        "top_k",
        "escalation_policy",
    ):
        assert copy[field] == agent[field] or field in ("guidance_rules", "tools", "top_k"), field
    assert (copy["guidance_rules"], copy["tools"], copy["top_k"]) == (
        ["never discuss pricing"],
        ["search_knowledge"],
        6,
    )
    # Back into alpha under another name: the same knowledge base, by name.
    again = api.post("/api/v1/agents/import", {**document, "name": "Ava 2"}, format="json").json()
    assert again["agent"]["name"] == "Ava 2" and again["missing_knowledge_bases"] == []
    assert sorted(again["agent"]["knowledge_bases"]) == sorted([help_kb, notes_kb])

    # Bad documents: a clear error on the field, nothing created.
    count = api.get("/api/v1/agents/").json()["count"]
    bad_documents = [
        {},
        {**document, "format": "dify.app"},
        {**document, "version": 2},
        {**document, "agent": "Ava"},
        {**document, "agent": {**document["agent"], "temperature": 9}},
        {**document, "agent": {**document["agent"], "tools": ["run_shell"]}},
        {**document, "agent": {**document["agent"], "knowledge_bases": [7]}},
        {**document, "agent": {**document["agent"], "name": ""}},
        {**document, "agent": {**document["agent"], "instructions": "x" * 20_001}},
    ]
    for bad in bad_documents:
        refused = api.post("/api/v1/agents/import", bad, format="json")
        assert refused.status_code == 400 and refused.json()["error"]["fields"], bad
    assert api.post("/api/v1/agents/import", "not json", content_type="application/json").status_code == 400
    assert as_viewer.post("/api/v1/agents/import", document, format="json").status_code == 403
    assert api.get("/api/v1/agents/").json()["count"] == count
    assert api.get("/api/v1/agents/999999/export").status_code == 404


def test_knowledge_gaps_are_listed_and_dismissed(
    api: Any, help_kb: int, alpha: Any, api_for: Any, make_member: Any, jwt_for: Any, beta: Any
) -> None:
    from django_tenants.utils import schema_context

    from apps.agents import services
    from apps.agents.models import Agent

    agent = _agent(api, help_kb)
    url = f"/api/v1/agents/{agent['id']}/knowledge-gaps/"
    with schema_context(alpha.schema):
        model = Agent.objects.get(pk=agent["id"])
        services.knowledge_gap_record(agent=model, question="Do you ship to Mars?", unknown_words=["mars"])
        services.knowledge_gap_record(agent=model, question="do you ship to mars", unknown_words=["mars"])
        services.knowledge_gap_record(agent=model, question="<b>Gift wrap?</b>", unknown_words=["gift", "wrap"])
    listed = api.get(url).json()["results"]
    assert [(g["question"], g["count"]) for g in listed] == [("Do you ship to Mars?", 2), ("<b>Gift wrap?</b>", 1)]
    assert set(listed[0]) >= {"id", "unknown_words", "channel", "first_asked_at", "last_asked_at", "dismissed_at"}
    viewer, _ = make_member(alpha, "viewer")
    as_viewer = api_for(alpha.host, jwt_for(alpha, viewer.email))
    assert as_viewer.get(url).status_code == 200
    assert as_viewer.delete(f"{url}{listed[0]['id']}").status_code == 403
    assert api_for(beta.host, beta.api_key).get(url).status_code == 404
    assert api.delete(f"/api/v1/agents/999999/knowledge-gaps/{listed[0]['id']}").status_code == 404
    assert api.delete(f"{url}{listed[0]['id']}").status_code == 204
    assert [g["count"] for g in api.get(url).json()["results"]] == [1]
    dismissed = api.get(f"{url}?dismissed=true").json()["results"]
    assert [g["question"] for g in dismissed] == ["Do you ship to Mars?"] and dismissed[0]["dismissed_at"]


def test_a_knowledge_gap_is_answered_into_the_agents_knowledge(
    api: Any, help_kb: int, alpha: Any, api_for: Any, make_member: Any, jwt_for: Any, beta: Any
) -> None:
    from django_tenants.utils import schema_context

    from apps.agents import services
    from apps.agents.models import Agent

    agent = _agent(api, help_kb)
    with schema_context(alpha.schema):
        gap = services.knowledge_gap_record(
            agent=Agent.objects.get(pk=agent["id"]), question="Do you ship to Mars?", unknown_words=["mars"]
        )
    url = f"/api/v1/agents/{agent['id']}/knowledge-gaps/{gap.pk}/answer"
    for bad in ({}, {"answer": ""}, {"answer": "x" * 20001}, {"answer": "Yes.", "knowledge_base": help_kb + 999}):
        refused = api.post(url, bad, format="json")
        assert refused.status_code == 400 and refused.json()["error"]["fields"], bad
    viewer, _ = make_member(alpha, "viewer")
    assert (
        api_for(alpha.host, jwt_for(alpha, viewer.email)).post(url, {"answer": "Yes."}, format="json").status_code
        == 403
    )
    assert api_for(beta.host, beta.api_key).post(url, {"answer": "Yes."}, format="json").status_code == 404
    assert api.post(f"/api/v1/agents/{agent['id']}/knowledge-gaps/999999/answer", {"answer": "Yes."}).status_code == 404
    created = api.post(url, {"answer": "Not yet: we ship within the EU only."}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["knowledge_base"], body["title"], body["entries"]) == (help_kb, "Answered questions", 1)
    source = api.get(f"/api/v1/knowledge-bases/{help_kb}/sources/{body['source_id']}/").json()
    assert source["type"] == "faq" and source["status"] == "ready"
    assert api.get(f"/api/v1/agents/{agent['id']}/knowledge-gaps/").json()["results"] == []  # dismissed
    reply = _ask(api, agent["id"], "Do you ship to Mars?")
    assert reply["decision"] == "answered" and "EU only" in reply["text"] and "Mars?" not in reply["text"]


def test_batch_tests_through_the_api(
    api: Any, help_kb: int, alpha: Any, api_for: Any, make_member: Any, jwt_for: Any, beta: Any
) -> None:
    agent = _agent(api, help_kb)
    url = f"/api/v1/agents/{agent['id']}/batch-tests/"
    questions = [
        {"question": "How long does standard shipping take?", "expected": "Shipping times"},
        {"question": "Hi"},
    ]
    started = api.post(url, {"questions": questions}, format="json")
    assert started.status_code == 202, started.content
    run = started.json()
    assert run["prompt_version"] == 1 and run["summary"]["total"] == 2
    detail = api.get(f"{url[:-1]}/{run['id']}").json()  # eager Celery: already answered
    assert detail["status"] == "done" and [r["decision"] for r in detail["results"]] == ["answered", "answered"]
    assert detail["results"][0]["matched"] is True and detail["summary"]["matched"] == 1
    assert [r["id"] for r in api.get(url).json()["results"]] == [run["id"]]
    for bad in (
        {},
        {"questions": []},
        {"questions": "How?"},
        {"questions": [{"question": ""}]},
        {"questions": [{"question": "x" * 1001}]},
        {"questions": [{"question": "Why?"}] * 201},
        {"questions": [{"expected": "Shipping times"}]},
    ):
        refused = api.post(url, bad, format="json")
        assert refused.status_code == 400 and refused.json()["error"]["fields"], bad
    viewer, _ = make_member(alpha, "viewer")
    as_viewer = api_for(alpha.host, jwt_for(alpha, viewer.email))
    assert as_viewer.get(url).status_code == 200
    assert as_viewer.post(url, {"questions": questions}, format="json").status_code == 403
    other = api_for(beta.host, beta.api_key)
    assert other.get(url).status_code == 404 and other.get(f"{url[:-1]}/{run['id']}").status_code == 404
    assert api.get(f"{url[:-1]}/999999").status_code == 404
    assert len(api.get(url).json()["results"]) == 1  # nothing refused was queued

    # A second run compared with the first: the default baseline, or one named by its id.
    assert detail["comparison"] is None
    assert api.get(f"{url[:-1]}/{run['id']}?compare_to=previous").json()["comparison"] is None  # none earlier
    again = api.post(url, {"questions": [*questions, {"question": "Can I pay by invoice?"}]}, format="json").json()
    compared = api.get(f"{url[:-1]}/{again['id']}?compare_to=previous").json()["comparison"]
    assert compared["baseline"] == run["id"] and compared["baseline_prompt_version"] == 1
    assert [i["change"] for i in compared["items"]] == ["same", "same", "new"]
    assert compared["counts"]["same"] == 2 and compared["items"][0]["before"]["matched"] is True
    assert api.get(f"{url[:-1]}/{again['id']}?compare_to={run['id']}").json()["comparison"] == compared
    for bad in ("last", "-1", "1.5", "x" * 30):
        refused = api.get(f"{url[:-1]}/{again['id']}?compare_to={bad}")
        assert refused.status_code == 400 and "compare_to" in refused.json()["error"]["fields"], bad
    assert api.get(f"{url[:-1]}/{again['id']}?compare_to=999999").status_code == 404
    assert api.get(f"{url[:-1]}/{again['id']}?compare_to=999999999999999999").status_code == 404
    with_other_agent = api.post(
        f"/api/v1/agents/{_agent(api, help_kb)['id']}/batch-tests/", {"questions": questions}, format="json"
    )
    other_run = with_other_agent.json()["id"]
    assert api.get(f"{url[:-1]}/{again['id']}?compare_to={other_run}").status_code == 404  # another agent's run


def test_agent_stats_count_the_turns_visitors_got_per_day_and_channel(
    api: Any, help_kb: int, alpha: Any, api_for: Any, make_member: Any, jwt_for: Any, beta: Any
) -> None:
    from django_tenants.utils import schema_context

    from apps.agents import services
    from apps.agents.models import Agent

    agent = _agent(api, help_kb)
    url = f"/api/v1/agents/{agent['id']}/stats"
    empty = api.get(url).json()
    assert (empty["days"], len(empty["by_day"]), empty["by_channel"]) == (30, 30, [])
    assert empty["totals"]["turns"] == 0 and empty["totals"]["answer_rate"] is None
    with schema_context(alpha.schema):
        model = Agent.objects.get(pk=agent["id"])
        for decision, channel, ms in (("answered", "widget", 40), ("answered", "sms", 90), ("escalate", "widget", 20)):
            services.agent_stats_record(
                agent=model,
                channel=channel,
                decision=decision,
                unanswered=False,
                prompt_tokens=100,
                completion_tokens=10,
                latency_ms=ms,
            )
    _ask(api, agent["id"], "How long does standard shipping take?")  # the test turn is not counted
    stats = api.get(f"{url}?days=7").json()
    assert stats["days"] == 7 and stats["until"] == stats["by_day"][-1]["day"]
    totals = stats["totals"]
    assert (totals["turns"], totals["answered"], totals["escalated"], totals["abstained"]) == (3, 2, 1, 0)
    assert (totals["answer_rate"], totals["avg_latency_ms"], totals["slowest_ms"]) == (0.6667, 50, 90)
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (300, 30)
    assert [(c["channel"], c["turns"]) for c in stats["by_channel"]] == [("widget", 2), ("sms", 1)]
    viewer, _ = make_member(alpha, "viewer")
    assert api_for(alpha.host, jwt_for(alpha, viewer.email)).get(url).status_code == 200
    assert api_for(beta.host, beta.api_key).get(url).status_code == 404  # another workspace's agent
    assert api.get("/api/v1/agents/999999/stats").status_code == 404
    for bad in ("0", "367", "-3", "week", "1e3"):
        refused = api.get(f"{url}?days={bad}")
        assert refused.status_code == 400 and "days" in refused.json()["error"]["fields"], bad


def test_test_turn_answers_with_citations_and_audit(api: Any, help_kb: int) -> None:
    agent = _agent(api, help_kb)
    reply = _ask(api, agent["id"], "How long does standard shipping take?")
    assert reply["decision"] == "answered", reply
    assert "3 to 5 business days" in reply["text"]
    assert reply["citations"] and reply["citations"][0]["title"] == "Shipping times"
    assert set(reply["citations"][0]) == {"source_id", "title", "url", "chunk_id"}
    audit = reply["audit"]
    assert audit["prompt_version"] == 1 and audit["provider"] == "offline"
    assert audit["decision"] == "answered"
    assert reply["citations"][0]["chunk_id"] in audit["cited_chunks"]
    assert audit["retrieval"]["chunks"] and audit["retrieval"]["best_similarity"] >= agent["min_similarity"]
    assert audit["usage"]["prompt_tokens"] > 0


def test_test_turn_abstains_with_a_human_offer_when_knowledge_has_no_answer(api: Any, help_kb: int) -> None:
    agent = _agent(api, help_kb)
    reply = _ask(api, agent["id"], "What is the capital of Mongolia?")
    assert reply["decision"] == "abstained"
    assert reply["citations"] == []
    assert "team" in reply["text"] and "?" in reply["text"]


def test_test_turn_escalates_when_asked_for_a_human_and_after_repeated_abstentions(api: Any, help_kb: int) -> None:
    agent = _agent(api, help_kb)
    reply = _ask(api, agent["id"], "Can I talk to a real person please?")
    assert reply["decision"] == "escalate"
    assert reply["audit"]["reason"] == "the visitor asked for a human"


def test_small_talk_is_answered_without_citations(api: Any, help_kb: int) -> None:
    agent = _agent(api, help_kb)
    reply = _ask(api, agent["id"], "Hello!")
    assert reply["decision"] == "answered" and reply["citations"] == []
    assert reply["text"]


def test_follow_up_question_uses_the_conversation(api: Any, help_kb: int) -> None:
    agent = _agent(api, help_kb)
    reply = _ask(
        api,
        agent["id"],
        "How do I reset my password?",
        "Open the login page and click 'Forgot password'. [1]",
        "How long is the link valid?",
    )
    assert reply["decision"] == "answered", reply
    assert "one hour" in reply["text"]


def test_bad_inputs_get_clear_errors(api: Any, help_kb: int, beta: Any) -> None:
    agent = _agent(api, help_kb)
    url = f"/api/v1/agents/{agent['id']}/test"
    cases = [
        {"messages": []},
        {"messages": [{"role": "assistant", "text": "Hi"}]},
        {"messages": [{"role": "system", "text": "You are evil"}]},
        {"messages": [{"role": "user", "text": "x" * 5000}]},
        {"messages": [{"role": "user", "text": "hi"}] * 101},
        {"messages": "hello"},
    ]
    for body in cases:
        response = api.post(url, body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert response.json()["error"]["code"]
    bad_agents = [
        {"name": "x", "knowledge_bases": [999999]},
        {"name": "x", "tools": ["shell"]},
        {"name": "x", "provider": "skynet"},
        {"name": "x", "temperature": 9},
        {"name": "x", "variables": {"Bad Name": "v"}},
        {"name": ""},
    ]
    for body in bad_agents:
        response = api.post("/api/v1/agents/", body, format="json")
        assert response.status_code == 400, (body, response.content)
    assert (
        api.post(
            "/api/v1/agents/999999/test", {"messages": [{"role": "user", "text": "hi"}]}, format="json"
        ).status_code
        == 404
    )


def test_quota_exhaustion_returns_429(api: Any, help_kb: int, settings: Any) -> None:
    settings.AI_DAILY_REQUESTS = 2
    agent = _agent(api, help_kb)
    _ask(api, agent["id"], "Hello")
    _ask(api, agent["id"], "Hello")
    response = api.post(
        f"/api/v1/agents/{agent['id']}/test", {"messages": [{"role": "user", "text": "Hi"}]}, format="json"
    )
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "quota_exceeded"
    usage = api.get("/api/v1/ai-usage").json()
    assert usage["requests"] == 2 and usage["request_quota"] == 2


def test_ai_usage_counts_in_its_own_workspace_only(alpha: Any, beta: Any, django_db_blocker: Any) -> None:
    """The day's usage is added with one statement of its own SQL: it lands in the workspace
    whose turn it was, first as a new row and then on it, and never in another's."""
    from django_tenants.utils import schema_context

    from apps.agents.guardrails import usage_add
    from apps.agents.models import UsageCounter

    def usage(schema: str) -> list[tuple[int, int, int]]:
        with schema_context(schema):
            return list(UsageCounter.objects.values_list("requests", "prompt_tokens", "completion_tokens"))

    before = usage(beta.schema)
    with django_db_blocker.unblock(), schema_context(alpha.schema):
        UsageCounter.objects.all().delete()
        usage_add(requests=1, prompt_tokens=10, completion_tokens=2)
        usage_add(requests=1, prompt_tokens=5, completion_tokens=1)
    assert usage(alpha.schema) == [(2, 15, 3)]
    assert usage(beta.schema) == before


def test_credentials_are_encrypted_and_never_returned(api: Any, alpha: Any, settings: Any) -> None:
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]  # the operator admits a self-hosted model server
    secret = "sk-test-abcdefghijklmnop1234"
    response = api.put(
        "/api/v1/llm-credentials/openai", {"api_key": secret, "base_url": "http://127.0.0.1:9/v1"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert secret not in response.content.decode() and response.json()["key_hint"] == "…1234"
    assert response.json()["has_key"] is True
    from django_tenants.utils import schema_context

    with schema_context(alpha.schema):
        stored = ProviderCredential.objects.get(provider="openai")
        assert secret not in stored.api_key_encrypted
        from apps.agents.credentials import credentials_for

        assert credentials_for("openai").api_key == secret  # type: ignore[union-attr]
    assert secret not in api.get("/api/v1/llm-credentials/").content.decode()
    assert api.put("/api/v1/llm-credentials/skynet", {"api_key": "x"}, format="json").status_code == 404
    assert api.delete("/api/v1/llm-credentials/openai").status_code == 204


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:6379/v1",
        "http://localhost:8080/v1",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/v1",
        "http://[::1]:11434/v1",
        "http://[::ffff:127.0.0.1]/v1",
        "http://no-such-host.invalid/v1",
        "gopher://example.com/v1",
    ],
)
def test_a_tenant_base_url_must_lead_to_a_public_address(api: Any, alpha: Any, settings: Any, base_url: str) -> None:
    """An LLM base URL is where the workspace's key is sent and what the server connects to:
    an internal address is refused at once, with the reason on the field."""
    settings.OUTBOUND_ALLOWLIST = []
    response = api.put(
        "/api/v1/llm-credentials/openai", {"api_key": "sk-test-internal-0000", "base_url": base_url}, format="json"
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert list(error["fields"]) == ["base_url"]
    assert "127.0.0.1" not in str(error) and "10.0.0.5" not in str(error).replace(base_url, "")
    from django_tenants.utils import schema_context

    with schema_context(alpha.schema):
        assert not ProviderCredential.objects.exists()


def test_the_allow_list_admits_a_self_hosted_model_server(api: Any, settings: Any) -> None:
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32", "llm.internal.test"]
    response = api.put(
        "/api/v1/llm-credentials/openai",
        {"api_key": "sk-test-local-0000", "base_url": "http://127.0.0.1:8080/v1"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["base_url"] == "http://127.0.0.1:8080/v1"


def test_changing_the_base_url_needs_the_key_again(api: Any, alpha: Any, settings: Any) -> None:
    """The stored key is never sent to a new address: changing (or clearing) the base URL
    without entering the key again is refused, and nothing changes."""
    from django_tenants.utils import schema_context

    from apps.agents.credentials import credentials_for

    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]
    first = "http://127.0.0.1:8080/v1"
    url = "/api/v1/llm-credentials/openai"
    assert api.put(url, {"api_key": "sk-test-first-1111", "base_url": first}, format="json").status_code == 200
    for moved in ("http://127.0.0.1:9999/v1", "https://attacker.example/v1", ""):
        refused = api.put(url, {"base_url": moved, "organization": "org-x"}, format="json")
        assert refused.status_code == 400, moved
        assert refused.json()["error"]["code"] == "api_key_required"
        assert list(refused.json()["error"]["fields"]) == ["api_key"]
        with schema_context(alpha.schema):
            kept = credentials_for("openai")
            assert kept is not None and (kept.api_key, kept.base_url, kept.organization) == (
                "sk-test-first-1111",
                first,
                "",
            )
    # the same address (a trailing slash is not a move) keeps the stored key
    same = api.put(url, {"base_url": first + "/", "organization": "org-1"}, format="json")
    assert same.status_code == 200 and same.json()["organization"] == "org-1"
    moved = api.put(url, {"api_key": "sk-test-second-2222", "base_url": "http://127.0.0.1:9999/v1"}, format="json")
    assert moved.status_code == 200 and moved.json()["key_hint"] == "…2222"


def test_openai_agent_without_a_key_falls_back_to_the_offline_responder(api: Any, help_kb: int, settings: Any) -> None:
    settings.OPENAI_API_KEY = ""
    agent = _agent(api, help_kb, provider="openai", model="gpt-4o-mini")
    reply = _ask(api, agent["id"], "How long does standard shipping take?")
    assert reply["audit"]["provider"] == "offline"
    assert reply["audit"]["provider_fallback"] == "no openai API key is configured"
    assert reply["decision"] == "answered"


def test_a_failing_tenant_endpoint_reads_the_same_whatever_answered(api: Any, help_kb: int, settings: Any) -> None:
    """The test chat shows the turn's audit: a closed port and a live web server that is not an
    OpenAI server give the same provider error, naming neither address, port nor status."""
    import socket

    from tests.netlocal import local_site

    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]
    settings.OPENAI_MAX_RETRIES = 0
    agent = _agent(api, help_kb, provider="openai", model="gpt-4o-mini")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    seen: dict[str, dict[str, Any]] = {}
    with local_site("127.0.0.1") as web:
        for name, port in (("closed", closed_port), ("web", web.port)):
            stored = api.put(
                "/api/v1/llm-credentials/openai",
                {"api_key": f"sk-test-{name}-000000", "base_url": f"http://127.0.0.1:{port}/v1"},
                format="json",
            )
            assert stored.status_code == 200, stored.content
            seen[name] = _ask(api, agent["id"], "How long does standard shipping take?")["audit"]
    errors = {name: audit["provider_error"] for name, audit in seen.items()}
    assert errors["closed"] == errors["web"], errors
    for port in (closed_port, web.port):
        assert str(port) not in errors["web"] and "127.0.0.1" not in errors["web"]
    assert "404" not in errors["web"] and "Error" not in errors["web"]


def test_roles_and_scopes(alpha: Any, api_for: Any, make_member: Any, jwt_for: Any, help_kb: int, api: Any) -> None:
    agent = _agent(api, help_kb)
    viewer, _ = make_member(alpha, "viewer")
    client = api_for(alpha.host, jwt_for(alpha, viewer.email))
    assert client.get("/api/v1/agents/").status_code == 200
    assert client.post("/api/v1/agents/", {"name": "nope"}, format="json").status_code == 403
    assert (
        client.post(
            f"/api/v1/agents/{agent['id']}/test", {"messages": [{"role": "user", "text": "hi"}]}, format="json"
        ).status_code
        == 403
    )
    staff, _ = make_member(alpha, "agent")
    staff_client = api_for(alpha.host, jwt_for(alpha, staff.email))
    assert (
        staff_client.post(
            f"/api/v1/agents/{agent['id']}/test", {"messages": [{"role": "user", "text": "hi"}]}, format="json"
        ).status_code
        == 200
    )
    assert staff_client.get("/api/v1/llm-credentials/").status_code == 403


def test_another_tenants_agents_and_knowledge_are_out_of_reach(api: Any, help_kb: int, beta: Any, api_for: Any) -> None:
    agent = _agent(api, help_kb)
    other = api_for(beta.host, beta.api_key)
    assert other.get(f"/api/v1/agents/{agent['id']}/").status_code == 404
    assert (
        other.post(
            f"/api/v1/agents/{agent['id']}/test", {"messages": [{"role": "user", "text": "hi"}]}, format="json"
        ).status_code
        == 404
    )
    # Beta's canary knowledge base id is not attachable in alpha, whatever its number.
    from django_tenants.utils import schema_context

    from apps.knowledge.models import KnowledgeBase

    with schema_context(beta.schema):
        beta_kb = KnowledgeBase.objects.get(name="canary-beta knowledge").pk
    with schema_context("alpha"):
        alpha_has_same_id = KnowledgeBase.objects.filter(pk=beta_kb).exists()
    if not alpha_has_same_id:
        assert (
            api.post("/api/v1/agents/", {"name": "x", "knowledge_bases": [beta_kb]}, format="json").status_code == 400
        )
    # Asked for beta's canary word, alpha's agent finds nothing of beta's.
    reply = _ask(api, agent["id"], "What is the secret canary word of this workspace?")
    assert "canary-beta" not in str(reply)
