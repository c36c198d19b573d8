"""The event outbox survives `kill -9` of its worker.

1,000 events are committed in one workspace while no worker runs (their dispatch is queued).
A real Celery worker on the `events` queue starts delivering them to an idempotent subscriber
(one that applies each event id once, like a webhook consumer) and is killed with SIGKILL in
the middle of a batch. Nothing marked that batch delivered, so after a restart of the worker
and Celery beat (whose sweep finds the workspace's pending events; the killed worker's task
would only come back after the broker's visibility timeout) every event is delivered: the
outbox has them all done, the subscriber applied each exactly once, in order per
conversation, and saw some of them twice (at least once, de-duplicated by id).

The worker, beat and the command that emits run with tests/integration/events_fault_settings.py:
the idempotent subscriber alone, a broker key space of their own, a sweep every second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis

from .conftest import COMMAND_TIMEOUT, PASSWORD, ROOT, LiveStack, Service, _start, wait_for
from .events_fault import keys

pytestmark = pytest.mark.live

SLUG = "fault-co"
EVENTS = 1000
CONVERSATIONS = 50

EMIT = f"""
from django.db import transaction
from django_tenants.utils import get_tenant_model, tenant_context
from apps.events import types
from apps.events.services import emit

with tenant_context(get_tenant_model().objects.get(slug={SLUG!r})):
    with transaction.atomic():
        emit(*[
            types.csat_received(conversation_id=i % {CONVERSATIONS} + 1, rating=i % 5 + 1, comment=f"event {{i}}")
            for i in range({EVENTS})
        ])
"""


def _worker(stack: LiveStack, env: dict[str, str], name: str) -> Service:
    args = [sys.executable, "-m", "celery", "-A", "syntera", "worker", "-Q", "events", "--pool", "solo"]
    args += ["--without-gossip", "--without-mingle", "--hostname", f"{name}{os.getpid()}@%h", "--loglevel", "INFO"]
    return _start(name, args, env, stack.work_dir, log_name=f"{name}-{time.monotonic_ns()}")


def _shell(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    """`manage.py shell -c <code>` with these settings (the emitting side, as an operator's
    command or a web process would)."""
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def _states(stack: LiveStack, schema: str) -> dict[str, int]:
    rows = stack.sql(f'SELECT state, count(*) FROM "{schema}".events_outboxevent GROUP BY state')
    return {str(state): int(count) for state, count in rows}


def test_a_worker_killed_mid_batch_loses_no_event_and_delivers_none_twice(live_stack: LiveStack) -> None:
    run = f"fault-{uuid.uuid4().hex[:8]}"
    env = {
        **live_stack.env,
        "DJANGO_SETTINGS_MODULE": "tests.integration.events_fault_settings",
        "FAULT_BROKER_PREFIX": f"{run}:",
        "FAULT_RUN": run,
        "FAULT_SUBSCRIBER_SECONDS": "0.005",
    }
    client = redis.Redis.from_url(live_stack.redis_url)
    services: list[Service] = []
    try:
        live_stack.create_tenant(SLUG, f"owner@{SLUG}.example", PASSWORD)
        schema = SLUG.replace("-", "_")
        started = time.monotonic()
        emitted = _shell(env, EMIT)
        assert emitted.returncode == 0, emitted.stderr[-2000:]
        assert _states(live_stack, schema) == {"pending": EVENTS}
        ids = [str(u) for (u,) in live_stack.sql(f'SELECT uuid FROM "{schema}".events_outboxevent ORDER BY id')]

        # The worker starts on the queued dispatch; killed once it is well into the events.
        worker = _worker(live_stack, env, "events-a")
        services.append(worker)
        wait_for(lambda: worker.assert_running() or client.llen(f"{run}:applied") >= 300, timeout=90, what="300 events")
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(timeout=10)
        applied_at_kill = client.llen(f"{run}:applied")
        states = _states(live_stack, schema)
        assert states.get("pending", 0) > 0, states  # it died with work left
        assert applied_at_kill > states.get("done", 0), (applied_at_kill, states)  # mid-batch: applied, not marked

        # A restart: the worker and beat, whose sweep finds what waits.
        beat_args = [sys.executable, "-m", "celery", "-A", "syntera", "beat", "--loglevel", "INFO"]
        beat_args += ["--schedule", str(live_stack.work_dir / f"{run}-beat-schedule")]
        services.append(_start("events-beat", beat_args, env, live_stack.work_dir))
        services.append(_worker(live_stack, env, "events-b"))

        def all_done() -> bool:
            for service in services[1:]:
                service.assert_running()
            return _states(live_stack, schema) == {"done": EVENTS}

        wait_for(all_done, timeout=180, interval=0.5, what="every event delivered after the restart")
        elapsed = time.monotonic() - started
        applied = [entry.decode() for entry in client.lrange(f"{run}:applied", 0, -1)]
        applied_ids = [entry.split(":", 1)[1] for entry in applied]
        duplicates = int(client.get(f"{run}:duplicates") or 0)
        calls = int(client.get(f"{run}:calls") or 0)
        # Every event, each applied exactly once.
        assert len(applied_ids) == EVENTS and set(applied_ids) == set(ids)
        # At least once: the killed batch's events came again and were recognised by their id.
        assert duplicates >= 1 and calls == EVENTS + duplicates
        # In order per conversation: the outbox's order within each conversation.
        position = {event_id: n for n, event_id in enumerate(ids)}
        by_conversation: dict[str, list[int]] = {}
        for entry in applied:
            conversation, event_id = entry.split(":", 1)
            by_conversation.setdefault(conversation, []).append(position[event_id])
        assert len(by_conversation) == CONVERSATIONS
        assert all(order == sorted(order) for order in by_conversation.values())
        sys.stderr.write(
            f"\nkill -9 at {applied_at_kill} applied; {duplicates} redelivered and skipped; "
            f"all {EVENTS} delivered in {elapsed:.1f}s\n"
        )
    finally:
        for service in services:
            service.stop()
        for key in [*keys(run), *client.scan_iter(match=f"{run}:*", count=1000)]:
            client.delete(key)
