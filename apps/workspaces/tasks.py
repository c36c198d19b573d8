"""Workspace lifecycle jobs: exports and the purge of deleted workspaces. Each task only calls a
service. They run in the public schema: they read the workspace themselves, whatever its state
(an export during the grace period, a purge after it).

The names keep the `tenants.` prefix they were first published under: tasks already queued,
and the beat schedule (`tenants-purge-due`), refer to them by name."""

from __future__ import annotations

import contextlib

from celery import shared_task

from . import deletion, export


@shared_task(name="tenants.build_export", acks_late=True, reject_on_worker_lost=True)
def build_export(export_id: int) -> str:
    made = export.tenant_export_build(export_id=export_id)
    return made.status if made is not None else "gone"


@shared_task(name="tenants.purge", acks_late=True, reject_on_worker_lost=True)
def purge(deletion_id: int, by: str = "") -> str:
    return str(deletion.tenant_purge(deletion_id=deletion_id, by=by).status)


@shared_task(name="tenants.purge_due")
def purge_due() -> list[int]:
    """Beat: purge each workspace whose grace period is over, and resume unfinished purges. One
    failure does not hold up the others; it is retried on the next run."""
    purged = []
    for deletion_id in deletion.tenant_deletions_due():
        # A failure is logged with its step by tenant_purge, and resumed on the next run.
        with contextlib.suppress(Exception):
            if deletion.tenant_purge(deletion_id=deletion_id).status == "purged":
                purged.append(deletion_id)
    return purged
