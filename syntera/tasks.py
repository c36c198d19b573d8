"""Helpers for enqueueing Celery work from services."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.tenants.db import connection


def enqueue_on_commit(task: Any, *args: Any, queue: str | None = None, **kwargs: Any) -> None:
    """Send `task` once the current transaction commits, in the current tenant's schema.

    A rolled-back transaction sends nothing, so a worker never sees a row that does not exist.
    """
    schema = connection.schema_name

    def send() -> None:
        options: dict[str, Any] = {"headers": {"_schema_name": schema}}
        if queue:
            options["queue"] = queue
        task.apply_async(args=args, kwargs=kwargs, **options)

    transaction.on_commit(send)
