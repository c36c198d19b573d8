"""Batch tests of an agent: many questions answered in the background as dry runs, with the
expected source checked, progress kept per question, and the bad inputs."""

from __future__ import annotations

from typing import Any

import pytest

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.agents import batch
from apps.agents.models import BatchTest
from apps.conversations.models import Conversation
from apps.crm.models import Contact
from syntera.errors import ApplicationError


def test_parse_lines_reads_a_question_and_an_optional_expected_source() -> None:
    text = "How long does shipping take? | Shipping times\n\n  Can I pay by invoice?  \n|\n"
    assert batch.parse_lines(text) == [
        {"question": "How long does shipping take?", "expected": "Shipping times"},
        {"question": "Can I pay by invoice?", "expected": ""},
    ]


def test_a_batch_answers_every_question_and_checks_the_expected_source(
    agent: Any, owner: Any, django_capture_on_commit_callbacks: Any
) -> None:
    questions = [
        {"question": "How long does standard shipping take?", "expected": "Shipping times"},
        {"question": "How do I reset my password?", "expected": "Returns policy"},  # cites another
        {"question": "Do you ship to Antarctica?"},
        {"question": "I want to talk to a human"},
    ]
    before = (Conversation.objects.count(), Contact.objects.count())
    with django_capture_on_commit_callbacks(execute=True):  # the task runs (eager Celery)
        run = batch.batch_start(editor=owner, agent=agent, questions=questions)
    run.refresh_from_db()
    assert (run.status, run.prompt_version, run.finished_at is not None) == ("done", agent.prompt_version, True)
    decisions = [r["decision"] for r in run.results]
    assert decisions == ["answered", "answered", "abstained", "escalate"]
    first = run.results[0]
    assert "3 to 5 business days" in first["text"] and first["citations"][0]["title"] == "Shipping times"
    assert [r["matched"] for r in run.results] == [True, False, None, None]
    summary = batch.batch_summary(run)
    assert (summary["total"], summary["done"], summary["answered"], summary["expected"], summary["matched"]) == (
        4,
        4,
        2,
        2,
        1,
    )
    assert summary["avg_latency_ms"] is not None
    # Dry runs: no conversation, contact or knowledge gap was written, no stats counted.
    assert (Conversation.objects.count(), Contact.objects.count()) == before
    assert not agent.knowledge_gaps.exists() and not agent.daily_stats.exists()


