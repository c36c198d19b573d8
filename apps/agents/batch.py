"""Batch tests: a list of questions put to an agent as dry runs, in the background.

Staff paste or send up to MAX_QUESTIONS questions, each optionally with the title of the
source the answer should cite. A Celery task (queue `llm`) answers them one by one through
the runtime, exactly as the test chat does (`dry_run`: no conversation, contact or lead is
written; each turn counts against the AI quota), and saves each result as it goes, so the
run's page shows progress. A question whose turn fails (the quota ran out, the provider
failed) is recorded with the error and the run goes on. See docs/subsystems/agents.md.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.audit.services import audit_action
from apps.tenants.db import connection
from syntera.errors import ApplicationError
from syntera.tasks import enqueue_on_commit

from .commit import turn_meter
from .models import Agent, BatchTest
from .providers import Turn
from .runtime import answer_turn
from .runtime.turns import TurnInput
from .selectors import queue_for_provider

logger = logging.getLogger(__name__)

MAX_QUESTIONS = 200
# What staff see when a run stops: the cause stays in the server log (an exception's text can
# name internal hosts and ports).
STOPPED = "The batch test stopped on an unexpected error; the answers so far are kept."
TIMED_OUT = "The batch test took longer than its time limit and was stopped. The answers so far are kept."
MAX_QUESTION_CHARS = 1000
MAX_EXPECTED_CHARS = 300


def parse_lines(text: str) -> list[dict[str, str]]:
    """One question per line, optionally followed by " | <expected source title>"; blank
    lines are skipped."""
    out = []
    for line in (text or "").splitlines():
        question, _, expected = line.partition("|")
        if question.strip():
            out.append({"question": question.strip(), "expected": expected.strip()})
    return out


def _clean(questions: list[dict[str, Any]]) -> list[dict[str, str]]:
    if not questions:
        raise ApplicationError("Give at least one question.", fields={"questions": ["Required."]})
    if len(questions) > MAX_QUESTIONS:
        raise ApplicationError(
            f"At most {MAX_QUESTIONS} questions per run.", fields={"questions": [f"At most {MAX_QUESTIONS}."]}
        )
    cleaned = []
    for number, item in enumerate(questions, start=1):
        question = " ".join(str(item.get("question") or "").replace("\x00", "").split())
        expected = " ".join(str(item.get("expected") or "").replace("\x00", "").split())
        if not question or len(question) > MAX_QUESTION_CHARS or len(expected) > MAX_EXPECTED_CHARS:
            raise ApplicationError(
                f"Question {number} is empty or too long.",
                fields={
                    "questions": [
                        f"Question {number}: 1-{MAX_QUESTION_CHARS} characters, source title at most "
                        f"{MAX_EXPECTED_CHARS}."
                    ]
                },
            )
        cleaned.append({"question": question, "expected": expected})
    return cleaned


def batch_start(*, editor: Actor, agent: Agent, questions: list[dict[str, Any]]) -> BatchTest:
    """Queue a batch test of `agent` (staff of the agent role and up, like the test chat)."""
    if not editor.has_role(Role.AGENT):
        raise ApplicationError("Viewers cannot test agents.", code="permission_denied", status_code=403)
    cleaned = _clean(questions)
    with transaction.atomic():
        run = BatchTest.objects.create(
            agent=agent, prompt_version=agent.prompt_version, questions=cleaned, created_by_label=editor.label[:254]
        )
        audit_action(editor, "agents.batch_test_started", run, {"agent_id": agent.pk, "questions": len(cleaned)})
        from .tasks import run_batch_test

        enqueue_on_commit(run_batch_test, run.pk, queue=queue_for_provider(agent.provider))
    return run


def _result(agent: Agent, item: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        turn = answer_turn(
            agent=agent,
            tenant=connection.tenant,
            conversation=TurnInput(turns=[Turn("user", item["question"])], dry_run=True),
        )
        turn_meter(result=turn)
    except ApplicationError as exc:
        return {**item, "decision": "error", "text": "", "citations": [], "error": exc.detail, "matched": None}
    titles = [c.title for c in turn.citations]
    expected = item["expected"].casefold()
    return {
        **item,
        "decision": turn.decision,
        "text": turn.text,
        "citations": [{"title": c.title, "source_id": c.source_id} for c in turn.citations],
        "matched": any(t.casefold() == expected for t in titles) if expected else None,
        "latency_ms": round((time.perf_counter() - started) * 1000),
    }


def batch_execute(batch_id: int) -> str:
    """Answer the run's questions not answered yet (a retried task goes on where it stopped)."""
    run = BatchTest.objects.select_related("agent").filter(pk=batch_id).first()
    if run is None or run.status in (BatchTest.Status.DONE, BatchTest.Status.FAILED):
        return "skipped"
    run.status = BatchTest.Status.RUNNING
    run.save(update_fields=["status"])
    try:
        for item in run.questions[len(run.results) :]:
            run.results = [*run.results, _result(run.agent, item)]
            run.save(update_fields=["results"])
    except Exception as exc:
        logger.exception("batch test %s stopped", batch_id)
        reason = TIMED_OUT if isinstance(exc, SoftTimeLimitExceeded) else STOPPED
        run.status, run.error, run.finished_at = BatchTest.Status.FAILED, reason, timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        raise
    run.status, run.finished_at = BatchTest.Status.DONE, timezone.now()
    run.save(update_fields=["status", "finished_at"])
    return "done"


