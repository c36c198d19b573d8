from kombu import Exchange, Queue

from .env import env_bool, env_int, env_str
from .redis import REDIS_URL

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# One direct exchange per queue so `queue="ingest"` really lands in `ingest`.
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name) for name in ("default", "ingest", "llm", "llm_local", "events")
]
CELERY_TASK_DEFAULT_EXCHANGE = "default"
CELERY_TASK_DEFAULT_ROUTING_KEY = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes the database connection around every task unless this is set:
# a new PostgreSQL backend (fork, authentication, cold catalogue caches) per AI reply and per
# event dispatch. With it, a worker process keeps its connection for this many tasks, and
# `syntera.celery` applies Django's own rules around each task instead (CONN_MAX_AGE, a
# connection left unusable by an error is closed, the health check).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
# A task a dead worker held is handed out again after this many seconds (Redis broker). It
# must stay above every task's hard time limit, or a long task is started twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
# Time limits, in seconds, on every task: at the soft limit the task gets SoftTimeLimitExceeded
# and ends cleanly (an ingestion marks its source failed and says why); at the hard limit the
# worker process is replaced. Enforced by the prefork pool (the worker's default). Defaults for
# every task, and longer limits for the tasks that need them.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360)
KNOWLEDGE_INGEST_SOFT_TIME_LIMIT = env_int("KNOWLEDGE_INGEST_SOFT_TIME_LIMIT", 1800)
KNOWLEDGE_INGEST_TIME_LIMIT = env_int("KNOWLEDGE_INGEST_TIME_LIMIT", 1860)
AI_REPLY_SOFT_TIME_LIMIT = env_int("AI_REPLY_SOFT_TIME_LIMIT", 600)
AI_REPLY_TIME_LIMIT = env_int("AI_REPLY_TIME_LIMIT", 660)
BATCH_TEST_SOFT_TIME_LIMIT = env_int("BATCH_TEST_SOFT_TIME_LIMIT", 3000)
BATCH_TEST_TIME_LIMIT = env_int("BATCH_TEST_TIME_LIMIT", 3060)
CELERY_TASK_ANNOTATIONS = {
    "knowledge.ingest_source": {
        "soft_time_limit": KNOWLEDGE_INGEST_SOFT_TIME_LIMIT,
        "time_limit": KNOWLEDGE_INGEST_TIME_LIMIT,
    },
    "conversations.ai_reply": {"soft_time_limit": AI_REPLY_SOFT_TIME_LIMIT, "time_limit": AI_REPLY_TIME_LIMIT},
    "agents.run_batch_test": {"soft_time_limit": BATCH_TEST_SOFT_TIME_LIMIT, "time_limit": BATCH_TEST_TIME_LIMIT},
}
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "expire-invitations": {"task": "accounts.expire_invitations", "schedule": 3600.0},
    "expire-signups": {"task": "accounts.expire_signups", "schedule": 3600.0},
    # Scheduled re-syncs, and ingestions whose worker died mid-job (see KNOWLEDGE_STALL_SECONDS).
    "knowledge-requeue-due": {
        "task": "knowledge.requeue_due",
        "schedule": float(env_int("KNOWLEDGE_REQUEUE_INTERVAL", 60)),
    },
    # Waiting conversations offered to people who came online; SLA targets passed unmet.
    "routing-sweep": {"task": "routing.sweep", "schedule": float(env_int("ROUTING_SWEEP_INTERVAL", 30))},
    # AI turns whose worker died mid-turn (AI_STALL_SECONDS).
    "conversations-requeue-stalled-turns": {
        "task": "conversations.requeue_stalled_turns",
        "schedule": float(env_int("AI_STALL_SWEEP_INTERVAL", 30)),
    },
    # Conversations nobody wrote in (EMPTY_CONVERSATION_TTL_HOURS).
    "conversations-purge-empty": {"task": "conversations.purge_empty", "schedule": 3600.0},
    # Workspaces whose deletion grace period is over are purged; unfinished purges resume.
    "tenants-purge-due": {"task": "tenants.purge_due", "schedule": float(env_int("TENANT_PURGE_INTERVAL", 3600))},
    # Domain events: a dispatch wherever events wait (crash recovery, retries), and the
    # retention of delivered ones (docs/subsystems/events.md).
    "events-sweep": {
        "task": "events.sweep",
        "schedule": float(env_int("EVENTS_SWEEP_INTERVAL", 15)),
        "options": {"queue": "events"},
    },
    "events-purge": {"task": "events.purge", "schedule": 3600.0},
}
