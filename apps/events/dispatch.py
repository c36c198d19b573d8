"""The dispatcher: delivers a workspace's committed events to the subscribers
(docs/subsystems/events.md, docs/adr/0018-domain-events.md).

Subscribers are registered in code: EVENTS_SUBSCRIBERS lists them by dotted path, like
MIDDLEWARE, and nothing is discovered. A subscriber names the types it wants and handles one
event at a time; what it writes goes into the transaction that marks the event delivered, so a
subscriber that only writes to the database sees each event exactly once. Side effects outside
the database (a realtime frame) are returned by `handle` and given to `after_commit` once the
batch is committed.

Guarantees:
- at least once: an event is marked done only in the transaction that recorded its delivery;
  a crash before that commit delivers it again (consumers de-duplicate by its `id`);
- in order per stream (a conversation, a contact, a source): a stream's next event waits until
  the one before it is delivered or has failed for good. Emitters of one stream hold that
  stream's row lock, so the outbox's id order is their commit order;
- a failing subscriber is retried with exponential back-off (EVENTS_RETRY_BASE_SECONDS,
  doubling, at most EVENTS_RETRY_MAX_SECONDS) and only its own stream waits; after
  EVENTS_MAX_ATTEMPTS the event is marked `failed` (listed and retried with
  `manage.py events`) and the stream goes on;
- one dispatcher per workspace at a time (a PostgreSQL advisory lock): a second one finds the
  lock taken and leaves, and the holder looks for new events after releasing it, so an event
  committed meanwhile is never left behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from .models import OutboxEvent
from .registry import REGISTRY

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """What a subscriber is given: the envelope and who caused the event."""

    event: dict[str, Any]  # {"id", "type", "created", "tenant", "data"}
    actor_user_id: int | None
    actor_label: str
    actor_ip: str | None
    attempt: int  # 1 on the first delivery

    @property
    def id(self) -> str:
        return str(self.event["id"])

    @property
    def type(self) -> str:
        return str(self.event["type"])

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.event["data"]
        return data


@dataclass(frozen=True)
class Subscriber:
    """`handle(delivery)` runs in the dispatcher's transaction and may return items (e.g.
    realtime frames) that `after_commit(items)` receives, all of a batch at once, after the
    batch is committed. `name` is recorded on each event it handled: keep it stable."""

    name: str
    types: frozenset[str]
    handle: Callable[[Delivery], Iterable[Any] | None]
    after_commit: Callable[[list[Any]], None] | None = None


def subscribers() -> list[Subscriber]:
    """The subscribers of EVENTS_SUBSCRIBERS, checked."""
    loaded: list[Subscriber] = []
    for path in settings.EVENTS_SUBSCRIBERS:
        subscriber = import_string(path)
        if not isinstance(subscriber, Subscriber):
            raise ImproperlyConfigured(f"EVENTS_SUBSCRIBERS: {path} is not an apps.events.dispatch.Subscriber")
        unknown = subscriber.types - set(REGISTRY)
        if unknown:
            raise ImproperlyConfigured(f"EVENTS_SUBSCRIBERS: {path} wants unknown event types {sorted(unknown)}")
        if any(s.name == subscriber.name for s in loaded):
            raise ImproperlyConfigured(f"EVENTS_SUBSCRIBERS: two subscribers are named {subscriber.name!r}")
        loaded.append(subscriber)
    return loaded


@dataclass
class Report:
    delivered: int = 0
    retried: int = 0  # failed an attempt, will be tried again
    failed: int = 0  # gave up
    busy: bool = False  # another dispatcher of this workspace was running
    more: bool = False  # stopped at the time budget with events left
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "retried": self.retried,
            "failed": self.failed,
            "busy": self.busy,
            "more": self.more,
        }


# --- reading the outbox -----------------------------------------------------------------------


def deliverable(limit: int, now: Any = None) -> list[OutboxEvent]:
    """Up to `limit` pending events that may go now, in delivery order: due, and not behind an
    earlier event of their stream that is waiting out a back-off.

    One statement, index-backed whatever the table's statistics say: the streams held back
    (their first event in a back-off; few) are read first through the partial index on
    `available_at`, then the due events in id order through the one on `id`, leaving those
    streams' later events out."""
    now = now or timezone.now()
    table = connection.ops.quote_name(OutboxEvent._meta.db_table)
    return list(
        OutboxEvent.objects.raw(
            f"WITH held AS MATERIALIZED (SELECT stream, min(id) AS first FROM {table} "  # noqa: S608 (quoted name)
            "WHERE state = 'pending' AND available_at > %s GROUP BY stream) "
            f"SELECT * FROM {table} o WHERE o.state = 'pending' AND o.available_at <= %s "
            "AND NOT EXISTS (SELECT 1 FROM held WHERE held.stream = o.stream AND held.first < o.id) "
            "ORDER BY o.id LIMIT %s",
            [now, now, limit],
        )
    )


def _lock_key() -> str:
    return f"syntera.events.dispatch:{connection.schema_name}"  # type: ignore[attr-defined]


def _try_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [_lock_key()])
        return bool(cursor.fetchone()[0])


def _unlock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [_lock_key()])


def _tenant_slug() -> str:
    tenant = getattr(connection, "tenant", None)
    slug = getattr(tenant, "slug", None)
    if slug:
        return str(slug)
    from django_tenants.utils import get_tenant_model

    schema = connection.schema_name  # type: ignore[attr-defined]
    return str(get_tenant_model().objects.values_list("slug", flat=True).get(schema_name=schema))


# --- delivering -------------------------------------------------------------------------------