def test_a_failing_turn_is_recorded_and_the_batch_goes_on(
    agent: Any, owner: Any, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The quota runs out after the first question: the others say so, the run finishes."""
    from apps.agents import guardrails

    calls = {"n": 0}

    def quota_check(tenant: object) -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            raise ApplicationError("The AI quota for today is used up.", code="quota_exceeded", status_code=429)

    monkeypatch.setattr(guardrails, "quota_check", quota_check)
    with django_capture_on_commit_callbacks(execute=True):
        run = batch.batch_start(editor=owner, agent=agent, questions=[{"question": q} for q in ("Hi", "A?", "B?")])
    run.refresh_from_db()
    assert run.status == "done" and [r["decision"] for r in run.results] == ["answered", "error", "error"]
    assert run.results[1]["error"] == "The AI quota for today is used up."
    assert batch.batch_summary(run)["failed"] == 2


def test_an_unexpected_failure_stops_the_run_with_a_generic_message(agent: Any, monkeypatch: Any) -> None:
    """What broke stays in the server log: staff see that the run stopped, not an internal
    exception's text (which can name hosts and ports)."""
    run = BatchTest.objects.create(
        agent=agent, prompt_version=1, questions=[{"question": "First?", "expected": ""}], status="queued"
    )

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise ConnectionRefusedError("connect to 10.0.0.5:5432 refused")

    monkeypatch.setattr(batch, "answer_turn", broken)
    with pytest.raises(ConnectionRefusedError):
        batch.batch_execute(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "10.0.0.5" not in run.error and "Refused" not in run.error
    assert run.error == batch.STOPPED


def test_a_retried_task_goes_on_where_it_stopped(agent: Any, owner: Any) -> None:
    run = BatchTest.objects.create(
        agent=agent,
        prompt_version=1,
        questions=[{"question": "First?", "expected": ""}, {"question": "Can I return an item?", "expected": ""}],
        results=[{"question": "First?", "expected": "", "decision": "answered", "text": "x", "citations": []}],
        status="running",
    )
    assert batch.batch_execute(run.pk) == "done"
    run.refresh_from_db()
    assert len(run.results) == 2 and run.results[0]["text"] == "x" and "30 days" in run.results[1]["text"]
    assert batch.batch_execute(run.pk) == "skipped" and batch.batch_execute(999_999) == "skipped"


@pytest.mark.parametrize(
    ("questions", "field"),
    [
        pytest.param([], "questions", id="none"),
        pytest.param([{"question": "Why?"}] * 201, "questions", id="too-many"),
        pytest.param([{"question": "   "}], "questions", id="blank"),
        pytest.param([{"question": "x" * 1001}], "questions", id="too-long"),
        pytest.param([{"question": "ok", "expected": "y" * 301}], "questions", id="expected-too-long"),
    ],
)
def test_bad_batches_are_refused_and_nothing_is_queued(
    agent: Any, owner: Any, questions: list[dict[str, str]], field: str
) -> None:
    with pytest.raises(ApplicationError) as refused:
        batch.batch_start(editor=owner, agent=agent, questions=questions)
    assert field in refused.value.fields
    assert not BatchTest.objects.exists()


def test_viewers_cannot_start_a_batch(agent: Any, owner: Any) -> None:
    viewer = Actor(tenant=owner.tenant, role=Role.VIEWER, user=owner.user, label="viewer")
    with pytest.raises(ApplicationError) as refused:
        batch.batch_start(editor=viewer, agent=agent, questions=[{"question": "Hi"}])
    assert refused.value.status_code == 403


def test_a_run_is_compared_with_the_previous_one_after_the_knowledge_changed(
    agent: Any, owner: Any, help_kb: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from apps.knowledge import services as knowledge

    questions = [
        {"question": "How long does standard shipping take?", "expected": "Shipping times"},
        {"question": "Do you ship to Antarctica?"},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        first = batch.batch_start(editor=owner, agent=agent, questions=questions)
    first.refresh_from_db()
    assert batch.batch_baseline(first) is None
    with django_capture_on_commit_callbacks(execute=True):
        knowledge.source_add_text(
            editor=owner,
            kb=help_kb,
            title="Antarctica",
            text="# Antarctica\n\nWe ship to research stations in Antarctica once a month by air freight.",
        )
    with django_capture_on_commit_callbacks(execute=True):
        second = batch.batch_start(editor=owner, agent=agent, questions=[*questions, {"question": "Do you gift wrap?"}])
    second.refresh_from_db()
    assert batch.batch_baseline(second) == first
    comparison = batch.batch_compare(second, first)
    assert comparison["baseline"] == first.pk and comparison["baseline_prompt_version"] == first.prompt_version
    assert [i["change"] for i in comparison["items"]] == ["same", "now_answered", "new"]
    assert comparison["items"][1]["before"]["decision"] == "abstained" and comparison["items"][2]["before"] is None
    assert {c: n for c, n in comparison["counts"].items() if n} == {"same": 1, "now_answered": 1, "new": 1}
    # A run still going, or one that failed, is never the default baseline of a later run.
    third = BatchTest.objects.create(agent=agent, prompt_version=1, questions=questions, status="failed")
    fourth = BatchTest.objects.create(agent=agent, prompt_version=1, questions=questions)
    assert batch.batch_baseline(fourth) == second and batch.batch_baseline(third) == second


def test_each_kind_of_change_is_told_apart() -> None:
    def result(decision: str, text: str = "A.", titles: tuple[str, ...] = ("S",), matched: Any = None) -> Any:
        citations = [{"title": t, "source_id": 1} for t in titles]
        return {"question": "Q?", "decision": decision, "text": text, "citations": citations, "matched": matched}

    cases = [
        (result("answered", matched=True), result("answered", titles=("T",), matched=False), "no_longer_matched"),
        (result("abstained", matched=False), result("answered", matched=True), "now_matched"),
        (result("answered"), result("escalate"), "no_longer_answered"),
        (result("error", text=""), result("answered"), "now_answered"),
        (result("answered", titles=("S", "T")), result("answered", titles=("S",)), "sources_changed"),
        (result("answered", titles=("T", "S")), result("answered", text="B.", titles=("S", "T")), "text_changed"),
        (result("abstained"), result("escalate"), "text_changed"),
        (result("answered", matched=True), result("answered", matched=True), "same"),
    ]
    for before, now, change in cases:
        runs = [BatchTest(results=[before]), BatchTest(results=[{**now, "question": " q? "}])]
        assert batch.batch_compare(runs[1], runs[0])["items"][0]["change"] == change, (before, now)
