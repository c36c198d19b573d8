"""The transactional outbox, in each tenant's schema (docs/subsystems/events.md).

A service writes one row per event in the transaction that makes the change, so the event
exists exactly when the change does. The dispatcher (`apps/events/dispatch.py`) delivers
pending rows to the subscribers in order per stream, records which subscribers have handled
each, and marks it `done` (or `failed` after EVENTS_MAX_ATTEMPTS). Delivered rows are deleted
after EVENTS_RETENTION_DAYS; failed ones stay until an operator retries or drops them.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models


class OutboxEvent(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Delivered"
        FAILED = "failed", "Failed"

    # The envelope: `uuid` is its `id`, given once and kept through every redelivery.
    uuid = models.UUIDField(unique=True)
    type = models.CharField(max_length=64)
    stream = models.CharField(max_length=80, help_text="What orders it, e.g. conversation:42.")
    data = models.JSONField()
    created_at = models.DateTimeField()
    # Who caused it, for the audit trail (never part of the envelope). The user lives in the
    # public schema: kept as a plain id, so writing an event checks no foreign key.
    actor_user_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=200, blank=True)
    actor_ip = models.GenericIPAddressField(null=True, blank=True)
    # Delivery.
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    available_at = models.DateTimeField(help_text="Not delivered before this (the back-off after a failure).")
    handled_by = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    last_error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["id"], name="events_pending", condition=models.Q(state="pending")),
            models.Index(fields=["available_at"], name="events_pending_due", condition=models.Q(state="pending")),
            models.Index(fields=["finished_at"], name="events_done", condition=models.Q(state="done")),
            models.Index(fields=["id"], name="events_failed", condition=models.Q(state="failed")),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.uuid} ({self.state})"
