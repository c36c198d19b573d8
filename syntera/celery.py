"""Celery application. Tasks carry the tenant schema in their headers (tenant-schemas-celery).

Queues: `default`, `ingest`, `llm`, and `events` (domain-event delivery, a worker of its own:
docs/subsystems/events.md). Tasks are acknowledged late and re-queued when a worker
dies; services enqueue them only after the surrounding transaction commits
(`syntera.tasks.enqueue_on_commit`). A task sent for a workspace that is scheduled for
deletion, deleted or unknown does nothing (`WorkspaceTask`).
"""

import logging
import os
from typing import Any

from tenant_schemas_celery.app import CeleryApp, get_schema_name_from_task
from tenant_schemas_celery.task import TenantTask

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "syntera.settings")

logger = logging.getLogger(__name__)


class WorkspaceTask(TenantTask):  # type: ignore[misc]
    """The base of every task: runs in the schema its headers name, if that workspace may
    still do work. No AI reply, ingestion or sweep runs for a workspace in its deletion grace
    period, and a task still queued when the workspace is purged ends quietly instead of
    failing (or running in whatever schema the worker was in). Public-schema tasks (exports,
    the purge itself) always run."""

    abstract = True

    @classmethod
    def get_tenant_for_schema(cls, schema_name: str) -> Any:
        from apps.tenants.models import Tenant

        # Tombstones too: `__call__` drops their tasks. (No row at all raises here, in the
        # pre-run hook, which Celery logs; `__call__` drops the task then as well.)
        return Tenant.all_objects.get(schema_name=schema_name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        schema = get_schema_name_from_task(self, kwargs)
        if schema and schema != "public":
            from apps.tenants.selectors import workspace_accepts_work

            if not workspace_accepts_work(schema):
                logger.info("task %s dropped: workspace %s is being deleted or gone", self.name, schema)
                return None
        return super().__call__(*args, **kwargs)


app = CeleryApp("syntera", task_cls=WorkspaceTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