def batch_summary(run: BatchTest) -> dict[str, Any]:
    """Counts over the results so far: decisions, expected sources cited, mean latency."""
    results = run.results or []
    decisions = {d: sum(1 for r in results if r.get("decision") == d) for d in ("answered", "abstained", "escalate")}
    expected = [r for r in results if r.get("matched") is not None]
    times = [r["latency_ms"] for r in results if isinstance(r.get("latency_ms"), int)]
    return {
        "total": len(run.questions or []),
        "done": len(results),
        **decisions,
        "failed": sum(1 for r in results if r.get("decision") == "error"),
        "expected": len(expected),
        "matched": sum(1 for r in expected if r["matched"]),
        "avg_latency_ms": round(sum(times) / len(times)) if times else None,
    }


CSV_COLUMNS = ("question", "expected", "decision", "cited expected", "answer", "sources", "latency ms", "error")


def _cell(value: Any) -> str:
    """A spreadsheet cell that is never read as a formula (visitor and document text is
    untrusted): text starting with =, +, -, @ or a control character gets a leading quote."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def batch_csv_rows(run: BatchTest) -> list[list[str]]:
    """The run's results as spreadsheet rows, a header first."""
    rows = [list(CSV_COLUMNS)]
    for r in run.results or []:
        matched = r.get("matched")
        rows.append(
            [
                _cell(r.get("question")),
                _cell(r.get("expected")),
                _cell(r.get("decision")),
                "" if matched is None else ("yes" if matched else "no"),
                _cell(r.get("text")),
                _cell("; ".join(str(c.get("title", "")) for c in r.get("citations") or [])),
                _cell(r.get("latency_ms")),
                _cell(r.get("error")),
            ]
        )
    return rows


# What changed for one question between two runs, in the order the page sorts them.
CHANGES = (
    "no_longer_matched",  # the expected source was cited before, not now
    "now_matched",  # … not cited before, cited now
    "no_longer_answered",  # answered before; now abstained, handed over or failed
    "now_answered",
    "sources_changed",  # same decision, other sources
    "text_changed",  # same sources, other words (or, answered neither time, another decision)
    "same",
    "new",  # not asked in the earlier run
)


def _key(question: str) -> str:
    return " ".join(question.casefold().split())


def _change(before: dict[str, Any] | None, now: dict[str, Any]) -> str:
    if before is None:
        return "new"
    if before.get("matched") is True and now.get("matched") is False:
        return "no_longer_matched"
    if before.get("matched") is False and now.get("matched") is True:
        return "now_matched"
    answered_before, answered_now = before.get("decision") == "answered", now.get("decision") == "answered"
    if answered_before != answered_now:
        return "now_answered" if answered_now else "no_longer_answered"
    if before.get("decision") != now.get("decision"):
        return "text_changed"
    titles = [sorted(str(c.get("title")) for c in r.get("citations") or []) for r in (before, now)]
    if titles[0] != titles[1]:
        return "sources_changed"
    return "same" if before.get("text") == now.get("text") else "text_changed"


def batch_baseline(run: BatchTest) -> BatchTest | None:
    """The run to compare `run` with by default: the agent's latest finished run before it."""
    return (
        BatchTest.objects.filter(agent_id=run.agent_id, status=BatchTest.Status.DONE, pk__lt=run.pk)
        .order_by("-pk")
        .first()
    )


def batch_compare(run: BatchTest, baseline: BatchTest) -> dict[str, Any]:
    """Each answered question of `run` against the same question (same words, ignoring case
    and spacing) in `baseline`: which change it is (CHANGES), with the earlier result, and the
    count of each change. Whether the expected source is cited is the only judgement made; a
    question that is now abstained may be better or worse, so it is reported, not scored."""
    earlier = {_key(r["question"]): r for r in baseline.results or []}
    items = []
    for result in run.results or []:
        before = earlier.get(_key(result["question"]))
        items.append(
            {
                "question": result["question"],
                "change": _change(before, result),
                "before": None
                if before is None
                else {k: before.get(k) for k in ("decision", "text", "citations", "matched")},
            }
        )
    return {
        "baseline": baseline.pk,
        "baseline_prompt_version": baseline.prompt_version,
        "baseline_created_at": baseline.created_at,
        "counts": {c: sum(1 for i in items if i["change"] == c) for c in CHANGES},
        "items": items,
    }
