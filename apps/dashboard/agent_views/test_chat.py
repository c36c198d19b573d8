"""The agent test chat: the page, and the endpoint that runs one dry-run turn and streams it
as NDJSON — `{"type":"delta","text"}` lines as the answer is produced, then one
`{"type":"final", text, decision, reason, citations, sources, tool_calls, audit, summary,
folded_turns}` line, or an `{"type":"error","code","detail"}` line. The conversation lives in
the browser (static/js/test-chat.js) and is re-sent each turn.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.asgi import ASGIRequest
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.models import Role
from apps.agents import batch
from apps.agents import selectors as agent_selectors
from apps.agents.commit import turn_meter
from apps.agents.models import BatchTest
from apps.agents.providers import Turn
from apps.agents.runtime import Delta, TurnInput, TurnResult, run_turn
from apps.tenants.db import connection
from syntera.errors import ApplicationError

from ..inbox_views.common import source_links_for
from ..views import member_required
from .pages import _actor, _can

logger = logging.getLogger(__name__)

NDJSON = "application/x-ndjson; charset=utf-8"
MAX_TEST_MESSAGES = 100


BATCHES_SHOWN = 10
CHANGE_LABELS = {
    "no_longer_matched": "no longer cites the expected source",
    "now_matched": "now cites the expected source",
    "no_longer_answered": "no longer answered",
    "now_answered": "now answered",
    "sources_changed": "other sources",
    "text_changed": "other wording",
    "same": "same answer",
    "new": "not asked before",
}


@member_required(Role.AGENT)
def agent_test(request: HttpRequest, agent_id: int) -> HttpResponse:
    agent = get_object_or_404(agent_selectors.agent_list(), pk=agent_id)
    status = 200
    questions = ""
    if request.method == "POST":  # a batch test
        questions = request.POST.get("questions", "")
        try:
            run = batch.batch_start(editor=_actor(request), agent=agent, questions=batch.parse_lines(questions))
        except ApplicationError as exc:
            messages.error(request, f"The batch test was not started: {exc.detail}")
            status = 400
        else:
            return redirect("dashboard-agent-batch", agent_id=agent.pk, batch_id=run.pk)
    context = {
        "agent": agent,
        "max_chars": settings.AGENT_MAX_INPUT_CHARS,
        "batches": [(run, batch.batch_summary(run)) for run in agent.batch_tests.all()[:BATCHES_SHOWN]],
        "questions": questions,
        "max_questions": batch.MAX_QUESTIONS,
    }
    return render(request, "dashboard/agent_test.html", context, status=status)


@member_required(Role.AGENT)
def agent_batch(request: HttpRequest, agent_id: int, batch_id: int) -> HttpResponse:
    run = get_object_or_404(BatchTest.objects.select_related("agent"), pk=batch_id, agent_id=agent_id)
    links = source_links_for(
        c["source_id"] for r in run.results for c in r.get("citations") or [] if isinstance(c.get("source_id"), int)
    )
    rows = [
        {**r, "citations": [{**c, "href": links.get(c.get("source_id"), "")} for c in r.get("citations") or []]}
        for r in run.results
    ]
    pending = (
        run.questions[len(run.results) :] if run.status in (BatchTest.Status.QUEUED, BatchTest.Status.RUNNING) else []
    )
    # Compared with the run chosen in `?compare=<id>`, by default the latest finished one before it.
    others = list(
        BatchTest.objects.filter(agent_id=agent_id, status=BatchTest.Status.DONE)
        .exclude(pk=run.pk)
        .only("pk", "prompt_version", "created_at")[: BATCHES_SHOWN * 5]
    )
    wanted = request.GET.get("compare", "")
    baseline = next((o for o in others if str(o.pk) == wanted), None) if wanted else batch.batch_baseline(run)
    comparison = batch.batch_compare(run, baseline) if baseline and not pending else None
    changes = []
    if comparison:
        for row, item in zip(rows, comparison["items"], strict=True):
            row.update(change=item["change"], change_label=CHANGE_LABELS[item["change"]], before=item["before"])
        changes = [(c, CHANGE_LABELS[c], n) for c, n in comparison["counts"].items() if n]
    context = {
        "run": run,
        "agent": run.agent,
        "summary": batch.batch_summary(run),
        "rows": rows,
        "pending": pending,
        "others": others,
        "comparison": comparison,
        "changes": changes,
        "baseline": baseline,
    }
    return render(request, "dashboard/agent_batch.html", context)


@member_required(Role.AGENT)
def agent_batch_csv(request: HttpRequest, agent_id: int, batch_id: int) -> HttpResponse:
    """The run's results as a CSV file (UTF-8 with a byte-order mark, for spreadsheets)."""
    run = get_object_or_404(BatchTest, pk=batch_id, agent_id=agent_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="batch-test-{run.pk}.csv"'
    response.write("\ufeff")
    csv.writer(response).writerows(batch.batch_csv_rows(run))
    return response


def _line(event: dict[str, Any]) -> bytes:
    """One NDJSON line. <, > and & are escaped so no byte of model or document text can be
    taken for markup by anything that sniffs the body."""
    text = json.dumps(event, cls=DjangoJSONEncoder, ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n").encode()


def _error(status: int, code: str, detail: str) -> HttpResponse:
    return HttpResponse(_line({"type": "error", "code": code, "detail": detail}), status=status, content_type=NDJSON)


def _turn_input(request: HttpRequest) -> TurnInput:
    """The posted conversation: `{"messages": [{"role": "user"|"assistant", "text"}...],
    "summary"?, "abstentions"?}`, checked as strictly as the API checks it."""
    try:
        data = json.loads(request.body or b"null")
    except RequestDataTooBig as exc:
        raise ApplicationError("The conversation is too large.", code="too_large", status_code=413) from exc
    except ValueError as exc:
        raise ApplicationError("Send a JSON object with a messages list.") from exc
    raw = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_TEST_MESSAGES:
        raise ApplicationError(f"messages must be a list of 1 to {MAX_TEST_MESSAGES} messages.")
    turns = []
    for message in raw:
        role = message.get("role") if isinstance(message, dict) else None
        text = message.get("text") if isinstance(message, dict) else None
        if role not in ("user", "assistant") or not isinstance(text, str) or not text.strip():
            raise ApplicationError('Each message needs a role ("user" or "assistant") and a non-empty text.')
        if role == "user" and len(text) > settings.AGENT_MAX_INPUT_CHARS:
            raise ApplicationError(f"A message has at most {settings.AGENT_MAX_INPUT_CHARS} characters.")
        turns.append(Turn(role, text.strip()[: settings.AGENT_MAX_INPUT_CHARS * 5]))
    if turns[-1].role != "user":
        raise ApplicationError("The last message must be the visitor's.")
    summary = data.get("summary") or ""
    abstentions = data.get("abstentions") or 0
    if not isinstance(summary, str) or len(summary) > 5000:
        raise ApplicationError("summary is a text of at most 5,000 characters.")
    if type(abstentions) is not int or not 0 <= abstentions <= 100:
        raise ApplicationError("abstentions is a whole number from 0 to 100.")
    return TurnInput(turns=turns, summary=summary, abstentions=abstentions, channel="test", dry_run=True)


def _final(result: TurnResult) -> dict[str, Any]:
    chunks = (result.audit.get("retrieval") or {}).get("chunks") or []
    found = source_links_for([c.source_id for c in result.citations] + [int(c["source_id"]) for c in chunks])
    links = {str(k): v for k, v in found.items()}  # keyed as the JSON keys them
    return {
        "type": "final",
        "text": result.text,
        "decision": result.decision,
        "reason": result.audit.get("reason", ""),
        "citations": [
            {**c.as_dict(), "index": c.index, "href": links.get(str(c.source_id), "")} for c in result.citations
        ],
        "sources": links,
        "tool_calls": result.tool_calls,
        "audit": result.audit,
        "summary": result.summary,
        "folded_turns": result.folded_turns,
    }


def _turn_lines(first: Delta | TurnResult, events: Iterator[Delta | TurnResult], tenant: Any) -> Iterator[bytes]:
    event = first
    try:
        while True:
            if isinstance(event, TurnResult):
                connection.set_tenant(tenant)
                turn_meter(result=event)  # a test turn writes nothing but spends the AI quota
                yield _line(_final(event))
                return
            yield _line({"type": "delta", "text": event.text})
            # The stream may be read after the view returned: pin this tenant's schema again.
            connection.set_tenant(tenant)
            event = next(events)
    except ApplicationError as exc:
        yield _line({"type": "error", "code": exc.code, "detail": exc.detail})
    except Exception:
        logger.exception("test chat turn failed")
        yield _line({"type": "error", "code": "server_error", "detail": "The turn failed. Try again in a moment."})


async def _async_lines(lines: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Under ASGI, a sync iterator would be read to the end before the first byte is sent;
    pulling one line at a time from the request's thread keeps the stream a stream."""
    step = sync_to_async(_next_line, thread_sensitive=True)
    while (line := await step(lines)) is not None:
        yield line


def _next_line(lines: Iterator[bytes]) -> bytes | None:
    return next(lines, None)


@require_POST
@member_required()
def agent_test_turn(request: HttpRequest, agent_id: int) -> HttpResponse:
    """One dry-run turn of the agent for the posted conversation, streamed as NDJSON:
    `delta` lines, then one `final` line (or an `error` line). Spends the AI quota."""
    if not _can(request, Role.AGENT):
        return _error(403, "permission_denied", "Viewers cannot run the test chat: it spends the AI quota.")
    agent = agent_selectors.agent_list().filter(pk=agent_id).first()
    if agent is None:
        return _error(404, "not_found", "No such agent.")
    tenant = request.tenant  # type: ignore[attr-defined]
    try:
        events = run_turn(agent=agent, tenant=tenant, conversation=_turn_input(request))
        first = next(events)
    except ApplicationError as exc:
        return _error(exc.status_code, exc.code, exc.detail)
    lines = _turn_lines(first, events, tenant)
    content: Iterator[bytes] | AsyncIterator[bytes] = _async_lines(lines) if isinstance(request, ASGIRequest) else lines
    response = StreamingHttpResponse(content, content_type=NDJSON)
    # POST answers are not cached anyway; "no-cache", not "no-store", because Chromium reports a
    # no-store stream read with getReader() as aborted even after it reached its end
    # (microsoft/playwright#42742).
    response["Cache-Control"] = "private, no-cache"
    response["X-Accel-Buffering"] = "no"  # proxies such as nginx: pass lines on as they come
    return response  # type: ignore[return-value]  # a streaming response, which the decorator passes through
