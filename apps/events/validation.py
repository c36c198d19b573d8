"""Checking events as they are emitted (EVENTS_VALIDATE: on in the test suite and its live
servers, off in production, where the typed constructors stand in for it).

An emitted event fails loudly, in the service that emitted it, when its payload does not match
its type's JSON Schema or when docs/subsystems/events.md, the catalogue readers rely on, does
not list its type.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from django.conf import settings

from .registry import ENVELOPE_SCHEMA, REGISTRY, Event

CATALOGUE = Path("docs") / "subsystems" / "events.md"
# A type's section in the catalogue: "### `conversation.created`".
_HEADING = re.compile(r"^### `([a-z_.]+)`", re.M)


class InvalidEvent(ValueError):
    pass


@functools.cache
def _validator(schema_key: str) -> Any:
    from jsonschema import Draft202012Validator, FormatChecker

    schema = ENVELOPE_SCHEMA if schema_key == "" else REGISTRY[schema_key].schema
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def documented_types(path: Path | None = None) -> set[str]:
    """The types docs/subsystems/events.md has a section for."""
    return set(_HEADING.findall((path or Path(settings.BASE_DIR) / CATALOGUE).read_text(encoding="utf-8")))


@functools.cache
def _documented() -> frozenset[str]:
    return frozenset(documented_types())


def schema_errors(type_name: str, data: Any) -> list[str]:
    """Why `data` is not a valid payload of `type_name` (empty when it is)."""
    if type_name not in REGISTRY:
        return [f"unknown event type {type_name!r}"]
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(payload)'}: {error.message}"
        for error in _validator(type_name).iter_errors(data)
    ]


def envelope_errors(envelope: Any) -> list[str]:
    errors = [error.message for error in _validator("").iter_errors(envelope)]
    if isinstance(envelope, dict) and not errors:
        errors = schema_errors(str(envelope["type"]), envelope["data"])
    return errors


def check(event: Event) -> None:
    errors = schema_errors(event.type, event.data)
    if errors:
        raise InvalidEvent(f"{event.type} payload does not match its schema: {'; '.join(errors)}")
    if event.type not in _documented():
        raise InvalidEvent(f"{event.type} is emitted but {CATALOGUE} does not list it")
