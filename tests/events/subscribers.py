"""Subscribers for the dispatcher's tests (registered by the `recorded` fixture)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apps.events.dispatch import Delivery, Subscriber
from apps.events.registry import REGISTRY

RECORDED: list[Delivery] = []  # every call of the recorder's handle
AFTER_COMMIT: list[Any] = []  # the deliveries it was given after their batch committed
FAILING: set[int] = set()  # conversation ids the flaky subscriber fails for
FAIL_IF: list[Callable[[Delivery], bool]] = []  # ...and the events these say so of
CRASH_ON: set[str] = set()  # event types on which the recorder takes the whole process down
FLAKY_CALLS: list[str] = []  # event ids, one per call


def _record(delivery: Delivery) -> list[Delivery]:
    RECORDED.append(delivery)
    if delivery.type in CRASH_ON:
        raise SystemExit("the worker dies mid-batch")
    return [delivery]


def _flaky(delivery: Delivery) -> None:
    FLAKY_CALLS.append(delivery.id)
    if delivery.data.get("conversation_id") in FAILING or any(test(delivery) for test in FAIL_IF):
        raise RuntimeError(f"flaky refuses conversation {delivery.data.get('conversation_id')}")


recorder = Subscriber(name="recorder", types=frozenset(REGISTRY), handle=_record, after_commit=AFTER_COMMIT.extend)
flaky = Subscriber(name="flaky", types=frozenset(REGISTRY), handle=_flaky)
not_a_subscriber = object()
unknown_type = Subscriber(name="unknown", types=frozenset({"conversation.exploded"}), handle=_record)
recorder_again = Subscriber(name="recorder", types=frozenset({"message.created"}), handle=_record)
