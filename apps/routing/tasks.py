"""Routing background jobs (beat). Tasks only call services; each tenant in its schema."""

from __future__ import annotations

from celery import shared_task

from apps.tenants.db import in_each_workspace

from . import services


@shared_task(name="routing.sweep")
def sweep() -> dict[str, int]:
    """Per tenant: reopen snoozed conversations that are due, assign waiting conversations to
    people now free, mark SLA breaches."""
    from apps.conversations.services import conversations_wake_snoozed

    totals = {"woken": 0, "assigned": 0, "breached": 0}
    for _ in in_each_workspace():
        totals["woken"] += conversations_wake_snoozed()
        totals["assigned"] += services.assign_waiting()
        totals["breached"] += services.sla_check()
    return totals
