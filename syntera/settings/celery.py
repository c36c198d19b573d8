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
CELERY_TASK_QUEUES = [Queue(name, Exchange(name), routing_key=name) for name in ("default", "ingest", "llm")]
CELERY_TASK_DEFAULT_EXCHANGE = "default"
CELERY_TASK_DEFAULT_ROUTING_KEY = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task a dead worker held is handed out again after this many seconds (Redis broker).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "expire-invitations": {"task": "accounts.expire_invitations", "schedule": 3600.0},
    # Scheduled re-syncs, and ingestions whose worker died mid-job (see KNOWLEDGE_STALL_SECONDS).
    "knowledge-requeue-due": {
        "task": "knowledge.requeue_due",
        "schedule": float(env_int("KNOWLEDGE_REQUEUE_INTERVAL", 60)),
    },
    # Waiting conversations offered to people who came online; SLA targets passed unmet.
    "routing-sweep": {"task": "routing.sweep", "schedule": float(env_int("ROUTING_SWEEP_INTERVAL", 30))},
    # Workspaces whose deletion grace period is over are purged; unfinished purges resume.
    "tenants-purge-due": {"task": "tenants.purge_due", "schedule": float(env_int("TENANT_PURGE_INTERVAL", 3600))},
}
