"""Staff presence (online / away / offline), kept in Redis through the Django cache.

A staff socket marks its person online on connect and refreshes the mark while it lives
(heartbeat); "away" is set by the person; without a fresh mark a person is offline. Keys carry
the schema, so presence is per workspace. See docs/subsystems/routing.md.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.cache import cache

STATUSES = ("online", "away", "offline")
TTL = 90  # seconds without a heartbeat before someone counts as offline


def _key(schema: str, user_id: int) -> str:
    return f"presence:{schema}:{user_id}"


def set_status(schema: str, user_id: int, status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"presence is one of {', '.join(STATUSES)}")
    if status == "offline":
        cache.delete(_key(schema, user_id))
    else:
        cache.set(_key(schema, user_id), status, TTL)


def status_of(schema: str, user_id: int) -> str:
    return str(cache.get(_key(schema, user_id)) or "offline")


def statuses(schema: str, user_ids: Iterable[int]) -> dict[int, str]:
    ids = list(user_ids)
    found = cache.get_many([_key(schema, u) for u in ids])
    return {u: str(found.get(_key(schema, u)) or "offline") for u in ids}
