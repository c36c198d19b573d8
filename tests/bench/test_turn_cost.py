"""What one AI turn costs the worker that runs it: CPU time, SQL statements, wall time.

The reply path's capacity is set by the CPU a turn takes in its worker (a threads pool runs
many turns at once, but one process holds the GIL one turn at a time; a prefork pool has one
turn per process). This benchmark runs `services.ai_reply`, the task's whole body, as a
worker does, in this process, one turn after another, and measures each:

- CPU: `time.process_time()` of this process around the call (the benchmark LLM runs in a
  process of its own, so its CPU is not counted; the realtime frames go out through the
  worker's own sender loop, `syntera.realtime.own_loop`, whose thread is counted);
- statements: every SQL statement the connection executes during the call (an execute
  wrapper; BEGIN/COMMIT are not counted);
- wall time, from which the LLM's own answer time is not subtracted.

Providers: `offline` (the built-in responder: retrieval and composition here) and `openai`
(the official SDK against the benchmark LLM, `tests/standins/openai_server.py`, a local
server speaking the Chat Completions streaming protocol, answering at once with
SYNTERA_BENCH_TURN_TOKENS tokens, 120 by default, the answers of the chat benchmark).
Each turn answers a new conversation's first message from the help articles of the agents'
tests (three short pages, indexed before the first turn), so retrieval is cheap here: its cost
at 100k chunks is `test_query_latency.py`'s. Three of the four questions are in the pages; the
benchmark fails if fewer than half the turns answer (the `answered` column).

SYNTERA_BENCH_TURN_PROFILE=1 adds, per provider, the functions with the most CPU time (cumulative, own)
(cProfile timing CPU over 50 more turns; the profiler slows them, so the figures above are taken
without it).

Run: make bench PYTEST_ARGS="-k turn_cost"
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import pstats
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from .helpers import ROOT, mean, percentile, record, table

pytestmark = pytest.mark.timeout(1800)

TURNS = int(os.environ.get("SYNTERA_BENCH_TURNS", "200"))
WARM = 10
TOKENS = os.environ.get("SYNTERA_BENCH_TURN_TOKENS", "120")
PROFILE = os.environ.get("SYNTERA_BENCH_TURN_PROFILE") == "1"
KEY = "sk-bench-turns"
QUESTIONS = (
    "How long does standard shipping take?",
    "Can I return an item I bought three weeks ago?",
    "how do i reset my pasword",
    "When does express shipping arrive?",
)


@contextlib.contextmanager
def benchmark_llm() -> Iterator[str]:
    """The benchmark LLM answering without delay; yields its base URL."""
    args = [sys.executable, "-m", "tests.standins.openai_server", "--api-key", KEY, "--first-token-ms", "0"]
    args += ["--tokens-per-second", "1000000", "--answer-tokens", TOKENS]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://"), f"the benchmark LLM did not start ({url!r})"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Statements:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


def _turn(inbox: Any, n: int) -> tuple[Any, int]:
    """A new conversation with one visitor message; its AI turn is not queued."""
    from apps.conversations import services, tasks

    conversation, _ = services.conversation_start(inbox=inbox)
    with mock.patch.object(tasks.ai_reply, "apply_async"):
        services.message_post(
            conversation_id=conversation.pk, role="visitor", text=QUESTIONS[n % len(QUESTIONS)], client_id="v1"
        )
    return conversation, conversation.epoch


def _measure(inbox: Any, turns: int, profiler: cProfile.Profile | None = None) -> dict[str, Any]:
    from django.db import connection

    from apps.conversations import services

    cpu, wall, statements, outcomes = [], [], [], []
    for n in range(turns):
        conversation, epoch = _turn(inbox, n)
        counter = Statements()
        with connection.execute_wrapper(counter):
            if profiler is not None:
                profiler.enable()
            c0, w0 = time.process_time(), time.perf_counter()
            outcome = services.ai_reply(conversation_id=conversation.pk, trigger_seq=1, epoch=epoch)
            c1, w1 = time.process_time(), time.perf_counter()
            if profiler is not None:
                profiler.disable()
        cpu.append(c1 - c0)
        wall.append(w1 - w0)
        statements.append(counter.count)
        outcomes.append(outcome)
    return {"cpu": cpu, "wall": wall, "statements": statements, "outcomes": outcomes}


def _top(profiler: cProfile.Profile, order: str, limit: int = 25) -> list[str]:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(order).print_stats(limit)
    return [line for line in out.getvalue().splitlines() if line.strip()][-limit - 1 :]


def test_turn_cost(committed_tenant: Any) -> None:
    from django.test import override_settings

    from apps.agents.services import agent_create
    from apps.agents.tests.conftest import HELP_ARTICLES
    from apps.agents.warm import warm_up
    from apps.conversations.services import inbox_create
    from apps.knowledge import services as knowledge
    from syntera import realtime

    realtime.own_loop()
    warm_up()
    rows, results = [], {}
    with committed_tenant("alpha") as owner, benchmark_llm() as llm_url:
        kb = knowledge.knowledge_base_create(editor=owner, name="Turn cost help")
        for title, text in HELP_ARTICLES.items():  # indexed here: the test's transaction holds on_commit back
            source = knowledge.source_add_text(editor=owner, kb=kb, title=title, text=text)
            assert knowledge.ingest_source(source_id=source.pk, run=source.run) == "ready"
        agent = agent_create(editor=owner, name="Turn cost", knowledge_bases=[kb.pk])
        inbox = inbox_create(actor=owner, name="Turn cost", agent_id=agent.pk, allowed_origins=["https://shop.example"])
        for provider in ("offline", "openai"):
            agent.provider, agent.model = provider, ("gpt-4o-mini" if provider == "openai" else "")
            agent.save()
            with override_settings(
                CELERY_TASK_ALWAYS_EAGER=False,  # the worker's path: the workspace's slot in Redis
                OPENAI_BASE_URL=llm_url,
                OPENAI_API_KEY=KEY,
            ):
                _measure(inbox, WARM)
                run = _measure(inbox, TURNS)
                profiler = cProfile.Profile(time.process_time) if PROFILE else None  # CPU, not waiting
                if profiler is not None:
                    _measure(inbox, min(TURNS, 50), profiler)
            replied = sum(1 for o in run["outcomes"] if o.startswith("replied"))
            assert replied == TURNS, f"{provider}: {sorted(set(run['outcomes']))}"
            answered = sum(1 for o in run["outcomes"] if o == "replied: answered")
            # Three of the four questions are in the help pages: turns that find nothing would
            # measure an abstention without retrieval's work.
            assert answered >= TURNS // 2, f"{provider}: {Counter(run['outcomes'])}"
            figures: dict[str, Any] = {
                "turns": TURNS,
                "cpu_ms_p50": round(percentile(run["cpu"], 50) * 1000, 2),
                "cpu_ms_mean": round(mean(run["cpu"]) * 1000, 2),
                "cpu_ms_p95": round(percentile(run["cpu"], 95) * 1000, 2),
                "statements_mean": round(mean(run["statements"]), 1),
                "wall_ms_p50": round(percentile(run["wall"], 50) * 1000, 2),
                "turns_per_cpu_second": round(1 / mean(run["cpu"]), 1),
                "answered": answered,
            }
            if profiler is not None:
                for order in ("cumulative", "tottime"):
                    figures[f"profile_{order}"] = _top(profiler, order)
                    print(f"\n[turn_cost] {provider}: {order} CPU time, {min(TURNS, 50)} profiled turns")
                    print("\n".join(figures[f"profile_{order}"]))
            results[provider] = figures
            rows.append([provider, *(v for k, v in figures.items() if not k.startswith("profile"))])
    headers = [
        "provider",
        "turns",
        "CPU p50 ms",
        "CPU mean ms",
        "CPU p95 ms",
        "statements",
        "wall p50 ms",
        "turns/CPU s",
        "answered",
    ]
    print("\n" + table(headers, rows))
    record(
        "turn_cost",
        {
            "what": "CPU, SQL statements and wall time of one AI turn (tests/bench/test_turn_cost.py)",
            "results": results,
        },
    )
