"""Agent background jobs (queue `llm`): batch tests. Tasks only call services."""

from __future__ import annotations

from celery import shared_task

from . import batch


@shared_task(name="agents.run_batch_test", acks_late=True)
def run_batch_test(batch_id: int) -> str:
    return batch.batch_execute(batch_id)
