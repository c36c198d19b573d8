"""The registry of domain event types: a name, a JSON Schema for the payload, and what orders
it. The catalogue itself (every type and its typed constructor) is `apps/events/types.py`;
docs/subsystems/events.md lists them for readers.

An event travels as an envelope `{"id", "type", "created", "tenant", "data"}`: `id` is a UUID
given once, when the event is written to the outbox, and kept through every redelivery
(consumers de-duplicate by it); `data` is the payload its type's schema describes. Type names
are a contract with outside clients: more may be added, none renamed.

This module imports no other app of the project (the events app is the bottom layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"

# Payload fields used by many types.
ID: dict[str, Any] = {"type": "integer", "minimum": 1}
OPTIONAL_ID: dict[str, Any] = {"type": ["integer", "null"], "minimum": 1}


def text(max_length: int, *, min_length: int = 0) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": max_length}


def one_of(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


@dataclass(frozen=True)
class Event:
    """One event, built by a constructor of `apps.events.types`, not yet written."""

    type: str
    data: dict[str, Any]
    # What orders it: events of one stream are delivered in the order they were written.
    stream: str


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    # The payload key whose value names the stream ("conversation_id" → "conversation:42").
    stream_key: str
    properties: dict[str, dict[str, Any]]
    schema: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "schema",
            {
                "$schema": JSON_SCHEMA,
                "title": self.name,
                "type": "object",
                "properties": self.properties,
                "required": sorted(self.properties),
                "additionalProperties": False,
            },
        )

    def make(self, **data: Any) -> Event:
        return Event(type=self.name, data=data, stream=f"{self.stream_key.removesuffix('_id')}:{data[self.stream_key]}")


REGISTRY: dict[str, EventType] = {}


def register(name: str, *, description: str, stream_key: str, **properties: dict[str, Any]) -> EventType:
    """Add a type to the registry. Every property is required (a value that may be absent is
    typed with `null`), and no other property is allowed."""
    if name in REGISTRY:
        raise ValueError(f"event type {name!r} is registered twice")
    if stream_key not in properties:
        raise ValueError(f"event type {name!r}: its stream key {stream_key!r} is not a property")
    event_type = EventType(name=name, description=description, stream_key=stream_key, properties=properties)
    REGISTRY[name] = event_type
    return event_type


ENVELOPE_SCHEMA: dict[str, Any] = {
    "$schema": JSON_SCHEMA,
    "title": "event envelope",
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "type": {"type": "string"},
        "created": {"type": "string", "format": "date-time"},
        "tenant": {"type": "string"},
        "data": {"type": "object"},
    },
    "required": ["id", "type", "created", "tenant", "data"],
    "additionalProperties": False,
}
