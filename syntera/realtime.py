"""Realtime fan-out over the Channels layer: group names and publishing after commit.

The channel layer is a wake-up signal, never the record: a lost message only delays what a
client would see on its next read. Group names carry the tenant schema.
See docs/subsystems/realtime.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

# Set in a process with no event loop of its own (a Celery worker process): see `own_loop`.
_loop: asyncio.AbstractEventLoop | None = None
SEND_TIMEOUT = 30.0


def own_loop() -> None:
    """Send through one event loop on a daemon thread of this process from now on. Without it
    every send from synchronous code runs on a new loop (async_to_sync), and the channel
    layer, which keeps its connections per loop, opens a new connection to Redis each time.
    Called once in each Celery worker process (syntera/celery.py); never in the ASGI server,
    whose sends join its own loop."""
    global _loop
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="realtime-sender", daemon=True).start()
    _loop = loop


def _send(make: Callable[[], Awaitable[Any]]) -> None:
    async def send() -> None:
        await make()

    if _loop is None:
        async_to_sync(send)()
    else:
        asyncio.run_coroutine_threadsafe(send(), _loop).result(timeout=SEND_TIMEOUT)


def staff_group(schema: str) -> str:
    return f"staff.{schema}"


def staff_user_group(schema: str, user_id: int) -> str:
    return f"staff.{schema}.user.{user_id}"


def widget_group(schema: str) -> str:
    """Every open widget socket of a tenant (closed together when the workspace goes dark)."""
    return f"widget.{schema}"


# Every group that belongs to one tenant is named `<kind>.<schema>[.<more>]` with one of these
# kinds (`conv.<schema>.<id>` is apps.conversations.services.conversation_group); the purge of
# a deleted workspace removes them by that shape.
TENANT_GROUP_KINDS = ("staff", "conv", "widget")


def session_group(session_key: str) -> str:
    return "session." + hashlib.sha256(session_key.encode()).hexdigest()[:32]


def publish(group: str, message: dict[str, Any]) -> None:
    """Send now; a channel-layer failure is logged, never raised into the caller."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        _send(lambda: layer.group_send(group, message))
    except Exception:
        logger.warning("channel layer publish failed for %s", group, exc_info=True)


def publish_many(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Send several (group, message) pairs now, in order, over one connection to the layer
    (the event dispatcher's frames); failures are logged, never raised."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return

    async def send_all() -> None:
        for group, message in messages:
            try:
                await layer.group_send(group, message)
            except Exception:
                logger.warning("channel layer publish failed for %s", group, exc_info=True)

    try:
        _send(send_all)
    except Exception:
        logger.warning("channel layer publish failed", exc_info=True)


def publish_on_commit(group: str, message: dict[str, Any]) -> None:
    transaction.on_commit(lambda: publish(group, message))


def disconnect_user(schema: str, user_id: int, code: int = 4403) -> None:
    """Close every staff socket of this person in this tenant (membership removed)."""
    publish_on_commit(staff_user_group(schema, user_id), {"type": "staff.disconnect", "code": code})


def close_tenant_sockets(schema: str, code: int = 4404) -> None:
    """Close every staff and widget socket of a tenant (its workspace was deactivated for
    deletion); new ones are refused by the tenant resolution."""
    publish(staff_group(schema), {"type": "staff.disconnect", "code": code})
    publish(widget_group(schema), {"type": "widget.close", "code": code})


def disconnect_session(session_key: str | None, code: int = 4401) -> None:
    """Close the sockets opened with this session (logout)."""
    if session_key:
        publish(session_group(session_key), {"type": "staff.disconnect", "code": code})
