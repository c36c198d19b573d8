"""Reads of the outbox for other apps."""

from __future__ import annotations

from collections.abc import Collection

from .models import OutboxEvent


def events_pending(*, stream: str, types: Collection[str]) -> bool:
    """Whether events of these types in `stream` (e.g. "conversation:42") wait for delivery:
    a judgement that needs what the subscribers learn from them (the SLA sweep) waits until
    they are delivered."""
    return OutboxEvent.objects.filter(stream=stream, type__in=types, state=OutboxEvent.State.PENDING).exists()
