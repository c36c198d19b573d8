"""The cache's Redis connections (syntera/cache.py): a process holds as many as it has threads
using the cache at once, however many sockets it serves.

Django keeps one cache object per asyncio context, and every WebSocket is a context of its
own: with Django's Redis backend each object opened its own connection pool, so each open
widget socket held a Redis connection through its limit checks. At 10,000 sockets on one box
that was Redis's 10,000 clients, and every socket after them failed.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import time
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.core.cache import cache
from django_tenants.utils import schema_context

from syntera.limits import hit

from .test_sockets import Sockets, sockets  # noqa: F401  (the fixture)

SOCKETS = 40


def _redis_connections() -> int:
    """This process's open TCP connections to the cache's Redis."""
    location = urlsplit(str(django_settings.CACHES["default"]["LOCATION"]))
    return sum(
        1
        for c in psutil.Process(os.getpid()).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == location.port and c.status == psutil.CONN_ESTABLISHED
    )


@pytest.fixture
def limits_that_count(settings: Any) -> None:
    """Every widget limit counted in Redis, none reached by these tests."""
    settings.WIDGET_CONNECT_RATE_PER_IP = settings.WIDGET_SESSION_RATE_PER_IP = "10000/m"
    settings.WIDGET_CONNECT_RATE_PER_INBOX = settings.WIDGET_SESSION_RATE_PER_INBOX = "10000/m"


def test_open_widget_sockets_do_not_each_hold_a_redis_connection(sockets: Sockets, limits_that_count: None) -> None:  # noqa: F811
    async def scenario() -> None:
        await sockets.open("widget")  # the process's first connections (cache, channel layer)
        before = _redis_connections()
        for _ in range(SOCKETS):
            await sockets.open("widget")
        held = _redis_connections() - before
        assert held <= 8, f"{SOCKETS} more sockets opened {held} more Redis connections"

    sockets.run(scenario)


def test_many_contexts_share_the_connections_and_still_count_right() -> None:
    """Contexts at once (as sockets are), each counting from a worker thread: every count
    lands, and the connections stay within the threads."""
    bucket = f"shared-pool-{os.getpid()}-{time.time_ns()}"

    def counted() -> int:
        with schema_context("public"):
            return int(cache.get(f"limit:{bucket}:{int(time.time() // 86400)}") or 0)

    async def visitor(done: asyncio.Event) -> bool:
        allowed: bool = await sync_to_async(hit, thread_sensitive=False)(bucket, "1000/d")
        await done.wait()  # still open while the others count
        return allowed

    async def everyone() -> tuple[list[bool], int]:
        done = asyncio.Event()
        # Each in a context of its own that has not used the cache yet, as a new socket's is.
        tasks = [asyncio.create_task(visitor(done), context=contextvars.Context()) for _ in range(SOCKETS)]
        while await sync_to_async(counted, thread_sensitive=False)() < SOCKETS:
            await asyncio.sleep(0.01)
        during = _redis_connections()
        done.set()
        return list(await asyncio.gather(*tasks)), during

    before = _redis_connections()
    allowed, during = asyncio.run(everyone())
    assert allowed == [True] * SOCKETS and counted() == SOCKETS
    assert during - before <= 8, f"{SOCKETS} contexts opened {during - before} Redis connections"
