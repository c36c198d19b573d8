"""Every Celery task the workers run has a soft and a hard time limit, so no task (a fetch of
a trickling page, an LLM call that never ends) can hold a worker forever; and the broker does
not hand a task that is still within its limits to a second worker."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from syntera.celery import app


def _tasks() -> dict[str, object]:
    app.loader.import_default_modules()
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def test_every_registered_task_has_soft_and_hard_time_limits() -> None:
    tasks = _tasks()
    assert {"knowledge.ingest_source", "conversations.ai_reply", "agents.run_batch_test"} <= set(tasks)
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    for name, task in tasks.items():
        soft = getattr(task, "soft_time_limit", None) or app.conf.task_soft_time_limit
        hard = getattr(task, "time_limit", None) or app.conf.task_time_limit
        assert soft and hard, f"{name} has no time limit"
        assert 0 < soft < hard < visibility, (name, soft, hard, visibility)


def test_long_tasks_have_their_own_limits() -> None:
    tasks = _tasks()
    ingest = tasks["knowledge.ingest_source"]
    assert getattr(ingest, "soft_time_limit", None) == settings.KNOWLEDGE_INGEST_SOFT_TIME_LIMIT
    assert getattr(ingest, "time_limit", None) == settings.KNOWLEDGE_INGEST_TIME_LIMIT
    assert getattr(tasks["agents.run_batch_test"], "soft_time_limit", None) == settings.BATCH_TEST_SOFT_TIME_LIMIT
    assert getattr(tasks["conversations.ai_reply"], "soft_time_limit", None) == settings.AI_REPLY_SOFT_TIME_LIMIT
    sweep = tasks["routing.sweep"]  # the defaults apply (the worker's, when the task has none)
    assert (getattr(sweep, "soft_time_limit", None) or app.conf.task_soft_time_limit) == (
        settings.CELERY_TASK_SOFT_TIME_LIMIT
    )
    assert (getattr(sweep, "time_limit", None) or app.conf.task_time_limit) == settings.CELERY_TASK_TIME_LIMIT


def test_a_workspace_task_has_its_workspace_and_plan_in_one_read(alpha: Any, django_db_blocker: Any) -> None:
    """The worker reads the workspace a task runs in with its plan: an AI turn checks the plan's
    quota without another query."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.agents.guardrails import quota_for
    from syntera.celery import WorkspaceTask

    with django_db_blocker.unblock(), CaptureQueriesContext(connection) as queries:
        tenant = WorkspaceTask.get_tenant_for_schema(alpha.schema)
        assert tenant.schema_name == alpha.schema and tenant.plan is not None
        assert quota_for(tenant).requests > 0
    reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert len(reads) == 1 and "tenants_plan" in reads[0], reads
