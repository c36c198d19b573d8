"""Domain events: the outbox and its dispatcher (docs/subsystems/events.md)."""

from .env import env_bool, env_int

# The subscribers, in the order they are called for an event: registered here, by dotted path,
# and nowhere else (nothing is discovered). Each is an `apps.events.dispatch.Subscriber`.
EVENTS_SUBSCRIBERS = [
    "apps.dashboard.subscribers.staff_inbox",
    "apps.audit.subscribers.audit_trail",
    "apps.agents.subscribers.agent_stats",
    "apps.routing.subscribers.handoff",
    "apps.routing.subscribers.sla",
]
# Days a delivered event stays in the outbox before the hourly purge deletes it.
EVENTS_RETENTION_DAYS = env_int("EVENTS_RETENTION_DAYS", 7)
# Attempts at delivering an event to a failing subscriber before it is marked failed; the
# wait after the n-th failure is BASE * 2^(n-1) seconds, at most MAX.
EVENTS_MAX_ATTEMPTS = env_int("EVENTS_MAX_ATTEMPTS", 8)
EVENTS_RETRY_BASE_SECONDS = env_int("EVENTS_RETRY_BASE_SECONDS", 2)
EVENTS_RETRY_MAX_SECONDS = env_int("EVENTS_RETRY_MAX_SECONDS", 300)
# Events read and delivered per transaction, and the seconds one dispatch task runs before it
# hands the rest to a new task (so one busy workspace does not hold the queue).
EVENTS_BATCH_SIZE = env_int("EVENTS_BATCH_SIZE", 200)
EVENTS_DISPATCH_SECONDS = env_int("EVENTS_DISPATCH_SECONDS", 20)
# At most two dispatch tasks per workspace per this many milliseconds, across all processes
# (one at once, one at the interval's end): the longest a staff page waits for an event's frame
# beyond the dispatch itself, and what keeps a busy workspace's batches large.
EVENTS_KICK_INTERVAL_MS = env_int("EVENTS_KICK_INTERVAL_MS", 500)
# Seconds between beat sweeps that start a dispatch wherever events wait (crash recovery,
# retries after a back-off).
EVENTS_SWEEP_INTERVAL = env_int("EVENTS_SWEEP_INTERVAL", 15)
# Check every emitted event against its JSON Schema and docs/subsystems/events.md (the test
# suite turns it on; it costs a validation per event).
EVENTS_VALIDATE = env_bool("EVENTS_VALIDATE", False)
