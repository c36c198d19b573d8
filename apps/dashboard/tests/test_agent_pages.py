"""Agent, AI settings and contact pages driven the way staff use them: forms and what the
page shows, the roles, the test chat's NDJSON stream, hostile text, other tenants' ids."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.accounts.models import Role, User
from apps.accounts.services import Actor
from apps.agents.models import Agent, ProviderCredential
from apps.agents.services import agent_create, agent_update
from apps.crm import services as crm
from apps.crm.models import Contact
from apps.knowledge import services as knowledge
from apps.tenants.models import Tenant

ARTICLES = {
    "Shipping times": "# Shipping\n\nStandard shipping takes 3 to 5 business days within the EU. "
    "Express shipping arrives the next business day when ordered before 2 pm.",
    "Returns policy": "# Returns\n\nYou can return any unused item within 30 days of delivery for a full refund. "
    "Print the prepaid return label from your account page and drop the parcel at any post office.",
}
HOSTILE = '<script>alert("x")</script>'


def _actor(info: Any) -> Actor:
    tenant = Tenant.objects.get(schema_name=info.schema)
    user = User.objects.get(email=info.owner_email)
    return Actor(tenant=tenant, role=Role.OWNER, user=user, label=user.email)


def _kb(info: Any, capture: Any, articles: dict[str, str], name: str = "Help centre") -> int:
    owner = _actor(info)
    with schema_context(info.schema):
        kb = knowledge.knowledge_base_create(editor=owner, name=name)
        for title, text in articles.items():
            with capture(execute=True):
                knowledge.source_add_text(editor=owner, kb=kb, title=title, text=text)
        return int(kb.pk)


def _agent(info: Any, kb: int | None = None, **fields: Any) -> int:
    with schema_context(info.schema):
        agent = agent_create(
            editor=_actor(info),
            name=fields.pop("name", "Ava"),
            knowledge_bases=[kb] if kb else [],
            variables={"company_name": "Alpha Outfitters"},
            **fields,
        )
        return int(agent.pk)


def _turn(client: Any, agent_id: int, *texts: str, **extra: Any) -> tuple[Any, list[dict[str, Any]], bytes]:
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "text": t} for i, t in enumerate(texts)]
    response = client.post(
        f"/dashboard/agents/{agent_id}/test/turn",
        json.dumps({"messages": messages, **extra}),
        content_type="application/json",
    )
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    return response, [json.loads(line) for line in raw.splitlines() if line.strip()], raw


@pytest.fixture
def help_kb(alpha: Any, django_capture_on_commit_callbacks: Any) -> int:
    return _kb(alpha, django_capture_on_commit_callbacks, ARTICLES)


@pytest.fixture
def owner_client(alpha: Any, login: Any) -> Iterator[Any]:
    yield login(alpha, alpha.owner_email)


def _settings_form(kb: int, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Ava",
        "instructions": "Help {{ company_name }} customers. We are open {{ business_hours }}.",
        "knowledge_bases": [kb],
        "greeting": "Hi! How can I help?",
        "language": "en",
        "variables": "company_name=Alpha Outfitters\nbusiness_hours=Mon-Fri 9-17",
        "guidance_rules": "Never promise delivery dates.\n\nKeep answers under 80 words.",
        "provider": "offline",
        "model": "",
        "temperature": "0.3",
        "max_tokens": "400",
        "tools": ["search_knowledge", "escalate_to_human"],
        "min_similarity": "0.3",
        "top_k": "6",
        "is_active": "on",
        "esc_on_request": "on",
        "esc_abstentions": "on",
        "esc_abstentions_threshold": "3",
        "esc_max_turns_threshold": "20",
        "esc_negative_sentiment_threshold": "-0.6",
        "esc_keywords": "on",
        "esc_keywords_words": "Lawyer\nchargeback",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_admin_creates_configures_and_versions_an_agent(alpha: Any, owner_client: Any, help_kb: int) -> None:
    client = owner_client
    listing = client.get("/dashboard/agents/").content.decode()
    assert 'id="agent-create-form"' in listing and "{{ company_name }}" in listing and "{{ business_hours }}" in listing

    created = client.post(
        "/dashboard/agents/",
        {"name": "Ava", "instructions": "Help {{ company_name }} customers.", "knowledge_bases": [help_kb]},
    )
    assert created.status_code == 302
    agent_id = int(created["Location"].rstrip("/").rsplit("/", 1)[1])
    page = client.get(created["Location"]).content.decode()
    assert '<strong id="prompt-version">1</strong>' in page and 'value="Ava"' in page
    assert re.search(rf'value="{help_kb}"[^>]*checked', page), "the knowledge base is ticked"

    saved = client.post(f"/dashboard/agents/{agent_id}/", _settings_form(help_kb), follow=True)
    assert saved.status_code == 200 and "New prompt version 2." in saved.content.decode()
    with schema_context(alpha.schema):
        agent = Agent.objects.get(pk=agent_id)
        assert agent.prompt_version == 2
        assert agent.variables == {"company_name": "Alpha Outfitters", "business_hours": "Mon-Fri 9-17"}
        assert agent.guidance_rules == ["Never promise delivery dates.", "Keep answers under 80 words."]
        assert agent.tools == ["search_knowledge", "escalate_to_human"]
        assert (agent.temperature, agent.max_tokens, agent.top_k, agent.min_similarity) == (0.3, 400, 6, 0.3)
        assert agent.escalation_policy == {
            "on_request": True,
            "abstentions": {"enabled": True, "threshold": 3},
            "max_turns": {"enabled": False, "threshold": 20},
            "negative_sentiment": {"enabled": False, "threshold": -0.6},
            "vip": {"enabled": False},
            "keywords": {"enabled": True, "words": ["lawyer", "chargeback"]},
        }

    # Saving the same settings again makes no new version.
    again = client.post(f"/dashboard/agents/{agent_id}/", _settings_form(help_kb), follow=True).content.decode()
    assert "Settings saved." in again and "New prompt version" not in again
    assert '<strong id="prompt-version">2</strong>' in again
    versions = re.findall(r'<tr data-version="(\d+)">', again)
    assert versions == ["2", "1"]
    assert "&quot;business_hours&quot;: &quot;Mon-Fri 9-17&quot;" in again  # the v2 snapshot, as JSON
    changed = re.search(r'data-version="2">.*?class="changed">([^<]*)<', again, re.S)
    assert changed and "instructions" in changed.group(1) and "variables" in changed.group(1)
    # What changed, line by line: the old instructions taken out, the new ones put in.
    diff = re.search(r'data-version="2">.*?<details class="version-diff">(.*?)</details>', again, re.S)
    assert diff, "v2 shows its diff"
    removed = re.findall(r'<span class="del">(.*?)</span>', diff.group(1))
    added = re.findall(r'<span class="add">(.*?)</span>', diff.group(1))
    assert "-Help {{ company_name }} customers." in removed
    assert "+Help {{ company_name }} customers. We are open {{ business_hours }}." in added
    assert "+  &quot;business_hours&quot;: &quot;Mon-Fri 9-17&quot;," in added  # JSON settings, a line per key
    assert "+Never promise delivery dates." not in added  # lists are shown as JSON
    assert "+  &quot;Never promise delivery dates.&quot;," in added
    v1 = re.search(r'data-version="1">.*?</tr>', again, re.S)
    assert v1 and "version-diff" not in v1.group(0)  # the first version has nothing to compare with

    # Bad input: clear errors on the fields, nothing saved.
    bad = client.post(
        f"/dashboard/agents/{agent_id}/",
        _settings_form(help_kb, variables="opening hours", temperature="5", language="English!", esc_keywords_words=""),
    )
    assert bad.status_code == 400
    body = bad.content.decode()
    assert "Line 1: write name=value" in body
    assert "less than or equal to 2.0" in body
    assert "Add at least one keyword" in body
    assert body.count('class="error field-error"') == 4
    with schema_context(alpha.schema):
        assert Agent.objects.get(pk=agent_id).prompt_version == 2

    # An earlier version's settings come back as a new version (v1 had no business_hours).
    assert len(re.findall(r'class="restore-form"', again)) == 1  # every version but the current one
    restored = client.post(f"/dashboard/agents/{agent_id}/versions/1/restore/", follow=True).content.decode()
    assert "Settings of version 1 restored as version 3." in restored
    assert '<strong id="prompt-version">3</strong>' in restored
    assert re.findall(r'<tr data-version="(\d+)">', restored) == ["3", "2", "1"]
    missing = client.post(f"/dashboard/agents/{agent_id}/versions/42/restore/", follow=True).content.decode()
    assert "has no prompt version 42" in missing
    with schema_context(alpha.schema):
        assert Agent.objects.get(pk=agent_id).prompt_version == 3
        assert "business_hours" not in Agent.objects.get(pk=agent_id).variables

    unknown_kb = client.post(f"/dashboard/agents/{agent_id}/", _settings_form(help_kb, knowledge_bases=[999999]))
    assert unknown_kb.status_code == 400 and "Select a valid choice" in unknown_kb.content.decode()
    empty_name = client.post("/dashboard/agents/", {"name": "", "instructions": "x"})
    assert empty_name.status_code == 400 and "This field is required" in empty_name.content.decode()

    deleted = client.post(f"/dashboard/agents/{agent_id}/delete/", follow=True)
    assert "Agent Ava deleted." in deleted.content.decode()
    with schema_context(alpha.schema):
        assert not Agent.objects.filter(pk=agent_id).exists()


def test_an_agent_is_duplicated_from_its_page(alpha: Any, owner_client: Any, help_kb: int) -> None:
    agent_id = _agent(alpha, help_kb, instructions="Be kind.", guidance_rules=["never discuss pricing"])
    page = owner_client.get(f"/dashboard/agents/{agent_id}/").content.decode()
    assert 'id="agent-duplicate-form"' in page and 'placeholder="Ava (copy)"' in page

    done = owner_client.post(f"/dashboard/agents/{agent_id}/duplicate/", {"name": ""}, follow=True)
    copy_page = done.content.decode()
    assert done.status_code == 200 and "Ava (copy) created with the settings of Ava." in copy_page
    copy_id = int(done.redirect_chain[-1][0].rstrip("/").rsplit("/", 1)[1])
    assert copy_id != agent_id and "Be kind." in copy_page and '<strong id="prompt-version">1</strong>' in copy_page
    assert re.search(rf'value="{help_kb}"[^>]*checked', copy_page), "the knowledge base is ticked"

    refused = owner_client.post(f"/dashboard/agents/{agent_id}/duplicate/", {"name": "x" * 121}, follow=True)
    assert "The name is at most 120 characters." in refused.content.decode()
    with schema_context(alpha.schema):
        copy = Agent.objects.get(pk=copy_id)
        assert copy.guidance_rules == ["never discuss pricing"] and list(
            copy.knowledge_bases.values_list("pk", flat=True)
        ) == [help_kb]
        assert Agent.objects.filter(name__startswith="Ava").count() == 2


def test_an_agent_is_exported_and_imported_from_the_pages(
    alpha: Any, owner_client: Any, help_kb: int, make_member: Any, login: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    agent_id = _agent(alpha, help_kb, instructions="Be kind.", guidance_rules=["never discuss pricing"])
    page = owner_client.get(f"/dashboard/agents/{agent_id}/").content.decode()
    assert f'href="/dashboard/agents/{agent_id}/export/" id="agent-export-link"' in page
    exported = owner_client.get(f"/dashboard/agents/{agent_id}/export/")
    assert exported.status_code == 200 and exported["Content-Disposition"] == 'attachment; filename="ava.agent.json"'
    document = json.loads(exported.content)
    assert document["agent"]["knowledge_bases"] == [{"name": "Help centre"}]

    def upload(content: bytes, name: str = "") -> Any:
        file = SimpleUploadedFile("ava.agent.json", content, content_type="application/json")
        return owner_client.post("/dashboard/agents/import/", {"file": file, "name": name}, follow=True)

    done = upload(exported.content, name="Ava imported")
    body = done.content.decode()
    assert "Agent Ava imported imported." in body and "Be kind." in body
    assert re.search(rf'value="{help_kb}"[^>]*checked', body), "the knowledge base is attached by name"
    document["agent"]["knowledge_bases"].append({"name": "<b>Nowhere</b>"})
    partial = upload(json.dumps(document).encode()).content.decode()
    assert "Agent Ava imported. No knowledge base here is called &lt;b&gt;Nowhere&lt;/b&gt;" in partial

    with schema_context(alpha.schema):
        count = Agent.objects.count()
    refusals = {
        b"not json": "That file is not JSON",
        b"\xff\xfe": "That file is not JSON",
        b"[1, 2]": "The agent was not imported.",
        json.dumps({**document, "format": "other"}).encode(): "format:",
        json.dumps({**document, "agent": {**document["agent"], "temperature": 7}}).encode(): "agent.temperature:",
        b" " * (1024 * 1024 + 1): "at most 1 MB",
    }
    for content, message in refusals.items():
        assert message in upload(content).content.decode(), message
    assert (
        "Choose an exported agent file" in owner_client.post("/dashboard/agents/import/", follow=True).content.decode()
    )
    viewer = login(alpha, make_member(alpha, "viewer")[0].email)
    assert 'id="agent-import-form"' not in viewer.get("/dashboard/agents/").content.decode()
    file = SimpleUploadedFile("a.json", exported.content, content_type="application/json")
    assert viewer.post("/dashboard/agents/import/", {"file": file}).status_code == 403
    assert viewer.get(f"/dashboard/agents/{agent_id}/export/").status_code == 200  # viewers read settings
    assert owner_client.get("/dashboard/agents/import/").status_code == 405
    with schema_context(alpha.schema):
        assert Agent.objects.count() == count


def test_agent_page_lists_unanswered_questions_and_dismisses_them(alpha: Any, owner_client: Any, help_kb: int) -> None:
    from apps.agents import services as agent_services

    with schema_context(alpha.schema):
        agent = Agent.objects.create(name="Gaps")
        for _ in range(2):
            agent_services.knowledge_gap_record(
                agent=agent,
                question="<script>alert(1)</script> ship to Mars?",
                unknown_words=["mars"],
                channel="widget",
            )
    page = owner_client.get(f"/dashboard/agents/{agent.pk}/").content.decode()
    gaps = page.split('id="gaps"')[1].split("</section>")[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; ship to Mars?" in gaps and "<script>alert" not in gaps
    assert re.search(r'class="count">2<', gaps) and 'class="unknown-words">mars<' in gaps
    gap_id = re.search(r'data-gap="(\d+)"', gaps).group(1)  # type: ignore[union-attr]
    dismissed = owner_client.post(f"/dashboard/agents/{agent.pk}/gaps/{gap_id}/dismiss/", follow=True).content.decode()
    assert "dismissed until it is asked again" in dismissed
    assert "No unanswered questions." in dismissed.split('id="gaps"')[1].split("</section>")[0]
    assert owner_client.post(f"/dashboard/agents/{agent.pk}/gaps/999999/dismiss/").status_code == 404


def test_an_unanswered_question_is_answered_from_the_agent_page(
    alpha: Any, owner_client: Any, help_kb: int, make_member: Any, login: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from apps.agents import services as agent_services
    from apps.knowledge.models import Source

    with schema_context(alpha.schema):
        agent = Agent.objects.create(name="Gaps")
        agent.knowledge_bases.set([help_kb])
        gap = agent_services.knowledge_gap_record(agent=agent, question="Do you gift wrap?", unknown_words=["gift"])
    page = owner_client.get(f"/dashboard/agents/{agent.pk}/").content.decode()
    gaps = page.split('id="gaps"')[1].split("</section>")[0]
    assert f'action="/dashboard/agents/{agent.pk}/gaps/{gap.pk}/answer/"' in gaps
    assert 'name="question" value="Do you gift wrap?"' in gaps
    url = f"/dashboard/agents/{agent.pk}/gaps/{gap.pk}/answer/"
    viewer, _ = make_member(alpha, "viewer")
    assert login(alpha, viewer.email).post(url, {"answer": "Yes."}).status_code == 403
    refused = owner_client.post(url, {"answer": "  "}, follow=True).content.decode()
    assert "The answer was not saved: Write the answer." in refused
    with django_capture_on_commit_callbacks(execute=True):
        done = owner_client.post(url, {"answer": "Yes, for 3 euros per parcel at checkout."}, follow=True)
    assert "Answer added to “Answered questions” in Help centre" in done.content.decode()
    assert "No unanswered questions." in done.content.decode().split('id="gaps"')[1].split("</section>")[0]
    with schema_context(alpha.schema):
        (faq,) = Source.objects.filter(type=Source.Type.FAQ)
        assert [(e.question, e.answer) for e in faq.faq_entries.all()] == [
            ("Do you gift wrap?", "Yes, for 3 euros per parcel at checkout.")
        ]
    assert owner_client.post(f"/dashboard/agents/{agent.pk}/gaps/999999/answer/", {"answer": "x"}).status_code == 404


def test_a_batch_test_runs_from_the_test_chat_page(
    alpha: Any, owner_client: Any, help_kb: int, make_member: Any, login: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with schema_context(alpha.schema):
        agent = agent_create(editor=_actor(alpha), name="Ava", knowledge_bases=[help_kb])
    url = f"/dashboard/agents/{agent.pk}/test/"
    refused = owner_client.post(url, {"questions": "\n  \n"})
    assert refused.status_code == 400 and "The batch test was not started: Give at least one question." in (
        refused.content.decode()
    )
    viewer, _ = make_member(alpha, "viewer")
    assert login(alpha, viewer.email).post(url, {"questions": "Hi"}).status_code == 403
    lines = f"How long does standard shipping take? | Shipping times\n{HOSTILE} can I return it?"
    with django_capture_on_commit_callbacks(execute=True):  # the task runs once the request commits
        started = owner_client.post(url, {"questions": lines})
    assert started.status_code == 302 and re.fullmatch(rf"/dashboard/agents/{agent.pk}/test/batch/\d+/", started.url)
    page = owner_client.get(started.url).content.decode()
    assert 'id="batch-status">Done<' in page and '<meta http-equiv="refresh"' not in page
    assert '<span class="n" id="batch-done">2</span> of 2 questions' in page
    assert re.search(r'id="batch-matched"><span class="n">1 of 1</span> cited the expected source', page)
    assert "3 to 5 business days" in page and '<span class="badge done">cited</span>' in page
    assert "&lt;script&gt;" in page and HOSTILE not in page
    again = re.search(
        r'<form method="post" action="([^"]+)" id="batch-again">.*?name="questions" value="([^"]*)"', page, re.S
    )
    assert again and again.group(1) == url
    assert html.unescape(again.group(2)).splitlines() == lines.splitlines()  # the same questions, again
    with schema_context(alpha.schema):  # the knowledge is taken away before the second run
        agent_update(editor=_actor(alpha), agent=agent, knowledge_bases=[])
    with django_capture_on_commit_callbacks(execute=True):
        second = owner_client.post(url, {"questions": html.unescape(again.group(2))})
    assert second.status_code == 302
    listed = owner_client.get(url).content.decode()
    assert listed.count("<tr data-batch=") == 2
    row = re.search(r'<tr data-batch="\d+">.*?</tr>', listed, re.S)
    assert row and "<td>2 of 2</td>" in row.group(0) and "<td>0 of 1</td>" in row.group(0)

    # The second run's page compares it with the first: what got worse, and what it said before.
    page = owner_client.get(second.url).content.decode()
    first_id = started.url.rstrip("/").rsplit("/", 1)[1]
    assert re.search(rf'<option value="{first_id}" selected>', page)
    changes = dict(re.findall(r'<span class="badge (\w+)" data-change="\w+">(\d+) ', page))
    assert changes == {"no_longer_matched": "1", "same": "1"}  # the hostile question was refused both times
    assert re.findall(r'<td class="change" data-change="(\w+)"', page) == ["no_longer_matched", "same"]
    before = re.findall(r"<summary>Before</summary>(.*?)</details>", page, re.S)
    assert len(before) == 1 and "3 to 5 business days" in before[0] and "Shipping times" in before[0]
    assert "&lt;script&gt;" in page and HOSTILE not in page
    # Another run can be picked; an unknown one compares with nothing.
    assert 'id="batch-changes"' in owner_client.get(f"{second.url}?compare={first_id}").content.decode()
    assert 'id="batch-changes"' not in owner_client.get(f"{second.url}?compare=999999").content.decode()
    # The first run has no earlier one: the later run can be picked, nothing is compared by default.
    first_page = owner_client.get(started.url).content.decode()
    assert 'id="batch-compare-form"' in first_page and 'id="batch-changes"' not in first_page


def test_batch_results_download_as_csv_without_formulas(
    alpha: Any, beta: Any, owner_client: Any, make_member: Any, login: Any
) -> None:
    import csv
    import io

    from apps.agents.models import BatchTest

    agent_id = _agent(alpha)
    results = [
        {
            "question": '=HYPERLINK("http://evil.example","click")',
            "expected": "Shipping times",
            "decision": "answered",
            "text": "Standard shipping takes 3 to 5 business days. [1]",
            "citations": [{"title": "Shipping times", "source_id": 1}, {"title": "@Returns", "source_id": 2}],
            "matched": True,
            "latency_ms": 12,
        },
        {
            "question": "Quota?",
            "expected": "",
            "decision": "error",
            "text": "",
            "citations": [],
            "matched": None,
            "error": "-1 requests left",
        },
    ]
    with schema_context(alpha.schema):
        run = BatchTest.objects.create(
            agent_id=agent_id, prompt_version=1, status="done", questions=results, results=results
        )
    url = f"/dashboard/agents/{agent_id}/test/batch/{run.pk}/results.csv"
    assert (
        f'href="{url}" id="batch-csv"'
        in owner_client.get(f"/dashboard/agents/{agent_id}/test/batch/{run.pk}/").content.decode()
    )
    response = owner_client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="batch-test-{run.pk}.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["question", "expected", "decision", "cited expected", "answer", "sources", "latency ms", "error"]
    assert rows[1] == [
        '\'=HYPERLINK("http://evil.example","click")',  # never run as a formula by a spreadsheet
        "Shipping times",
        "answered",
        "yes",
        "Standard shipping takes 3 to 5 business days. [1]",
        "Shipping times; @Returns",
        "12",
        "",
    ]
    assert rows[2][2:4] == ["error", ""] and rows[2][7] == "'-1 requests left"
    viewer = login(alpha, make_member(alpha, "viewer")[0].email)
    assert viewer.get(url).status_code == 403
    other = login(beta, beta.owner_email)
    assert other.get(url).status_code == 404
    assert owner_client.get(f"/dashboard/agents/{agent_id}/test/batch/999999/results.csv").status_code == 404


def test_agent_pages_show_the_last_30_days(alpha: Any, owner_client: Any, help_kb: int) -> None:
    """Staff see what each agent did: turns, the share answered, not answered (with those for
    want of knowledge) and handed over, time, tokens, a bar per day and a row per channel."""
    from apps.agents import services as agent_services

    with schema_context(alpha.schema):
        agent = Agent.objects.create(name="Busy")
        idle = Agent.objects.create(name="Idle")
        turns = [("answered", "widget", False)] * 3 + [("abstained", "widget", True), ("escalate", "email", False)]
        for decision, channel, unanswered in turns:
            agent_services.agent_stats_record(
                agent=agent,
                channel=channel,
                decision=decision,
                unanswered=unanswered,
                prompt_tokens=200,
                completion_tokens=20,
                latency_ms=30,
            )
        agent_services.knowledge_gap_record(agent=agent, question="Do you gift wrap?", unknown_words=["gift"])
        today = timezone.now().date()
        for helpful in (True, True, True, False):
            agent_services.agent_feedback_count(agent_id=agent.pk, channel="widget", helpful=helpful, day=today)
    page = owner_client.get(f"/dashboard/agents/{agent.pk}/").content.decode()
    section = page.split('id="performance"')[1].split("</section>")[0]
    assert re.search(
        r'id="perf-helpful"><span class="n">75%</span> found helpful by visitors \(3 of 4 verdicts\)', section
    )
    assert re.search(r'id="perf-turns"><span class="n">5</span> AI turns', section)
    assert re.search(r'id="perf-answered"><span class="n">60%</span> answered \(3\)', section)
    assert "1 for want of knowledge</a>" in section and re.search(r'id="perf-escalated"><span class="n">20%', section)
    assert '<span class="n">30 ms</span>' in section and '<span class="n">1100</span> tokens' in section
    assert section.count('class="perf-day"') == 30  # today's bar is the busiest: 3 + 1 + 1 of 5
    # Stacked from the bottom of a 0-100 box: answered 60, then 20 and 20 above it (no inline style).
    for kind, y, height in (("answered", "40.0", "60.0"), ("abstained", "20.0", "20.0"), ("escalated", "0.0", "20.0")):
        assert f'class="perf-{kind}" y="{y}" width="10" height="{height}"' in section
    assert "style=" not in section
    assert re.findall(r'data-channel="(\w+)"><td>\w+</td><td>(\d+)<', section) == [("widget", "4"), ("email", "1")]
    quiet = owner_client.get(f"/dashboard/agents/{idle.pk}/").content.decode()
    assert "No AI turns in the last 30 days." in quiet
    listing = owner_client.get("/dashboard/agents/").content.decode()
    rows = dict(re.findall(r'data-agent-id="(\d+)">.*?class="recent">(.*?)</td>', listing, re.S))
    assert rows[str(agent.pk)] == "5 turns · 60% answered" and "no turns" in rows[str(idle.pk)]
    gaps = dict(re.findall(r'data-agent-id="(\d+)">.*?class="gaps">(.*?)</td>', listing, re.S))
    assert '#gaps">1 question</a>' in gaps[str(agent.pk)] and gaps[str(idle.pk)] == "—"


def test_roles_viewers_read_agents_test_only_admins_change(
    alpha: Any, make_member: Any, login: Any, help_kb: int
) -> None:
    agent_id = _agent(alpha, help_kb, instructions="Be kind.")
    viewer = login(alpha, make_member(alpha, "viewer")[0].email)
    listing = viewer.get("/dashboard/agents/").content.decode()
    assert "Ava" in listing and 'id="agent-create-form"' not in listing and "Test chat" not in listing
    page = viewer.get(f"/dashboard/agents/{agent_id}/").content.decode()
    assert 'id="agent-settings"' in page and "Be kind." in page and 'id="agent-form"' not in page
    assert viewer.post(f"/dashboard/agents/{agent_id}/", _settings_form(help_kb)).status_code == 403
    assert viewer.post("/dashboard/agents/", {"name": "Nope"}).status_code == 403
    assert viewer.post(f"/dashboard/agents/{agent_id}/delete/").status_code == 403
    assert viewer.post(f"/dashboard/agents/{agent_id}/duplicate/").status_code == 403
    assert 'id="agent-duplicate-form"' not in page
    assert viewer.get(f"/dashboard/agents/{agent_id}/test/").status_code == 403
    refused, lines, _ = _turn(viewer, agent_id, "How long does shipping take?")
    assert refused.status_code == 403 and lines == [
        {"type": "error", "code": "permission_denied", "detail": lines[0]["detail"]}
    ]
    assert viewer.get("/dashboard/ai/").status_code == 403

    staff = login(alpha, make_member(alpha, "agent")[0].email)
    assert 'id="test-chat-link"' in staff.get(f"/dashboard/agents/{agent_id}/").content.decode()
    assert staff.get(f"/dashboard/agents/{agent_id}/test/").status_code == 200
    response, lines, _ = _turn(staff, agent_id, "How long does standard shipping take?")
    assert response.status_code == 200 and lines[-1]["decision"] == "answered"
    assert staff.post(f"/dashboard/agents/{agent_id}/", _settings_form(help_kb)).status_code == 403
    assert staff.post(f"/dashboard/agents/{agent_id}/duplicate/").status_code == 403
    assert staff.get("/dashboard/ai/").status_code == 403
    with schema_context(alpha.schema):
        assert Agent.objects.filter(name="Nope").count() == 0
        assert Agent.objects.filter(name__endswith="(copy)").count() == 0
        assert Agent.objects.get(pk=agent_id).prompt_version == 1


def test_test_chat_streams_the_turn_as_ndjson(alpha: Any, owner_client: Any, help_kb: int, settings: Any) -> None:
    agent_id = _agent(alpha, help_kb)
    page = owner_client.get(f"/dashboard/agents/{agent_id}/test/").content.decode()
    assert f'data-turn-url="/dashboard/agents/{agent_id}/test/turn"' in page and "js/test-chat.js" in page
    with schema_context(alpha.schema):
        contacts_before = Contact.objects.count()

    response, lines, _ = _turn(owner_client, agent_id, "How long does standard shipping take?")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/x-ndjson")
    assert response["Cache-Control"] == "private, no-cache"
    types = [line["type"] for line in lines]
    assert types[-1] == "final" and set(types[:-1]) == {"delta"}, types
    final = lines[-1]
    assert final["decision"] == "answered" and "3 to 5 business days" in final["text"], final
    assert final["reason"] == "grounded in cited reference material"
    citation = final["citations"][0]
    assert citation["title"] == "Shipping times" and citation["index"] == 1
    assert citation["href"] == f"/dashboard/knowledge/{help_kb}/"
    audit = final["audit"]
    assert audit["prompt_version"] == 1 and audit["usage"]["prompt_tokens"] > 0 and audit["latency_ms"] > 0
    chunk = audit["retrieval"]["chunks"][0]
    assert {"ref", "title", "score", "similarity", "source_id", "chunk_id"} <= set(chunk)
    assert final["sources"][str(chunk["source_id"])].startswith("/dashboard/knowledge/")
    _, lines, _ = _turn(
        owner_client, agent_id, "I want to buy 40 chairs", "Happy to help.", "Mail me: dana@example.com"
    )
    assert lines[-1]["type"] == "final"
    with schema_context(alpha.schema):
        assert Contact.objects.count() == contacts_before  # a dry run writes no contact, no lead

    # The conversation goes on client-side: history re-sent, an off-topic question abstains.
    _, lines, _ = _turn(
        owner_client, agent_id, "How long does shipping take?", final["text"], "Who won the 1998 World Cup?"
    )
    assert lines[-1]["decision"] == "abstained" and lines[-1]["citations"] == []
    assert "team" in lines[-1]["text"]
    # ...and the client's abstention count reaches the policy's threshold (2): escalate.
    _, lines, _ = _turn(owner_client, agent_id, "What is the capital of Mongolia?", abstentions=1)
    assert lines[-1]["decision"] == "escalate"

    for body, detail in [
        ("not json", "Send a JSON object"),
        (json.dumps({"messages": []}), "messages must be a list"),
        (json.dumps({"messages": [{"role": "assistant", "text": "Hi"}]}), "last message must be the visitor"),
        (json.dumps({"messages": [{"role": "system", "text": "Hi"}]}), "Each message needs a role"),
        (json.dumps({"messages": [{"role": "user", "text": "x" * 5000}]}), "at most 4000 characters"),
        (json.dumps({"messages": [{"role": "user", "text": "Hi"}], "abstentions": "2"}), "abstentions is"),
    ]:
        bad = owner_client.post(f"/dashboard/agents/{agent_id}/test/turn", body, content_type="application/json")
        assert bad.status_code == 400, body
        error = json.loads(bad.content)
        assert error["type"] == "error" and error["code"] == "invalid" and detail in error["detail"], error
    assert owner_client.get(f"/dashboard/agents/{agent_id}/test/turn").status_code == 405

    settings.AI_DAILY_REQUESTS = 1  # four turns were spent above
    over, lines, _ = _turn(owner_client, agent_id, "How long does shipping take?")
    assert over.status_code == 429
    assert lines[0]["type"] == "error" and lines[0]["code"] == "quota_exceeded" and "daily limit" in lines[0]["detail"]


def test_test_chat_needs_the_csrf_token(alpha: Any, client_for: Any, help_kb: int) -> None:
    from tests.support import PASSWORD

    agent_id = _agent(alpha, help_kb)
    client = client_for(alpha.host, enforce_csrf_checks=True)
    client.get("/login/")
    token = client.cookies["csrftoken"].value
    login = client.post("/login/", {"email": alpha.owner_email, "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert login.status_code == 302
    body = json.dumps({"messages": [{"role": "user", "text": "How long does shipping take?"}]})
    url = f"/dashboard/agents/{agent_id}/test/turn"
    assert client.post(url, body, content_type="application/json").status_code == 403
    page = client.get(f"/dashboard/agents/{agent_id}/test/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    ok = client.post(url, body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200 and json.loads(b"".join(ok.streaming_content).splitlines()[-1])["type"] == "final"


def test_hostile_text_is_escaped_in_pages_and_in_the_stream(
    alpha: Any, owner_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    created = owner_client.post("/dashboard/agents/", {"name": HOSTILE, "instructions": HOSTILE})
    assert created.status_code == 302
    with schema_context(alpha.schema):  # a second version, so the page shows a diff of the hostile text
        agent = Agent.objects.get(pk=int(created["Location"].rstrip("/").rsplit("/", 1)[1]))
        agent_update(editor=_actor(alpha), agent=agent, instructions=HOSTILE + "\n" + HOSTILE)
    for path in ("/dashboard/agents/", created["Location"], created["Location"] + "test/"):
        body = owner_client.get(path).content.decode()
        assert HOSTILE not in body, path
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body, path
    assert '<span class="add">+&lt;script&gt;' in owner_client.get(created["Location"]).content.decode()

    title = "<img src=x onerror=alert(1)> Gift cards"
    kb = _kb(
        alpha,
        django_capture_on_commit_callbacks,
        {title: "Gift cards never expire and can be spent online or in any store. <script>alert('doc')</script>"},
        name=HOSTILE,
    )
    agent_id = _agent(alpha, kb, name="Gift helper")
    response, lines, raw = _turn(owner_client, agent_id, "Do gift cards expire?")
    assert response.status_code == 200
    assert b"<script" not in raw and b"<img" not in raw  # escaped as \u003c inside the JSON strings
    final = lines[-1]
    assert final["decision"] == "answered" and final["citations"][0]["title"] == title
    assert final["audit"]["retrieval"]["chunks"][0]["title"] == title

    contact = owner_client.post("/dashboard/contacts/", {"name": HOSTILE, "company": HOSTILE})
    assert contact.status_code == 302
    for path in ("/dashboard/contacts/", contact["Location"]):
        body = owner_client.get(path).content.decode()
        assert HOSTILE not in body and "&lt;script&gt;" in body, path


def test_ai_settings_store_the_key_write_only(
    alpha: Any, owner_client: Any, make_member: Any, login: Any, settings: Any
) -> None:
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]  # the operator admits a self-hosted model server
    secret = "sk-test-abcdefghijklmnop1234"
    page = owner_client.get("/dashboard/ai/").content.decode()
    assert 'id="usage-requests"' in page and 'id="credentials-form-openai"' in page

    missing = owner_client.post("/dashboard/ai/", {"provider": "openai", "openai-api_key": ""})
    assert missing.status_code == 400 and "Enter the API key" in missing.content.decode()
    bad_url = owner_client.post(
        "/dashboard/ai/", {"provider": "openai", "openai-api_key": secret, "openai-base_url": "not a url"}
    )
    assert bad_url.status_code == 400 and "Enter a valid URL" in bad_url.content.decode()
    assert secret not in bad_url.content.decode()  # never echoed back, not even after an error
    assert owner_client.post("/dashboard/ai/", {"provider": "pinecone"}).status_code == 400

    saved = owner_client.post(
        "/dashboard/ai/",
        {"provider": "openai", "openai-api_key": secret, "openai-base_url": "http://127.0.0.1:9/v1"},
        follow=True,
    )
    body = saved.content.decode()
    assert "OpenAI (or compatible) credentials saved." in body and "…1234" in body and "http://127.0.0.1:9/v1" in body
    assert secret not in body
    with schema_context(alpha.schema):
        stored = ProviderCredential.objects.get(provider="openai")
        assert stored.api_key_encrypted and secret not in stored.api_key_encrypted

    # An empty key keeps the stored one.
    owner_client.post(
        "/dashboard/ai/",
        {"provider": "openai", "openai-base_url": "http://127.0.0.1:9/v1", "openai-organization": "org-1"},
    )
    with schema_context(alpha.schema):
        again = ProviderCredential.objects.get(provider="openai")
        assert again.api_key_encrypted == stored.api_key_encrypted and again.organization == "org-1"

    admin = login(alpha, make_member(alpha, "admin")[0].email)
    assert "…1234" in admin.get("/dashboard/ai/").content.decode()
    deleted = admin.post("/dashboard/ai/openai/delete/", follow=True)
    assert "credentials deleted" in deleted.content.decode()
    with schema_context(alpha.schema):
        assert not ProviderCredential.objects.exists()


def test_ai_settings_refuse_internal_base_urls_and_a_moved_url_without_the_key(
    alpha: Any, owner_client: Any, settings: Any
) -> None:
    settings.OUTBOUND_ALLOWLIST = []
    secret = "sk-test-abcdefghijklmnop5678"
    internal = owner_client.post(
        "/dashboard/ai/",
        {"provider": "openai", "openai-api_key": secret, "openai-base_url": "http://169.254.169.254/v1"},
    )
    page = internal.content.decode()
    assert internal.status_code == 400 and "public internet address" in page and secret not in page
    with schema_context(alpha.schema):
        assert not ProviderCredential.objects.exists()

    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]
    saved = owner_client.post(
        "/dashboard/ai/",
        {"provider": "openai", "openai-api_key": secret, "openai-base_url": "http://127.0.0.1:8080/v1"},
    )
    assert saved.status_code == 302
    moved = owner_client.post("/dashboard/ai/", {"provider": "openai", "openai-base_url": "http://127.0.0.1:9999/v1"})
    assert moved.status_code == 400 and "Enter the API key again" in moved.content.decode()
    with schema_context(alpha.schema):
        assert ProviderCredential.objects.get(provider="openai").base_url == "http://127.0.0.1:8080/v1"


def test_staff_edit_contacts_and_their_memory_viewers_read(
    alpha: Any, make_member: Any, login: Any, owner_client: Any
) -> None:
    staff = login(alpha, make_member(alpha, "agent")[0].email)
    empty = staff.post("/dashboard/contacts/", {})
    assert empty.status_code == 400 and "at least a name" in empty.content.decode()
    bad = staff.post("/dashboard/contacts/", {"name": "Dana Diaz", "email": "not-an-email"})
    assert bad.status_code == 400 and "Enter a valid email address." in bad.content.decode()
    created = staff.post("/dashboard/contacts/", {"name": "Dana Diaz", "email": "dana@example.com"})
    assert created.status_code == 302
    page_url = created["Location"]
    contact_id = int(page_url.rstrip("/").rsplit("/", 1)[1])
    assert "Dana Diaz" in staff.get("/dashboard/contacts/", {"q": "dana"}).content.decode()
    assert "No contact matches" in staff.get("/dashboard/contacts/", {"q": "zzz-nobody"}).content.decode()

    with schema_context(alpha.schema):
        contact = Contact.objects.get(pk=contact_id)
        crm.contact_remember(tenant=_actor(alpha).tenant, contact=contact, facts=[("language", "de")])
        crm.lead_capture(tenant=_actor(alpha).tenant, contact=contact, need="Wants 40 office chairs", origin="ai")

    identity = staff.post(
        page_url, {"form": "identity", "name": "Dana Diaz", "email": "dana@example.com", "phone": "+49 30 1234567"}
    )
    assert identity.status_code == 302
    bad_phone = staff.post(page_url, {"form": "identity", "name": "Dana", "phone": "call me"})
    assert bad_phone.status_code == 400 and "Enter a phone number" in bad_phone.content.decode()
    assert staff.post(page_url, {"form": "memory", "key": "preference", "value": "Prefers email"}).status_code == 302
    assert staff.post(page_url, {"form": "memory", "key": "preference", "value": "Morning calls"}).status_code == 302
    assert staff.post(page_url, {"form": "memory", "key": "name", "value": "Dana D."}).status_code == 302
    unknown = staff.post(page_url, {"form": "memory", "key": "favourite_colour", "value": "red"})
    assert unknown.status_code == 400 and "Select a valid choice" in unknown.content.decode()
    blank = staff.post(page_url, {"form": "memory", "key": "note", "value": ""})
    assert blank.status_code == 400 and "This field is required" in blank.content.decode()

    page = staff.get(page_url).content.decode()
    assert "Wants 40 office chairs" in page and 'id="memory-form"' in page
    facts = dict(re.findall(r'<tr data-key="(\w+)">.*?class="badge source">(\w+)<', page, re.S))
    assert facts == {"name": "staff", "email": "staff", "language": "ai", "phone": "staff", "preference": "staff"}
    assert 'value="Dana D."' in page and "Erase all 2 preference facts" in page
    with schema_context(alpha.schema):
        contact.refresh_from_db()
        assert contact.name == "Dana D." and contact.phone == "+49 30 1234567"

    viewer = login(alpha, make_member(alpha, "viewer")[0].email)
    read_only = viewer.get(page_url).content.decode()
    assert (
        "Prefers email" in read_only
        and 'id="memory-form"' not in read_only
        and '<form method="post" class' not in read_only
    )
    assert viewer.post(page_url, {"form": "erase_all"}).status_code == 403
    assert viewer.post("/dashboard/contacts/", {"name": "Nope"}).status_code == 403

    assert staff.post(page_url, {"form": "erase", "key": "preference"}).status_code == 302
    with schema_context(alpha.schema):
        contact.refresh_from_db()
        assert "preference" not in {f["key"] for f in contact.memory}
    nonsense = staff.post(page_url, {"form": "erase", "key": "nonsense"})
    assert nonsense.status_code == 400 and "Choose a memory key to erase." in nonsense.content.decode()
    erased = staff.post(page_url, {"form": "erase_all"}, follow=True).content.decode()
    assert "The AI remembers nothing about this contact." in erased
    with schema_context(alpha.schema):
        contact.refresh_from_db()
        assert contact.memory == [] and contact.email == "" and contact.name == ""

    assert staff.post(f"/dashboard/contacts/{contact_id}/delete/").status_code == 302
    with schema_context(alpha.schema):
        assert not Contact.objects.filter(pk=contact_id).exists()


def test_another_tenants_agent_and_contact_ids_are_not_found(
    alpha: Any, beta: Any, owner_client: Any, make_member: Any
) -> None:
    with schema_context(alpha.schema):
        alpha_agents = set(Agent.objects.values_list("pk", flat=True))
        alpha_contacts = set(Contact.objects.values_list("pk", flat=True))
    with schema_context(beta.schema):
        agent_id = _agent(beta, name="canary-beta agent")
        while agent_id in alpha_agents:
            agent_id = _agent(beta, name="canary-beta agent")
        contact = crm.contact_create(actor=_actor(beta), name="canary-beta contact")
        while contact.pk in alpha_contacts:
            contact = crm.contact_create(actor=_actor(beta), name="canary-beta contact")
        from apps.agents.models import BatchTest

        run = BatchTest.objects.create(agent_id=agent_id, prompt_version=1, questions=[{"question": "canary-beta?"}])
    for path in (
        f"/dashboard/agents/{agent_id}/",
        f"/dashboard/agents/{agent_id}/test/",
        f"/dashboard/agents/{agent_id}/test/batch/{run.pk}/",
        f"/dashboard/contacts/{contact.pk}/",
    ):
        response = owner_client.get(path)
        assert response.status_code == 404 and b"canary-beta" not in response.content, path
    assert owner_client.post(f"/dashboard/agents/{agent_id}/delete/").status_code == 404
    assert owner_client.post(f"/dashboard/agents/{agent_id}/duplicate/").status_code == 404
    assert owner_client.get(f"/dashboard/agents/{agent_id}/export/").status_code == 404
    assert owner_client.post(f"/dashboard/agents/{agent_id}/test/", {"questions": "canary-beta?"}).status_code == 404
    assert owner_client.post(f"/dashboard/contacts/{contact.pk}/delete/").status_code == 404
    assert owner_client.post(f"/dashboard/contacts/{contact.pk}/", {"form": "erase_all"}).status_code == 404
    response, lines, _ = _turn(owner_client, agent_id, "canary-beta?")
    assert response.status_code == 404 and lines[0]["code"] == "not_found"
    for path in ("/dashboard/agents/", "/dashboard/contacts/"):
        assert b"canary-beta" not in owner_client.get(path).content
    with schema_context(beta.schema):
        assert Agent.objects.filter(pk=agent_id).exists() and Contact.objects.filter(pk=contact.pk).exists()


def test_tenant_admin_shows_agents_and_crm_but_never_the_key(alpha: Any, owner_client: Any, help_kb: int) -> None:
    _agent(alpha, help_kb, name="Admin-listed agent")
    owner_client.post("/dashboard/ai/", {"provider": "openai", "openai-api_key": "sk-admin-view-secret-9876"})
    with schema_context(alpha.schema):
        crm.contact_create(actor=_actor(alpha), name="Admin-listed contact")
        credential = ProviderCredential.objects.get(provider="openai")
    pages = {
        "/admin/agents/agent/": "Admin-listed agent",
        "/admin/agents/promptversion/": "Admin-listed agent",
        "/admin/agents/providercredential/": "…9876",
        "/admin/agents/usagecounter/": "Usage counters",
        "/admin/agents/knowledgegap/": "Knowledge gaps",
        "/admin/agents/agentdailystats/": "Agent daily stats",
        "/admin/agents/batchtest/": "Batch tests",
        "/admin/crm/contact/": "Admin-listed contact",
        "/admin/crm/lead/": "Leads",
    }
    for path, expected in pages.items():
        response = owner_client.get(path)
        assert response.status_code == 200, path
        assert expected in response.content.decode(), path
    detail = owner_client.get(f"/admin/agents/providercredential/{credential.pk}/change/").content.decode()
    assert "…9876" in detail
    assert credential.api_key_encrypted not in detail and "api_key_encrypted" not in detail
    assert "sk-admin-view-secret-9876" not in detail
