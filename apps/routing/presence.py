"""Staff presence (online / away / offline), kept in Redis through the Django cache.

A staff socket marks its person online on connect and refreshes the mark while it lives
(heartbeat); "away" is set by the person; without a fresh mark a person is offline. Keys carry
the schema, so presence is per workspace. See docs/subsystems/routing.md.
"""

from __future__ import annotations

import time
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


# --- staff sockets (apps/dashboard/consumers.py) ------------------------------------------------
# A person may have several dashboard tabs open. Each live socket is remembered with the time
# its mark runs out; the person goes offline when their last socket closes (or every mark has
# run out). A socket's heartbeat re-registers it, so a lost update (two sockets of one person
# changing the list at the same instant) heals within one heartbeat. The status a person
# chooses (online or away) is kept apart for CHOICE_TTL, so moving from one dashboard page to
# the next (one socket closes, the next opens) comes back with that status.

CHOICE_TTL = 12 * 3600


def _choice_key(schema: str, user_id: int) -> str:
    return f"presence-choice:{schema}:{user_id}"


def chosen(schema: str, user_id: int) -> str:
    """The status the person last chose (online unless they chose away)."""
    return "away" if cache.get(_choice_key(schema, user_id)) == "away" else "online"


def choose(schema: str, user_id: int, status: str) -> str:
    """The person sets their status (online, away, or offline to sign off now); returns the
    status before."""
    before = status_of(schema, user_id)
    if status in ("online", "away"):
        cache.set(_choice_key(schema, user_id), status, CHOICE_TTL)
    set_status(schema, user_id, status)
    return before


def _sockets_key(schema: str, user_id: int) -> str:
    return f"presence-sockets:{schema}:{user_id}"


def _live_sockets(schema: str, user_id: int, now: float) -> dict[str, float]:
    found = cache.get(_sockets_key(schema, user_id))
    if not isinstance(found, dict):
        return {}
    return {str(k): float(v) for k, v in found.items() if isinstance(v, int | float) and v > now}


def socket_alive(schema: str, user_id: int, socket: str, status: str | None = None) -> tuple[str, str]:
    """A staff socket opened or sent a heartbeat: remember it and mark the person `status`
    when given (their choice), else keep their current status, or, coming online, the one
    they chose last. Returns (status before, status after)."""
    if status is not None and status not in ("online", "away"):
        raise ValueError("a live socket is online or away")
    now = time.time()
    sockets = _live_sockets(schema, user_id, now)
    sockets[socket] = now + TTL
    cache.set(_sockets_key(schema, user_id), sockets, TTL)
    if status is not None:
        return choose(schema, user_id, status), status
    before = status_of(schema, user_id)
    after = before if before in ("online", "away") else chosen(schema, user_id)
    set_status(schema, user_id, after)
    return before, after


def socket_closed(schema: str, user_id: int, socket: str) -> tuple[str, str]:
    """A staff socket closed: the person goes offline if it was their last one. Returns
    (status before, status after)."""
    now = time.time()
    sockets = _live_sockets(schema, user_id, now)
    sockets.pop(socket, None)
    before = status_of(schema, user_id)
    if sockets:
        cache.set(_sockets_key(schema, user_id), sockets, TTL)
        return before, before
    cache.delete(_sockets_key(schema, user_id))
    set_status(schema, user_id, "offline")
    return before, "offline"


def announce(schema: str, user_id: int, status: str) -> None:
    """Tell the workspace's staff sockets: staff event `presence.changed`."""
    from syntera.realtime import publish, staff_group

    publish(
        staff_group(schema),
        {"type": "staff.event", "event": {"type": "presence.changed", "user": user_id, "status": status}},
    )
