"""Counting limits for edges that have no HTTP request (WebSocket frames, Celery tasks).

`Rate` is django-ratelimit's "<count>/<period>" notation ("30/m", "500/h", "0/m" = no limit),
so every limit in the settings reads the same way. `hit` counts one event in a fixed window in
Redis, shared by every process; the key names its bucket, and callers put the tenant's
schema in it when the limit is per workspace. A Redis outage lets events through (logged):
a limit that fails closed would take the chat down with the cache.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from django.core.cache import cache
from django_tenants.utils import schema_context

logger = logging.getLogger(__name__)

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int

    @classmethod
    def parse(cls, value: str) -> Rate:
        """ "30/m" → 30 per 60 s; "100/5m" → 100 per 300 s. ValueError for anything else."""
        match = _RATE.match(value or "")
        if not match:
            raise ValueError(f"not a rate: {value!r} (use <count>/<period>, e.g. 30/m)")
        count, multiple, unit = match.groups()
        return cls(int(count), int(multiple or 1) * _UNIT[unit])

    @property
    def unlimited(self) -> bool:
        return self.count <= 0


def hit(bucket: str, rate: str | Rate, *, amount: int = 1) -> bool:
    """Count `amount` events in `bucket`'s current window; True while the count is within the
    rate. Counters live in the public cache namespace under `limit:<bucket>:<window>`."""
    limit = rate if isinstance(rate, Rate) else Rate.parse(rate)
    if limit.unlimited:
        return True
    window = int(time.time() // limit.seconds)
    key = f"limit:{bucket}:{window}"
    try:
        with schema_context("public"):
            count = amount if cache.add(key, amount, limit.seconds + 5) else cache.incr(key, amount)
    except Exception:
        logger.warning("limit counter unavailable for %s", bucket, exc_info=True)
        return True
    return int(count) <= limit.count
