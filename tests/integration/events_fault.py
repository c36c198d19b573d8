"""For the worker-crash test of the event outbox (tests/integration/test_events_worker.py):
the settings its worker, beat and emitting command run with, and an idempotent subscriber.

The subscriber stands for any consumer with effects outside the database (a webhook, a
message sent on): it records each event it is given in Redis, applying an event id once and
counting every later delivery of the same id as a duplicate. It takes a few milliseconds per
event, so that the test can kill the worker in the middle of a batch.
"""

from __future__ import annotations

import os
import time
from typing import Any

from apps.events.dispatch import Delivery, Subscriber

# KEYS: seen set, applied list, duplicates counter, calls counter; ARGV: event id, entry.
_APPLY_ONCE = """
redis.call('INCR', KEYS[4])
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  return 1
end
redis.call('INCR', KEYS[3])
return 0
"""
_client: Any = None


def keys(run: str) -> list[str]:
    return [f"{run}:seen", f"{run}:applied", f"{run}:duplicates", f"{run}:calls"]


def _apply(delivery: Delivery) -> None:
    global _client
    if _client is None:
        import redis
        from django.conf import settings

        _client = redis.Redis.from_url(settings.REDIS_URL)
    time.sleep(float(os.environ.get("FAULT_SUBSCRIBER_SECONDS", "0.005")))
    entry = f"{delivery.data['conversation_id']}:{delivery.id}"
    _client.eval(_APPLY_ONCE, 4, *keys(os.environ["FAULT_RUN"]), delivery.id, entry)


idempotent = Subscriber(name="idempotent", types=frozenset({"csat.received"}), handle=_apply)
