"""Writes to the outbox: `emit` (every service that changes something calls it inside its own
transaction), the dispatch kick after commit, and the operators' retry and the retention purge
(docs/subsystems/events.md).

`emit` costs one INSERT for the events it is given (one statement for several) and, after the
commit, at most two Celery messages per EVENTS_KICK_INTERVAL_MS per workspace, whatever the
number of processes: no task per event, no extra round trip inside the transaction. A
rolled-back transaction takes its events with it, and its kick is never sent.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from syntera import slots

from .models import OutboxEvent
from .registry import REGISTRY, Event

logger = logging.getLogger(__name__)


def new_event_id() -> uuid.UUID:
    """A UUID version 7 (RFC 9562): the millisecond time first, then 74 random bits. Unique
    like any random UUID, and written in time order, which keeps the outbox's index compact."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(secrets.token_bytes(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)


def _schema() -> str:
    return str(connection.schema_name)  # type: ignore[attr-defined]


def emit(*events: Event, actor: Any = None, system_label: str = "system") -> None:
    """Write `events` to the current workspace's outbox, in the caller's transaction.

    `actor` (an `apps.accounts.services.Actor`: a person or an API key) or, for the platform
    itself, `system_label` is who caused them; it is kept for the audit trail, never put in the
    envelope. Call it from inside the `transaction.atomic` block that makes the change."""
    if not events:
        return
    for event in events:
        if event.type not in REGISTRY:
            raise ValueError(f"unknown event type {event.type!r}: add it to apps/events/types.py")
    if settings.EVENTS_VALIDATE:
        from .validation import check

        for event in events:
            check(event)
    now = timezone.now()
    user_id = getattr(getattr(actor, "user", None), "pk", None)
    label = ((getattr(actor, "label", "") if actor is not None else "") or system_label)[:200]
    ip = getattr(actor, "ip", None)
    values: list[Any] = []
    for event in events:
        values += [new_event_id(), event.type, event.stream, json.dumps(event.data), now, now, user_id, label, ip]
    # One statement for all of them, written directly: the ORM's bulk_create costs as much
    # again as the INSERT itself on the visitor's message path (docs/benchmarks.md).
    with connection.cursor() as cursor:
        cursor.execute(_INSERT + ", ".join([_ROW] * len(events)), values)
    transaction.on_commit(functools.partial(dispatch_soon, _schema()))


_COLUMNS = (
    "uuid",
    "type",
    "stream",
    "data",
    "created_at",
    "available_at",
    "actor_user_id",
    "actor_label",
    "actor_ip",
    "state",
    "attempts",
    "handled_by",
    "last_error",
)
_INSERT = f"INSERT INTO {connection.ops.quote_name(OutboxEvent._meta.db_table)} ({', '.join(_COLUMNS)}) VALUES "  # noqa: S608 (constants)
_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending', 0, '{}', '')"


# --- kicking the dispatcher -------------------------------------------------------------------

_kicks_lock = threading.Lock()
# schema -> the (monotonic) time at which the last kick this process sent is due to run.
_kicks: dict[str, float] = {}


def dispatch_soon(schema: str) -> None:
    """After a commit that wrote events: make sure a dispatch of `schema` starts after it.

    Debounced per workspace, first in the process and then across every process that commits
    events (web, workers): in each EVENTS_KICK_INTERVAL_MS one task is sent at once (the
    lead) and one to run at the interval's end (the trail); a commit that finds both sent is
    covered by the trail, which starts after it. So a busy workspace costs at most two tasks
    per interval, each delivering what all its processes committed, instead of one per
    process finding the others' events already delivered. A task that is lost (a broker
    outage) delays delivery until the beat sweep, never loses an event."""
    from .tasks import dispatch

    if dispatch.app.conf.task_always_eager:
        _send(schema, 0.0)  # in-process (tests): deliver at once, every time
        return
    interval = settings.EVENTS_KICK_INTERVAL_MS / 1000
    now = time.monotonic()
    with _kicks_lock:
        due = _kicks.get(schema, float("-inf"))
        if due > now:
            return  # this process's task is still ahead: it starts after this commit
        countdown = 0.0 if now >= due + interval else due + interval - now
        _kicks[schema] = now + countdown
    shared = _claim_kick(schema, countdown)
    if shared is None:
        return
    if shared != countdown:
        with _kicks_lock:
            _kicks[schema] = now + shared
    _send(schema, shared)


def _claim_kick(schema: str, countdown: float) -> float | None:
    """The countdown of the task this commit must send, agreed across processes through Redis
    (two keys per workspace that live one interval: `lead` and `trail`), or None when one sent
    by another process will start after this commit. Redis unreachable: this process's own
    decision (`countdown`) stands."""
    ms = max(1, settings.EVENTS_KICK_INTERVAL_MS)
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or "syntera"
    key = f"{prefix}:events:kick:{schema}"
    try:
        client = slots.client()
        if countdown == 0 and client.set(f"{key}:lead", 1, nx=True, px=ms):
            return 0.0
        if client.set(f"{key}:trail", 1, nx=True, px=ms):
            return ms / 1000
    except redis.RedisError:
        logger.warning("could not agree the event dispatch for %s with other processes", schema, exc_info=True)
        return countdown
    return None


def _send(schema: str, countdown: float) -> None:
    from .tasks import dispatch

    try:
        options: dict[str, Any] = {"queue": "events", "headers": {"_schema_name": schema}}
        if countdown > 0:
            options["countdown"] = countdown
        dispatch.apply_async(args=(schema,), **options)
    except Exception:
        logger.warning("could not queue the event dispatch for %s; the beat sweep will", schema, exc_info=True)


# --- operators --------------------------------------------------------------------------------


def events_retry(*, ids: list[uuid.UUID] | None = None) -> int:
    """Give failed events of the current workspace (all, or those with these envelope ids) a
    new round of attempts. Subscribers that had handled one are not called again. Returns how
    many; the dispatch is kicked after commit."""
    with transaction.atomic():
        failed = OutboxEvent.objects.filter(state=OutboxEvent.State.FAILED)
        if ids is not None:
            failed = failed.filter(uuid__in=ids)
        count = failed.update(
            state=OutboxEvent.State.PENDING, attempts=0, available_at=timezone.now(), finished_at=None
        )
        if count:
            transaction.on_commit(functools.partial(dispatch_soon, _schema()))
    return count


def events_drop(*, ids: list[uuid.UUID]) -> int:
    """Give up on failed events of the current workspace for good (deleted); returns how many."""
    deleted, _ = OutboxEvent.objects.filter(state=OutboxEvent.State.FAILED, uuid__in=ids).delete()
    return deleted


def events_purge_delivered(*, batch: int = 5000) -> int:
    """Delete the current workspace's events delivered more than EVENTS_RETENTION_DAYS ago;
    returns how many. Pending and failed events are never purged."""
    cutoff = timezone.now() - timedelta(days=settings.EVENTS_RETENTION_DAYS)
    total = 0
    while True:
        ids = list(
            OutboxEvent.objects.filter(state=OutboxEvent.State.DONE, finished_at__lt=cutoff).values_list(
                "pk", flat=True
            )[:batch]
        )
        if not ids:
            return total
        deleted, _ = OutboxEvent.objects.filter(pk__in=ids).delete()
        total += deleted