def run(*, budget_seconds: float | None = None, batch_size: int | None = None) -> Report:
    """Deliver the current workspace's deliverable events until there are none left (or the
    time budget is spent: `more` is then set and the caller kicks a new run). Called outside
    any transaction (each batch is one)."""
    report = Report()
    subs = subscribers()
    slug = _tenant_slug()
    size = batch_size or settings.EVENTS_BATCH_SIZE
    deadline = time.monotonic() + (budget_seconds if budget_seconds is not None else float("inf"))
    while True:
        if not _try_lock():
            report.busy = True
            return report
        try:
            # A batch shorter than `size` emptied the outbox: no need to read it again.
            while _deliver_batch(subs, slug, size, report) == size:
                if time.monotonic() >= deadline:
                    report.more = bool(deliverable(1))
                    return report
        finally:
            _unlock()
        # An event committed while we held the lock may have sent a dispatch that found it
        # taken and left: look again now that it is released.
        if not deliverable(1):
            return report


class _Failed(Exception):
    """A subscriber failed during the quick pass over a batch."""


def _deliver_batch(subs: list[Subscriber], slug: str, size: int, report: Report) -> int:
    """The next `size` deliverable events, in one transaction; returns how many were read.

    First the quick pass: every subscriber called directly, no savepoints (the common case
    costs the batch's reads, the subscribers' own statements and one UPDATE). If anything
    fails, that transaction is rolled back and the batch is delivered again carefully: each
    subscriber of each event in its own savepoint, failures recorded per event."""
    try:
        return _pass(subs, slug, size, report, careful=False)
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        logger.info("a subscriber failed in a batch; delivering it again one by one", exc_info=True)
        return _pass(subs, slug, size, report, careful=True)


def _pass(subs: list[Subscriber], slug: str, size: int, report: Report, *, careful: bool) -> int:
    later: dict[str, list[Any]] = {}
    counts = Report()
    with transaction.atomic():
        rows = deliverable(size)
        if not rows:
            return 0
        stopped: set[str] = set()  # streams whose earlier event failed in this batch
        done: list[int] = []
        for row in rows:
            if row.stream in stopped:
                continue
            errors = _deliver(row, subs, slug, later, careful=careful)
            if not errors:
                done.append(row.pk)
                counts.delivered += 1
                continue
            if _failed(row, errors):
                counts.failed += 1
            else:
                counts.retried += 1
                stopped.add(row.stream)
            counts.errors.extend(f"{row.type} {row.uuid}: {e}" for e in errors.values())
        if done:
            OutboxEvent.objects.filter(pk__in=done).update(state=OutboxEvent.State.DONE, finished_at=timezone.now())
    report.delivered += counts.delivered
    report.retried += counts.retried
    report.failed += counts.failed
    report.errors.extend(counts.errors)
    for sub in subs:
        items = later.get(sub.name)
        if items and sub.after_commit is not None:
            try:
                sub.after_commit(items)
            except Exception:
                logger.warning("subscriber %s: after_commit failed", sub.name, exc_info=True)
    return len(rows)


def _deliver(
    row: OutboxEvent, subs: list[Subscriber], slug: str, later: dict[str, list[Any]], *, careful: bool
) -> dict[str, str]:
    """Run the subscribers that still have to handle `row`. Quick (`careful` False): directly,
    and the first failure ends the pass (`_Failed`). Careful: each in its own savepoint (one
    that fails is rolled back alone; the others' work is kept and recorded, so they are not
    called again for this event); returns {subscriber name: error} for those that failed."""
    pending = [s for s in subs if row.type in s.types and s.name not in row.handled_by]
    if not pending:
        return {}
    delivery = Delivery(
        event={
            "id": str(row.uuid),
            "type": row.type,
            "created": row.created_at.isoformat(),
            "tenant": slug,
            "data": row.data,
        },
        actor_user_id=row.actor_user_id,
        actor_label=row.actor_label,
        actor_ip=row.actor_ip,
        attempt=row.attempts + 1,
    )
    errors: dict[str, str] = {}
    for sub in pending:
        if not careful:
            try:
                items = sub.handle(delivery)
            except SoftTimeLimitExceeded:
                raise
            except Exception as exc:
                raise _Failed(f"{sub.name} on {row.type} {row.uuid}") from exc
            later.setdefault(sub.name, []).extend(items or ())
            continue
        try:
            with transaction.atomic():
                items = sub.handle(delivery)
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:
            logger.warning("subscriber %s failed on %s %s", sub.name, row.type, row.uuid, exc_info=True)
            errors[sub.name] = f"{sub.name}: {type(exc).__name__}: {exc}"[:500]
            continue
        row.handled_by.append(sub.name)
        later.setdefault(sub.name, []).extend(items or ())
    return errors


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt."""
    seconds = settings.EVENTS_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(seconds, settings.EVENTS_RETRY_MAX_SECONDS))


def _failed(row: OutboxEvent, errors: dict[str, str]) -> bool:
    """Record a failed attempt; True when it was the last one (the event is now `failed`)."""
    now = timezone.now()
    row.attempts += 1
    row.last_error = "\n".join(errors.values())[:2000]
    given_up = row.attempts >= settings.EVENTS_MAX_ATTEMPTS
    if given_up:
        row.state = OutboxEvent.State.FAILED
        row.finished_at = now
        logger.error("event %s %s failed for good after %d attempts", row.type, row.uuid, row.attempts)
    else:
        row.available_at = now + backoff(row.attempts)
    row.save(update_fields=["attempts", "last_error", "state", "finished_at", "available_at", "handled_by"])
    return given_up
