"""Celery application. Tasks carry the tenant schema in their headers (tenant-schemas-celery).

Queues: `default`, `ingest`, `llm`, and `events` (domain-event delivery, a worker of its own:
docs/subsystems/events.md). Tasks are acknowledged late and re-queued when a worker
dies; services enqueue them only after the surrounding transaction commits
(`syntera.tasks.enqueue_on_commit`). A task sent for a workspace that is scheduled for
deletion, deleted or unknown does nothing (`WorkspaceTask`).
"""

import logging
import os
import threading
from typing import Any

from celery.signals import task_postrun, task_prerun, worker_process_init, worker_ready
from tenant_schemas_celery.app import CeleryApp, get_schema_name_from_task
from tenant_schemas_celery.task import TenantTask

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "syntera.settings")

logger = logging.getLogger(__name__)
_read = threading.local()  # the workspace row read by this thread's task pre-run hook


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
        # With its plan: an AI turn checks the plan's quota (one query fewer per turn).
        tenant = Tenant.all_objects.select_related("plan").get(schema_name=schema_name)
        _read.tenant = tenant  # `__call__` decides on this row instead of reading it again
        return tenant

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        schema = get_schema_name_from_task(self, kwargs)
        if schema and schema != "public":
            from apps.tenants.selectors import tenant_accepts_work, workspace_accepts_work

            tenant, _read.tenant = getattr(_read, "tenant", None), None
            if tenant is not None and tenant.schema_name == schema:
                accepts = tenant_accepts_work(tenant)  # the row the pre-run hook has just read
            else:  # the hook found the connection already in this schema and read nothing
                accepts = workspace_accepts_work(schema)
            if not accepts:
                logger.info("task %s dropped: workspace %s is being deleted or gone", self.name, schema)
                return None
        return super().__call__(*args, **kwargs)


def _connections_as_per_request(sender: Any = None, **kwargs: Any) -> None:
    """Around each task, what Django does around each request: a connection past CONN_MAX_AGE
    or left unusable by an error is closed, and the next query checks the connection's health
    first. (Celery's fixup only closes every CELERY_DB_REUSE_MAX tasks.)"""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


def _realtime_loop(**kwargs: Any) -> None:
    """Each worker process sends its realtime frames through one loop and one connection."""
    from syntera.realtime import own_loop

    own_loop()


# Queues whose tasks are AI turns: their workers load what turns use before the first one.
TURN_QUEUES = {"llm", "llm_local"}


def _runs_turns() -> bool:
    from celery import current_app

    return bool(set(current_app.amqp.queues.consume_from or {}) & TURN_QUEUES)


def _warm_up() -> None:
    from apps.agents.warm import warm_up

    try:
        warm_up()
    except Exception:  # a turn loads what it needs anyway
        logger.warning("warming up for AI turns failed", exc_info=True)


def _warm_child(**kwargs: Any) -> None:
    """A prefork child that runs turns warms up before it takes its first task."""
    if _runs_turns():
        _warm_up()


def _warm_threads(sender: Any = None, **kwargs: Any) -> None:
    """A worker whose pool runs tasks in this process (threads, solo) warms up beside them."""
    if _runs_turns() and not type(getattr(sender, "pool", None)).__module__.endswith(".prefork"):
        threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()


worker_process_init.connect(_realtime_loop, weak=False)
worker_process_init.connect(_warm_child, weak=False)
worker_ready.connect(_warm_threads, weak=False)
task_prerun.connect(_connections_as_per_request, weak=False)
task_postrun.connect(_connections_as_per_request, weak=False)


def _forget_read_tenant(**kwargs: Any) -> None:
    """A row read for one task never decides for a later one."""
    _read.tenant = None


task_postrun.connect(_forget_read_tenant, weak=False)

app = CeleryApp("syntera", task_cls=WorkspaceTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
