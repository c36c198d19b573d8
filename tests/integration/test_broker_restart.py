"""A worker outlives a restart of its broker: Redis stopped while the worker holds messages of
tasks it is running (acknowledged late), started again a few seconds later. The worker keeps
running, the tasks it was running end, and it takes the tasks sent after the restart. Checked
for both pools the deployment runs: threads (the `llm` worker) and prefork (the others).

Real processes: a Celery worker started as the Procfile starts it (the project's settings,
with a waiting task loaded through `--include`), and a redis-server of the test's own, on a
loopback port, so that stopping it touches nothing else."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from tests.redis_server import RedisServer

from .conftest import (
    LiveStack,
    Service,
    _start,
    _wait_worker_ready,
    _worker_args,
    free_port,
    wait_for,
)

pytestmark = pytest.mark.live

OUTAGE = 3.0
HOLD = 6.0


@pytest.fixture
def broker() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="syntera-broker-") as directory:
        server = RedisServer(Path(directory), free_port())
        server.begin()
        try:
            yield server
        finally:
            server.stop()


def _send(broker: RedisServer, name: str, seconds: float) -> None:
    with Celery("sender", broker=broker.url, set_as_current=False) as sender:
        sender.send_task("tests.hold", args=(name, seconds), queue="llm")


def _notes(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize(
    "pool", [["--pool", "threads", "--concurrency", "4"], ["--pool", "prefork", "--concurrency", "2"]]
)
def test_a_worker_outlives_a_restart_of_its_broker(live_stack: LiveStack, broker: RedisServer, pool: list[str]) -> None:
    notes = live_stack.work_dir / f"broker-notes-{pool[1]}.txt"
    env = {
        **live_stack.env,
        "REDIS_URL": broker.url,
        "CELERY_BROKER_URL": broker.url,
        "SYNTERA_BROKER_TEST_NOTES": str(notes),
    }
    args = [*_worker_args(f"broker-{pool[1]}", "llm", pool), "--include", "tests.integration.broker_tasks"]
    worker: Service = _start(f"broker-{pool[1]}", args, env, live_stack.work_dir)
    try:
        _wait_worker_ready(worker)
        for name in ("before-1", "before-2"):
            _send(broker, name, HOLD)
        wait_for(lambda: sum(n.startswith("start") for n in _notes(notes)) == 2, timeout=30, what="both tasks running")

        broker.stop()
        time.sleep(OUTAGE)
        broker.begin()

        _send(broker, "after", 0)
        wait_for(lambda: "done after" in _notes(notes), timeout=60, what="the task sent after the restart")
        wait_for(lambda: {"done before-1", "done before-2"} <= set(_notes(notes)), timeout=30, what="the held tasks")
        worker.assert_running()
        assert _notes(notes).count("done after") == 1
    except BaseException:
        print(worker.tail(120))
        raise
    finally:
        worker.stop()
