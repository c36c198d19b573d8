"""The domain-event outbox: what it adds to a visitor's message, and how fast it delivers.

1. The extra cost per visitor message. `services.message_post` as the widget consumer's
   database thread runs it (`wakeups_held`: the socket wake-up is published afterwards from
   the event loop, not timed), committed (autocommit, the transaction is the service's own),
   against the same inbox in the same run, alternating message by message between:
   - off: `emit` replaced by a no-op (no outbox row, no dispatch kick),
   - on: the product as it runs (one INSERT for the message's events; after the commit, at
     most one Celery message per EVENTS_KICK_INTERVAL_MS, here sent to the real broker under a
     key prefix of this run's own, which nothing consumes).
   SQL statements are counted per call (an execute wrapper on the connection; BEGIN and COMMIT
   are not statements Django executes, so they are not counted), times are wall-clock per call.
   Measured separately for a conversation's first message (conversation.created +
   message.created) and for later ones (message.created).
2. Events dispatched per second: the dispatcher (`apps.events.dispatch.run`, in this process,
   batches of EVENTS_BATCH_SIZE) delivering a backlog
   - of `message.created` events over 500 conversations to the production subscribers (the
     staff inbox reads each conversation's summary row and publishes its frame to the real
     channel layer after each batch),
   - of `conversation.assigned` events (the staff inbox and the audit trail, which writes an
     entry per event),
   - of the same `message.created` backlog to a subscriber that does nothing (the
     dispatcher's own cost: reading, savepoints, marking done).

Run: make bench PYTEST_ARGS="-k outbox"
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from apps.events.dispatch import Subscriber

from .helpers import mean, percentile, record, table

pytestmark = pytest.mark.timeout(3600)

CONVERSATIONS = int(os.environ.get("SYNTERA_BENCH_OUTBOX_CONVERSATIONS", "300"))
MESSAGES = int(os.environ.get("SYNTERA_BENCH_OUTBOX_MESSAGES", "3000"))
BACKLOG = int(os.environ.get("SYNTERA_BENCH_OUTBOX_EVENTS", "20000"))

# The dispatcher's own cost: a subscriber that does nothing (registered by dotted path below).
noop = Subscriber(name="noop", types=frozenset({"message.created"}), handle=lambda delivery: None)


def _stats(times: list[float], statements: list[int]) -> dict[str, float]:
    return {
        "n": len(times),
        "statements": mean(statements),
        "p50_ms": percentile(times, 50) * 1000,
        "p95_ms": percentile(times, 95) * 1000,
        "mean_ms": mean(times) * 1000,
    }


def _post(conversation_id: int, text: str, client_id: str) -> tuple[float, int]:
    from django.db import connection

    from apps.conversations import services

    statements = [0]

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        started = time.perf_counter()
        with services.wakeups_held():
            services.message_post(conversation_id=conversation_id, role="visitor", text=text, client_id=client_id)
        elapsed = time.perf_counter() - started
    return elapsed, statements[0]


def test_outbox_cost_per_visitor_message_and_dispatch_rate(committed_tenant: Any, monkeypatch: Any) -> None:
    from django.conf import settings
    from django.db import connection

    from apps.conversations import services
    from apps.conversations.models import Conversation
    from apps.events import dispatch
    from apps.events import types as events
    from apps.events.models import OutboxEvent
    from apps.events.services import emit
    from syntera.celery import app as celery_app

    prefix = f"bench-outbox-{os.getpid()}:"
    # Django's settings, which Celery reads (its configuration is namespaced `CELERY_`).
    monkeypatch.setattr(settings, "CELERY_TASK_ALWAYS_EAGER", False)
    monkeypatch.setattr(
        settings,
        "CELERY_BROKER_TRANSPORT_OPTIONS",
        {**celery_app.conf.broker_transport_options, "global_keyprefix": prefix},
    )
    from apps.conversations.services import messages as message_services

    real_emit = message_services.emit
    results: dict[str, Any] = {
        "command": 'make bench PYTEST_ARGS="-k outbox"',
        "conversations_per_mode": CONVERSATIONS,
        "messages_per_mode": MESSAGES,
        "backlog_events": BACKLOG,
    }
    with committed_tenant("alpha") as actor:
        monkeypatch.setattr(settings, "EVENTS_VALIDATE", False)  # as in production: no schema check
        inbox = services.inbox_create(actor=actor, name=f"Outbox bench {os.getpid()}")
        chats = {
            mode: [services.conversation_start(inbox=inbox)[0].pk for _ in range(CONVERSATIONS)]
            for mode in ("off", "on")
        }

        def mode(name: str) -> None:
            monkeypatch.setattr(message_services, "emit", real_emit if name == "on" else lambda *a, **k: None)

        # --- 1. the hot path: first messages, then later ones, alternating off/on -----------
        for label, rounds in (("first", 1), ("later", max(1, MESSAGES // CONVERSATIONS))):
            times: dict[str, list[float]] = {"off": [], "on": []}
            statements: dict[str, list[int]] = {"off": [], "on": []}
            for r in range(rounds):
                for i in range(CONVERSATIONS):
                    for name in ("off", "on") if (i + r) % 2 == 0 else ("on", "off"):
                        mode(name)
                        text = f"Hello, where is my order {r}-{i}? It was due yesterday and I need it for Friday."
                        elapsed, count = _post(chats[name][i], text, f"{label}-{r}-{i}")
                        times[name].append(elapsed)
                        statements[name].append(count)
            results[f"message_{label}"] = {name: _stats(times[name], statements[name]) for name in ("off", "on")}
        mode("on")

        # --- 2. dispatch throughput ----------------------------------------------------------
        OutboxEvent.objects.filter(state="pending").update(state="done")  # the hot path's own
        conversation_ids = list(Conversation.objects.filter(inbox=inbox).values_list("pk", flat=True))[:500]
        user_id = actor.user.pk

        def backlog(kind: str) -> None:
            made = []
            for n in range(BACKLOG if kind != "assigned" else BACKLOG // 4):
                conversation_id = conversation_ids[n % len(conversation_ids)]
                if kind == "assigned":
                    made.append(
                        events.conversation_assigned(
                            conversation_id=conversation_id, assignee_id=user_id, via="routing"
                        )
                    )
                else:
                    made.append(
                        events.message_created(
                            conversation_id=conversation_id,
                            seq=n + 1,
                            role="visitor",
                            text=f"Message {n}: where is my order? It was due yesterday.",
                            client_id=f"c{n}",
                            author_id=None,
                            author="",
                            citations=[],
                        )
                    )
                if len(made) == 1000:
                    emit(*made)
                    made = []
            if made:
                emit(*made)

        rates = []
        for name, kind, subscribers in (
            ("message.created to the production subscribers", "message", None),
            ("conversation.assigned to the staff inbox and the audit trail", "assigned", None),
            ("message.created to a subscriber that does nothing", "message", ["tests.bench.test_outbox.noop"]),
        ):
            if subscribers is not None:
                monkeypatch.setattr(settings, "EVENTS_SUBSCRIBERS", subscribers)
            backlog(kind)
            count = OutboxEvent.objects.filter(state="pending").count()
            started = time.perf_counter()
            report = dispatch.run(batch_size=settings.EVENTS_BATCH_SIZE)
            elapsed = time.perf_counter() - started
            assert report.delivered == count and report.retried == report.failed == 0
            rates.append({"case": name, "events": count, "seconds": round(elapsed, 2), "per_second": count / elapsed})
        results["dispatch"] = rates
        results["batch_size"] = settings.EVENTS_BATCH_SIZE
        results["kick_interval_ms"] = settings.EVENTS_KICK_INTERVAL_MS
        results["database"] = str(connection.settings_dict["NAME"])

    # Nothing consumes the kicks sent during the run: remove them from the broker.
    with celery_app.connection_for_write() as conn:
        client = conn.channel().client
        for key in list(client.scan_iter(match=f"{prefix}*", count=1000)):
            client.delete(key)

    rows = []
    for label in ("first", "later"):
        for name in ("off", "on"):
            s = results[f"message_{label}"][name]
            rows.append(
                [f"{label} message, emission {name}", s["n"], round(s["statements"], 2), s["p50_ms"], s["p95_ms"]]
            )
    print("\n" + table(["case", "messages", "SQL statements", "p50 ms", "p95 ms"], rows))
    print(
        "\n"
        + table(
            ["dispatched", "events", "seconds", "events/s"],
            [[r["case"], r["events"], r["seconds"], round(r["per_second"])] for r in rates],
        )
    )
    record("outbox", results)
