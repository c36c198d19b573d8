"""Fixtures for the events tests (the owners are the root conftest's): a web inbox without an
AI agent (nothing answers, nothing is ingested), and helpers to read a workspace's outbox."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from . import subscribers


@pytest.fixture
def web_inbox(owner: Any) -> Any:
    from apps.conversations.services import inbox_create

    return inbox_create(actor=owner, name="Events web", allowed_origins=["https://shop.example"])


@pytest.fixture
def recorded(settings: Any) -> Iterator[list[Any]]:
    """Only the test subscribers are registered: the recorder (every type) and the flaky one
    (fails for the conversations in `subscribers.FAILING`). Yields the deliveries the recorder
    saw committed (given to its `after_commit`)."""
    settings.EVENTS_SUBSCRIBERS = ["tests.events.subscribers.recorder", "tests.events.subscribers.flaky"]
    for state in (
        subscribers.RECORDED,
        subscribers.AFTER_COMMIT,
        subscribers.FAILING,
        subscribers.FAIL_IF,
        subscribers.CRASH_ON,
        subscribers.FLAKY_CALLS,
    ):
        state.clear()
    yield subscribers.AFTER_COMMIT
    subscribers.FAILING.clear()
    subscribers.FAIL_IF.clear()
    subscribers.CRASH_ON.clear()


def outbox(**filters: Any) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of the current workspace's outbox rows, in id order."""
    from apps.events.models import OutboxEvent

    return [(row.type, row.data) for row in OutboxEvent.objects.filter(**filters).order_by("id")]


def types_since(mark: int) -> list[str]:
    from apps.events.models import OutboxEvent

    return list(OutboxEvent.objects.filter(id__gt=mark).order_by("id").values_list("type", flat=True))


def last_id() -> int:
    from apps.events.models import OutboxEvent

    return OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
