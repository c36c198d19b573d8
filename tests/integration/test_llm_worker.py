"""AI turns that wait on a remote model run many at once on the `llm` worker's threads, with
fewer database connections than threads (docs/adr/0022-ai-turn-concurrency.md): real uvicorn,
real Celery workers (the `llm` one on the threads pool with a connection pool), real
PostgreSQL and Redis, real WebSocket clients.

The model is OpenAI's API stood in for by a local server speaking the Chat Completions
streaming protocol (tests/standins/openai_server.py), paced like a hosted model, so the
official `openai` SDK's request path really runs in the worker."""

from __future__ import annotations

import os
import signal
import sys
import threading
import uuid

import pytest

from tests.standins.openai_server import OpenAIStandIn, Pacing

from .conftest import LiveStack, _start, _wait_worker_ready, _worker_args, wait_for
from .test_widget_websocket import Visitor, _workspace

pytestmark = pytest.mark.live

CONVERSATIONS = 12
THREADS = 16
POOL = 3
APP_NAME = "syntera-llm-live"


def _most_connections(stack: LiveStack, stop: threading.Event, seen: list[int]) -> None:
    while not stop.wait(0.05):
        rows = stack.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APP_NAME,))
        seen.append(int(rows[0][0]))


def test_many_turns_stream_at_once_on_threads_with_pooled_connections(live_stack: LiveStack) -> None:
    """Twelve visitors ask at once; the agent answers on OpenAI's protocol with ~1.5 s answers:
    the turns stream side by side (many answers open at the model at once), each visitor gets
    exactly one cited reply with its streamed deltas, and the worker never holds more than
    its pool's connections although it runs sixteen threads."""
    slug = f"llm-{uuid.uuid4().hex[:6]}"
    workspace = _workspace(live_stack, slug)
    api = live_stack.api(slug, workspace.key)
    agent = api.get("/api/v1/agents/").json()["results"][0]
    changed = api.patch(f"/api/v1/agents/{agent['id']}/", json={"provider": "openai", "model": "gpt-4o-mini"})
    assert changed.status_code == 200, changed.text

    model = OpenAIStandIn(pacing=Pacing(first_token=0.4, tokens_per_second=30, answer_tokens=30)).start()
    env = {
        **live_stack.env,
        "OPENAI_BASE_URL": model.base_url,
        "OPENAI_API_KEY": model.api_key,
        "DATABASE_POOL_SIZE": str(POOL),
        "PGAPPNAME": APP_NAME,
    }
    stop, connections = threading.Event(), [0]
    watcher = threading.Thread(target=_most_connections, args=(live_stack, stop, connections), daemon=True)
    visitors = [Visitor(live_stack, workspace) for _ in range(CONVERSATIONS)]
    with live_stack.paused("llm"):
        args = _worker_args("llm-live", "llm", ["--pool", "threads", "--concurrency", str(THREADS)])
        worker = _start("llm-live", args, env, live_stack.work_dir)
        try:
            _wait_worker_ready(worker)
            watcher.start()
            for visitor in visitors:
                visitor.open()
            asked = [visitor.say("How long does standard shipping take?") for visitor in visitors]
            for visitor, seq in zip(visitors, asked, strict=True):
                reply = visitor.until(lambda f, seq=seq: f["type"] == "message" and f["role"] == "ai", limit=400)
                assert reply["citations"], reply  # grounded in the article, through the model
                deltas = [f for f in visitor.extra if f["type"] == "delta" and f["reply_to"] == seq]
                assert deltas and reply["text"].startswith(deltas[0]["text"].strip()[:10])
                assert len(deltas) < 30  # joined pieces, not one frame per token
        finally:
            stop.set()
            for visitor in visitors:
                visitor.close()
            worker.stop()
            model.stop()
    schema = slug.replace("-", "_")
    replies = live_stack.sql(
        f"SELECT conversation_id, count(*) FROM \"{schema}\".conversations_message WHERE role = 'ai' "
        "GROUP BY conversation_id"
    )
    assert len(replies) == CONVERSATIONS and all(count == 1 for _, count in replies)
    assert model.most_streams_open >= CONVERSATIONS // 2, model.most_streams_open  # side by side, not in turn
    assert 0 < max(connections) <= POOL, connections
    sys.stderr.write(f"\n{model.most_streams_open} answers streaming at once; at most {max(connections)} connections\n")


def test_a_worker_killed_mid_stream_still_answers_once(live_stack: LiveStack) -> None:
    """kill -9 of the `llm` worker while the model streams the answer: the broker would hand
    the task out again only after its visibility timeout (an hour), so the stalled-turn sweep
    sends the turn again; the restarted worker answers, once, and the visitor sees it."""
    slug = f"kill-llm-{uuid.uuid4().hex[:6]}"
    workspace = _workspace(live_stack, slug)
    api = live_stack.api(slug, workspace.key)
    agent = api.get("/api/v1/agents/").json()["results"][0]
    assert api.patch(f"/api/v1/agents/{agent['id']}/", json={"provider": "openai"}).status_code == 200
    model = OpenAIStandIn(pacing=Pacing(first_token=0.2, tokens_per_second=10, answer_tokens=60)).start()
    model.keep_log = True
    env = {**live_stack.env, "OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": model.api_key}
    stalled = {"AI_STALL_SECONDS": "2", "AI_STALL_SWEEP_INTERVAL": "1", "DATABASE_POOL_SIZE": "4"}
    visitor = Visitor(live_stack, workspace)
    # Only this test's workers: the sweep runs on `default`, with this test's stall time.
    with live_stack.paused("llm", "celery"):
        threads = ["--pool", "threads", "--concurrency", "4"]
        first = _start("llm-a", _worker_args("llm-a", "llm,default", threads), {**env, **stalled}, live_stack.work_dir)
        second = None
        try:
            _wait_worker_ready(first)
            visitor.open()
            seq = visitor.say("How long does standard shipping take?")
            visitor.until(lambda f: f["type"] == "delta", limit=50)  # the model is streaming
            os.kill(first.proc.pid, signal.SIGKILL)
            first.proc.wait(timeout=10)
            beat = ["--beat", "--schedule", str(live_stack.work_dir / f"{slug}-beat")]
            args = [*_worker_args("llm-b", "llm,default", threads), *beat]
            second = _start("llm-b", args, {**env, **stalled}, live_stack.work_dir)
            _wait_worker_ready(second)
            reply = visitor.until(lambda f: f["type"] == "message" and f["role"] == "ai", limit=2000)
            assert reply["citations"] and reply["seq"] == seq + 1
        finally:
            visitor.close()
            for worker in (first, second):
                if worker is not None:
                    worker.stop()
            model.stop()
    schema = slug.replace("-", "_")
    rows = live_stack.sql(f"SELECT count(*) FROM \"{schema}\".conversations_message WHERE role = 'ai'")
    assert rows[0][0] == 1  # answered once
    assert len(model.chat_requests) == 2  # the killed stream, and the turn sent again


def test_the_workers_that_run_turns_load_what_turns_use_before_the_first_one(live_stack: LiveStack) -> None:
    """The turn workers (threads for `llm`, the default worker for `llm_local`) load the
    embedder, the token counter and the SDK when they start, so the first turns after a deploy
    do not all wait for them; the events and ingestion workers do not carry them."""
    for name in ("llm", "celery"):
        service = live_stack.service(name)
        wait_for(lambda s=service: "ready for AI turns" in s.log() or None, timeout=60, what=f"{name} to warm up")
    for name in ("events", "ingest"):
        assert "ready for AI turns" not in live_stack.service(name).log()
