"""Celery application. Tasks carry the tenant schema in their headers (tenant-schemas-celery).

Queues: `default`, `ingest`, `llm`. Tasks are acknowledged late and re-queued when a worker
dies; services enqueue them only after the surrounding transaction commits
(`syntera.tasks.enqueue_on_commit`).
"""

import os

from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "syntera.settings")

app = CeleryApp("syntera")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
