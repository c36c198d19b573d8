"""A task for the broker-restart test, loaded into a real worker with `celery worker --include`:
it holds its message (acknowledged late, as every task here is) for a while, and notes in a
file when it started and when it ended."""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import shared_task


def _note(line: str) -> None:
    with Path(os.environ["SYNTERA_BROKER_TEST_NOTES"]).open("a") as notes:
        notes.write(line + "\n")


@shared_task(name="tests.hold", acks_late=True)
def hold(name: str, seconds: float) -> str:
    _note(f"start {name}")
    time.sleep(seconds)
    _note(f"done {name}")
    return name
