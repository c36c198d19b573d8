"""Ingestion cannot pin the workers: a run stopped by its soft time limit fails its source with
a clear reason; a tenant has a cap on concurrent ingestions (the rest wait their turn, never
dropped; another tenant is not held up); a source that keeps stalling, or a scheduled
re-sync that keeps failing, is not queued again and again by the beat sweep."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.accounts.models import Role, User
from apps.accounts.services import Actor
from apps.knowledge import services, tasks
from apps.knowledge.models import KnowledgeBase, Source
from apps.tenants.models import Tenant
from syntera import slots
from tests.netlocal import local_site


def _actor(info: Any) -> Actor:
    tenant = Tenant.objects.get(pk=info.tenant_id)
    return Actor(tenant=tenant, role=Role.OWNER, user=User.objects.get(email=info.owner_email), label="test")


@pytest.fixture
def alpha_kb(alpha: Any) -> Iterator[tuple[Actor, KnowledgeBase]]:
    actor = _actor(alpha)
    with tenant_context(actor.tenant):
        yield actor, services.knowledge_base_create(editor=actor, name="Limits")


def _queued_text(actor: Actor, kb: KnowledgeBase, text: str = "Opening hours are 8 to 20.") -> Source:
    """A text source, queued; its task is not run (the commit callbacks are not executed)."""
    source = services.source_add_text(editor=actor, kb=kb, text=text)
    source.refresh_from_db()
    return source


# --- the soft time limit --------------------------------------------------------------------


@pytest.fixture
def soft_limit_in(settings: Any) -> Iterator[Any]:
    """Deliver the worker's soft-time-limit signal to this process after `seconds`, as the
    prefork pool does: SIGUSR1, whose handler raises SoftTimeLimitExceeded wherever the task is."""
    from billiard.pool import soft_timeout_sighandler

    previous = signal.signal(signal.SIGUSR1, soft_timeout_sighandler)
    timers: list[threading.Timer] = []

    def arm(seconds: float) -> None:
        timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGUSR1))
        timers.append(timer)
        timer.start()

    yield arm
    for timer in timers:
        timer.cancel()
    signal.signal(signal.SIGUSR1, previous)


def test_the_soft_time_limit_fails_the_source_with_a_clear_reason(
    alpha_kb: tuple[Actor, KnowledgeBase], settings: Any, soft_limit_in: Any
) -> None:
    """A page trickling one byte every 0.2 s, fetched with generous timeouts: the task's soft
    time limit arrives mid-read and the source fails saying so, not "something went wrong"."""
    actor, kb = alpha_kb
    settings.OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]
    settings.KNOWLEDGE_FETCH_TIMEOUT = 30
    settings.KNOWLEDGE_FETCH_DEADLINE = 60
    settings.KNOWLEDGE_INGEST_SOFT_TIME_LIMIT = 1800
    with local_site("127.0.0.1") as slow:
        slow.page("/", "<p>" + "slow " * 200 + "</p>", trickle_every=0.2)
        source = services.source_add_url(editor=actor, kb=kb, url=slow.url("/"))
        source.refresh_from_db()
        soft_limit_in(0.6)
        started = time.monotonic()
        outcome = services.ingest_source(source_id=source.pk, run=source.run)
        seconds = time.monotonic() - started
    source.refresh_from_db()
    assert outcome == "failed" and seconds < 3
    assert source.status == "failed"
    assert "took longer than its 30-minute time limit" in source.error


# --- the per-tenant cap ---------------------------------------------------------------------


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[dict[str, Any]]:
    """What the deferral hands to the broker (apply_async's arguments), instead of sending;
    ingestions then run as in a worker (not inline, as tasks do in the other tests)."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.ingest_source, "apply_async", lambda *args, **kwargs: calls.append(kwargs))
    return calls


def test_over_the_tenant_cap_an_ingestion_waits_its_turn(
    alpha_kb: tuple[Actor, KnowledgeBase], alpha: Any, beta: Any, settings: Any, sent: list[dict[str, Any]]
) -> None:
    actor, kb = alpha_kb
    settings.KNOWLEDGE_TENANT_CONCURRENCY = 1
    settings.KNOWLEDGE_CONCURRENCY_RETRY_SECONDS = 15
    source = _queued_text(actor, kb)
    before = source.updated_at
    with slots.slot(f"ingest:{alpha.schema}", limit=1, ttl=60, holder="another-run") as held:
        assert held
        assert tasks.ingest_source(source.pk, source.run) == "deferred"
        source.refresh_from_db()
        assert (source.status, source.progress, source.run) == ("queued", 0, source.run)
        assert source.updated_at > before  # alive: the stall sweep leaves it alone
        (call,) = sent
        assert call["args"] == (source.pk, source.run) and call["queue"] == "ingest"
        assert 15 <= call["countdown"] <= 30 and call["headers"] == {"_schema_name": alpha.schema}

        # another workspace is not held up by alpha's full slots
        beta_actor = _actor(beta)
        with tenant_context(beta_actor.tenant):
            beta_kb = services.knowledge_base_create(editor=beta_actor, name="Beta limits")
            beta_source = _queued_text(beta_actor, beta_kb, "Beta ships on Mondays.")
            assert tasks.ingest_source(beta_source.pk, beta_source.run) == "ready"
    assert tasks.ingest_source(source.pk, source.run) == "ready"  # the slot is free again
    assert len(sent) == 1


def test_slots_are_per_key_and_a_dead_holders_slot_expires(alpha: Any) -> None:
    name = f"ingest:{alpha.schema}:expiry"
    with slots.slot(name, limit=1, ttl=1, holder="dead-worker") as first:
        assert first
        with slots.slot(name, limit=1, ttl=60, holder="second") as second:
            assert not second
        with slots.slot(name, limit=1, ttl=60, holder="dead-worker") as again:
            assert again  # the same run, delivered again, holds its own slot
        time.sleep(1.2)
        with slots.slot(name, limit=1, ttl=60, holder="second") as later:
            assert later  # the first holder never released it; its time ran out
            assert alpha.schema in slots.key(name) and slots.client().exists(slots.key(name))


# --- the beat sweep -------------------------------------------------------------------------


def test_a_source_that_keeps_stalling_is_failed_instead_of_requeued_forever(
    alpha_kb: tuple[Actor, KnowledgeBase], settings: Any
) -> None:
    """A run whose worker is killed (its hard time limit, or kill -9) leaves the source
    "processing"; the sweep queues it again, up to KNOWLEDGE_MAX_STALLS times, then fails it."""
    actor, kb = alpha_kb
    settings.KNOWLEDGE_MAX_STALLS = 3
    source = _queued_text(actor, kb)
    past = timezone.now() - timedelta(seconds=settings.KNOWLEDGE_STALL_SECONDS + 60)
    runs = []
    for _attempt in range(3):
        Source.objects.filter(pk=source.pk).update(status="processing", updated_at=past)
        due = dict(services.sources_due())
        source.refresh_from_db()
        runs.append((source.pk in due, source.status))
    assert runs == [(True, "queued"), (True, "queued"), (False, "failed")]
    assert source.stalls == 2
    assert "stopped 3 times without finishing" in source.error
    Source.objects.filter(pk=source.pk).update(updated_at=past)
    assert source.pk not in dict(services.sources_due())  # failed stays failed
    # a re-sync by staff starts afresh
    services.source_resync(editor=actor, source=source)
    source.refresh_from_db()
    assert source.status == "queued" and source.stalls == 0


def test_a_source_that_never_started_is_queued_again_without_counting(
    alpha_kb: tuple[Actor, KnowledgeBase], settings: Any
) -> None:
    """A long backlog (or a lost message) leaves a source "queued" with no progress: queued
    again at every sweep, never failed for it."""
    actor, kb = alpha_kb
    settings.KNOWLEDGE_MAX_STALLS = 2
    source = _queued_text(actor, kb)
    past = timezone.now() - timedelta(seconds=settings.KNOWLEDGE_STALL_SECONDS + 60)
    for _sweep in range(4):
        Source.objects.filter(pk=source.pk).update(updated_at=past)
        assert source.pk in dict(services.sources_due())
    source.refresh_from_db()
    assert (source.status, source.stalls) == ("queued", 0)


def test_a_scheduled_resync_that_fails_waits_for_its_next_turn(alpha_kb: tuple[Actor, KnowledgeBase]) -> None:
    """A source re-synced every hour whose site is down is tried once an hour, not at every
    sweep (once a minute)."""
    actor, kb = alpha_kb
    source = _queued_text(actor, kb)
    due_at = timezone.now() - timedelta(minutes=1)
    Source.objects.filter(pk=source.pk).update(
        status="failed", error="The page answered HTTP 503.", sync_interval_hours=1, next_sync_at=due_at
    )
    assert source.pk in dict(services.sources_due())
    source.refresh_from_db()
    assert source.next_sync_at is not None and source.next_sync_at > timezone.now() + timedelta(minutes=59)
    Source.objects.filter(pk=source.pk).update(status="failed")  # the run failed again
    assert source.pk not in dict(services.sources_due())
