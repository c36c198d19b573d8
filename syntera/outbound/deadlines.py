"""Total deadlines: `deadline()` bounds a sequence of requests, and every wait under a guarded
client is shortened to what is left of it.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

_until: contextvars.ContextVar[float | None] = contextvars.ContextVar("outbound_until", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Everything guarded clients do inside the block (connections, TLS, writes, reads of
    headers and bodies, every redirect hop) ends `seconds` from now; a nested deadline can
    only shorten it."""
    current = _until.get()
    until = time.monotonic() + seconds
    token = _until.set(until if current is None else min(current, until))
    try:
        yield
    finally:
        _until.reset(token)


def _until_for(seconds: float | None) -> float | None:
    current = _until.get()
    if seconds is None:
        return current
    mine = time.monotonic() + seconds
    return mine if current is None else min(current, mine)


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    """`timeout` shortened to what is left of the deadline; `error` once nothing is left."""
    until = _until.get()
    if until is None:
        return timeout
    left = until - time.monotonic()
    if left <= 0:
        raise error("The total deadline of the request passed.")
    return left if timeout is None else min(timeout, left)
