"""A Celery worker process keeps its connections between tasks: one PostgreSQL connection
(Django's rules decide when it goes: CONN_MAX_AGE, an error that left it unusable) and one
channel-layer connection for the realtime frames it sends, instead of a new one per task or
per send."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from celery.fixups.django import DjangoWorkerFixup  # type: ignore[attr-defined]
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import OperationalError, connection

from syntera import celery as syntera_celery
from syntera import realtime


class _Task:
    """What the task signals are given: a task whose request is not eager (a worker's)."""

    class request:
        is_eager = False


def _run_task(fixup: DjangoWorkerFixup) -> int:
    """The signals around one task as a worker process sends them; the backend pid it used."""
    fixup.on_task_prerun(sender=_Task)
    syntera_celery._connections_as_per_request(sender=_Task)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = int(cursor.fetchone()[0])
    syntera_celery._connections_as_per_request(sender=_Task)
    fixup.on_task_postrun(sender=_Task)
    return pid


def _in_a_worker_thread(work: Callable[[], Any]) -> Any:
    """Run `work` on a thread of its own: its own connection in autocommit, as a worker
    process has it (this test's transaction stays on the main thread)."""

    def run() -> Any:
        try:
            return work()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=60)


@pytest.mark.django_db
def test_tasks_in_a_worker_process_share_one_database_connection() -> None:
    fixup = DjangoWorkerFixup(syntera_celery.app)
    assert fixup.db_reuse_max == settings.CELERY_DB_REUSE_MAX > 1
    pids = _in_a_worker_thread(lambda: {_run_task(fixup) for _ in range(10)})
    assert len(pids) == 1


@pytest.mark.django_db
def test_a_connection_left_broken_by_a_task_is_replaced_before_the_next() -> None:
    fixup = DjangoWorkerFixup(syntera_celery.app)

    def work() -> tuple[int, int]:
        first = _run_task(fixup)
        # The server ends the task's backend under it; the task fails with the error.
        with contextlib.suppress(OperationalError), connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return first, _run_task(fixup)

    first, second = _in_a_worker_thread(work)
    assert first != second


@pytest.fixture
def sender_loop() -> Iterator[None]:
    realtime.own_loop()
    yield
    loop, realtime._loop = realtime._loop, None
    assert loop is not None
    loop.call_soon_threadsafe(loop.stop)


def _redis_clients() -> int:
    url: str = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]
    clients: list[dict[str, Any]] = redis.Redis.from_url(url).client_list()
    return len(clients)


def test_frames_sent_from_a_worker_process_arrive_in_order_over_one_connection(sender_loop: None) -> None:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    group = "test.worker-sender"
    async_to_sync(layer.group_add)(group, channel)
    realtime.publish(group, {"type": "frame", "n": 0})  # the process's connection opens here
    before = _redis_clients()
    for n in range(1, 20):
        realtime.publish(group, {"type": "frame", "n": n})
    realtime.publish_many([(group, {"type": "frame", "n": 20}), (group, {"type": "frame", "n": 21})])
    assert _redis_clients() == before

    async def receive_all() -> list[Any]:
        return [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(22)]

    assert async_to_sync(receive_all)() == list(range(22))
    async_to_sync(layer.group_discard)(group, channel)
