"""How many database calls a web process's sockets run at once (apps/tenants/channels.py,
`CHANNELS_DB_THREADS`). The consumers' database work waits mostly on PostgreSQL round trips:
with 10,000 sockets behind nginx the chat benchmark found the threads of each web process
nearly all busy waiting on PostgreSQL, and the acks queued behind them
(docs/benchmarks.md, "10,000 sockets behind nginx")."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from apps.tenants.channels import database_call

CALLS = 24


def _run_together(calls: int) -> tuple[int, set[str]]:
    """`calls` database calls from as many sockets at once: the most that ran at the same
    time, and the threads they ran on."""
    lock = threading.Lock()
    running = 0
    most = 0
    names: set[str] = set()

    @database_call
    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            names.add(threading.current_thread().name)
        time.sleep(0.05)  # a PostgreSQL round trip
        with lock:
            running -= 1

    async def sockets() -> None:
        await asyncio.gather(*(work() for _ in range(calls)))

    asyncio.run(sockets())
    return most, names


def test_the_database_threads_are_a_setting(settings: Any) -> None:
    settings.CHANNELS_DB_SHARED_THREAD = False
    settings.CHANNELS_DB_THREADS = 12
    most, names = _run_together(CALLS)
    assert most == 12 and len(names) == 12, (most, names)
    settings.CHANNELS_DB_THREADS = 3
    most, names = _run_together(CALLS)
    assert most == 3 and len(names) == 3, (most, names)


def test_unset_the_event_loops_own_pool_is_used(settings: Any) -> None:
    import os

    settings.CHANNELS_DB_SHARED_THREAD = False
    settings.CHANNELS_DB_THREADS = 0
    most, _names = _run_together(CALLS)
    assert most == min(32, (os.cpu_count() or 1) + 4)
