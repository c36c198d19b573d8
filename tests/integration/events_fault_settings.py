"""Settings of the worker-crash test's processes (tests/integration/test_events_worker.py):
the project's, with the idempotent subscriber as the only one, a broker key space of the
test's own (so the live stack's worker never takes its tasks) and a sweep every second."""

import os

from syntera.settings import *  # noqa: F403
from syntera.settings import CELERY_BROKER_TRANSPORT_OPTIONS

EVENTS_SUBSCRIBERS = ["tests.integration.events_fault.idempotent"]
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "global_keyprefix": os.environ["FAULT_BROKER_PREFIX"],
}
CELERY_BEAT_SCHEDULE = {
    "events-sweep": {"task": "events.sweep", "schedule": 1.0, "options": {"queue": "events"}},
}
