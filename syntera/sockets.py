"""The frame edge every WebSocket consumer shares: the widget's (`/ws/widget/`,
apps/conversations/consumers.py) and the staff's (`/ws/staff/`, apps/dashboard/consumers.py).
See docs/subsystems/realtime.md ("Frames and errors, on both sockets").

A client frame passes, in this order: binary refused, size cap (bytes, not characters), the
socket's frame-rate bucket, JSON parsing, the object-with-a-string-`type` shape, dispatch to
the handler registered for its `type`. Every refusal is an `error` frame and the connection
stays open; one fault has one code on both sockets:

| fault | code |
|---|---|
| a binary frame | `binary_unsupported` |
| a text frame over the socket's cap | `frame_too_large` |
| more frames than the socket's rate allows | `rate_limited` |
| text that is not JSON | `invalid_json` |
| JSON that is not an object with a string `type` | `invalid_frame` |
| a `type` the socket does not know | `unknown_type` |
| a handler raised `ApplicationError` | the error's own code |
| a handler failed unexpectedly (logged once, with its traceback) | `server_error` |

The `error` a handler's failure becomes also names what the frame was about (`error_context`):
a visitor message that could not be stored (the database restarting) is refused with its
`client_id`, and the widget keeps it and sends it again; nothing is acknowledged unstored.

Refusing a connection accepts the handshake, then closes it at once with an application
code (4401, 4403, 4404, 4429): a close before accepting becomes an HTTP 403 and the code is
lost to the browser. Frames that reach a refused socket before its close are dropped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from channels.generic.websocket import AsyncWebsocketConsumer

from syntera.errors import ApplicationError

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class Bucket:
    """A token bucket: `capacity` events per `per` seconds."""

    def __init__(self, capacity: int, per: float) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / per
        self.tokens = float(capacity)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FrameConsumer(AsyncWebsocketConsumer):
    """A WebSocket whose client frames are JSON objects with a `type`.

    A subclass names its socket (`socket_name`, for the log), maps each client frame type to
    the name of its handler method (`handlers`), says how large a frame may be
    (`max_frame_bytes`) and, once it accepts the connection, sets `frames` to its rate bucket.
    """

    socket_name: ClassVar[str] = "websocket"
    handlers: ClassVar[dict[str, str]] = {}
    # Frames are written compactly; the staff socket keeps the spacing its clients first saw.
    compact_frames: ClassVar[bool] = True
    frames: Bucket | None = None  # set when the connection is let in

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [name for name in cls.handlers.values() if not callable(getattr(cls, name, None))]
        if missing:
            raise TypeError(f"{cls.__name__}.handlers names methods it does not have: {', '.join(missing)}")

    def max_frame_bytes(self) -> int:
        raise NotImplementedError

    def error_context(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Fields of the frame echoed on the `error` its handler's failure becomes, an
        `ApplicationError` or an unexpected one (the staff socket: the conversation it was
        about; the widget: the message's client_id, so the widget sends it again)."""
        return {}

    async def refuse(self, code: int) -> None:
        """Refuse the connection with an application close code the client can read."""
        await self.accept()
        await self.close(code=code)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        separators = (",", ":") if self.compact_frames else None
        await self.send(text_data=json.dumps(frame, separators=separators))

    async def error(self, code: str, detail: str, **extra: Any) -> None:
        await self.send_frame({"type": "error", "code": code, "detail": detail, **extra})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = await self._parse(text_data)
        if frame is None:
            return
        name = self.handlers.get(frame["type"])
        if name is None:
            await self.error("unknown_type", f"Unknown frame type {frame['type'][:40]!r}.")
            return
        handler: Handler = getattr(self, name)
        try:
            await handler(frame)
        except ApplicationError as exc:
            await self.error(exc.code, exc.detail, **self.error_context(frame))
        except Exception:
            # One fixed message per socket ("widget frame failed"): error reports group by it.
            logger.exception(f"{self.socket_name} frame failed")
            await self.error("server_error", "Something went wrong; try again.", **self.error_context(frame))

    async def _parse(self, text_data: str | None) -> dict[str, Any] | None:
        """The frame as an object with a string `type`, or None once the refusal is sent."""
        if self.frames is None:
            return None  # a refused socket, closing: what its client sent meanwhile is dropped
        if text_data is None:
            await self.error("binary_unsupported", "Send JSON text frames.")
            return None
        limit = self.max_frame_bytes()
        if len(text_data.encode()) > limit:
            await self.error("frame_too_large", f"Frames are at most {limit} bytes.")
            return None
        if not self.frames.take():
            await self.error("rate_limited", "Too many frames; slow down.")
            return None
        try:
            frame = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.error("invalid_json", "Frames are JSON objects.")
            return None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self.error("invalid_frame", "Frames are JSON objects with a type.")
            return None
        return frame
