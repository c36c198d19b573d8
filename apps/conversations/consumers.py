"""The widget WebSocket (`/ws/widget/?key=<widget key>[&token=<visitor token>]`), exactly the
protocol of BRIEF.md; frames documented in docs/subsystems/realtime.md.

Delivery: every `message` frame a socket sends is read from the conversation store, never
taken from the channel layer. The layer only says "something new" (`conv.wake`); the socket
then reads everything after the last seq it sent. Lost wake-ups delay, never lose; `resume`
replays from the store. Deltas, typing, handoff and status frames are ephemeral and do go
through the layer. None of it waits for the domain-event outbox (docs/subsystems/events.md).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, NamedTuple
from urllib.parse import parse_qs, urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings

from apps.tenants.channels import origin_served_by, socket_host, tenant_db
from syntera.clientip import client_ip
from syntera.realtime import staff_group, widget_group
from syntera.sockets import Bucket, FrameConsumer

from . import abuse, services
from .identity import Session, clean_claims, session_open
from .models import Inbox
from .stores import get_store

logger = logging.getLogger(__name__)

CLOSE_UNKNOWN_KEY = 4404
CLOSE_ORIGIN = 4403
CLOSE_RATE_LIMITED = 4429  # too many connections or new conversations: try again later


def origin_allowed(inbox: Inbox, origin: str, scope: dict[str, Any]) -> bool:
    """The widget may be used from the inbox's allowed origins and from the tenant's own host
    (the socket's own origin: scheme, host and port as served). An empty allow-list allows
    only the tenant's own host."""
    if not origin:
        return False
    if origin_served_by(scope, [socket_host(scope)]):
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    allowed = [str(o).rstrip("/").lower() for o in inbox.settings.get("allowed_origins") or []]
    return "*" in allowed or origin.rstrip("/").lower() in allowed


@tenant_db
def _inbox(tenant: Any, key: str) -> Inbox | None:
    return (
        Inbox.objects.select_related("agent").filter(widget_key=key, is_active=True, channel=Inbox.Channel.WEB).first()
    )


def _valid_ip(ip: str) -> str | None:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


@tenant_db
def _session(tenant: Any, inbox: Inbox, token: str, ip: str, claims: dict[str, str], identity: Any) -> Session:
    return session_open(inbox=inbox, token=token, ip=_valid_ip(ip), claims=claims, identity=identity)


class Posted(NamedTuple):
    seq: int
    frames: list[dict[str, Any]]  # as `_after` returns them
    wakeups: list[tuple[str, dict[str, Any]]]  # (group, event) to publish


READ_BATCH = 500  # messages read from the store per trip


def _frames_after(schema: str, conversation_id: int, after_seq: int) -> list[dict[str, Any]]:
    """The visible `message` frames after `after_seq`, then a `_cursor` with the last seq read
    and whether the batch was full (more may follow: private notes take a seq but are not
    sent, so the number of frames says nothing about it)."""
    messages = get_store().after(schema=schema, conversation_id=conversation_id, after_seq=after_seq, limit=READ_BATCH)
    return [m.frame() for m in messages if m.role in services.VISIBLE_TO_VISITOR] + (
        [{"type": "_cursor", "seq": messages[-1].seq, "more": len(messages) == READ_BATCH}] if messages else []
    )


@tenant_db
def _post(tenant: Any, conversation_id: int, text: str, client_id: str, sent_seq: int) -> Posted:
    """Store the visitor's message and, in the same trip to the database thread, read what the
    socket has not sent yet. The wake-ups for the other sockets are handed back, not published
    here: the thread is free as soon as the database work is done."""
    with services.wakeups_held() as wakeups:
        message, _created = services.message_post(
            conversation_id=conversation_id, role="visitor", text=text, client_id=client_id
        )
    return Posted(message.seq, _frames_after(tenant.schema_name, conversation_id, sent_seq), wakeups)


@tenant_db
def _after(tenant: Any, conversation_id: int, after_seq: int) -> list[dict[str, Any]]:
    return _frames_after(tenant.schema_name, conversation_id, after_seq)


@tenant_db
def _rate(tenant: Any, conversation_id: int, rating: int, comment: str) -> None:
    services.conversation_rate(conversation_id=conversation_id, rating=rating, comment=comment)


@tenant_db
def _feedback(tenant: Any, conversation_id: int, seq: int, helpful: bool) -> None:
    services.answer_feedback(conversation_id=conversation_id, seq=seq, helpful=helpful)


class WidgetConsumer(FrameConsumer):
    """The frame edge (size, binary, JSON, frame rate, dispatch, errors) is
    `syntera.sockets.FrameConsumer`'s; the handlers below see well-formed frames only."""

    socket_name = "widget"
    handlers: ClassVar[dict[str, str]] = {
        "hello": "on_hello",
        "message": "on_message",
        "resume": "on_resume",
        "typing": "on_typing",
        "ping": "on_ping",
        "rate": "on_rate",
        "feedback": "on_feedback",
    }
    conversation_id: int | None = None
    sent_seq = 0
    group: str | None = None
    written = False  # the conversation has a stored message (staff can see it)
    tenant_group: str | None = None

    async def connect(self) -> None:
        tenant = self.scope.get("tenant")
        query = parse_qs(self.scope.get("query_string", b"").decode(errors="replace"))
        key = (query.get("key") or [""])[0][:64]
        self.token = (query.get("token") or [""])[0][:128]
        if tenant is None or not key:
            await self.refuse(CLOSE_UNKNOWN_KEY)
            return
        self.tenant = tenant
        inbox = await _inbox(tenant, key)
        if inbox is None:
            await self.refuse(CLOSE_UNKNOWN_KEY)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self.scope.get("headers", [])}
        if not origin_allowed(inbox, headers.get("origin", ""), self.scope):
            await self.refuse(CLOSE_ORIGIN)
            return
        self.inbox = inbox
        client = self.scope.get("client") or ("", 0)
        self.ip = client_ip(str(client[0] if client else ""), headers.get("x-forwarded-for", "")) or "unknown"
        if not await _connection_allowed(tenant.schema_name, inbox.pk, self.ip):
            await self.refuse(CLOSE_RATE_LIMITED)
            return
        self.messages = Bucket(settings.WIDGET_RATE_PER_CONNECTION, 10.0)
        self.frames = Bucket(settings.WIDGET_FRAME_RATE, 10.0)
        await self.accept()
        # Closed with the workspace's other sockets when it is scheduled for deletion.
        self.tenant_group = widget_group(tenant.schema_name)
        await self.channel_layer.group_add(self.tenant_group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.tenant_group:
            await self.channel_layer.group_discard(self.tenant_group, self.channel_name)

    async def widget_close(self, event: dict[str, Any]) -> None:
        await self.close(code=int(event.get("code", CLOSE_UNKNOWN_KEY)))

    def error_context(self, frame: dict[str, Any]) -> dict[str, Any]:
        client_id = frame.get("client_id")
        return {"client_id": client_id} if isinstance(client_id, str) and 0 < len(client_id) <= 64 else {}

    def max_frame_bytes(self) -> int:
        return int(settings.WIDGET_MAX_FRAME)

    async def _join(self, conversation_id: int) -> None:
        if self.conversation_id == conversation_id:
            return
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        self.conversation_id = conversation_id
        self.group = services.conversation_group(self.tenant.schema_name, conversation_id)
        await self.channel_layer.group_add(self.group, self.channel_name)

    async def on_hello(self, frame: dict[str, Any]) -> None:
        """Start or resume. `contact` (the pre-chat form) is the visitor's claim; `identity`
        is the host site's signed word on who its signed-in user is (identity.py)."""
        claims = clean_claims(frame.get("contact"))
        session = await _session(self.tenant, self.inbox, self.token, self.ip, claims, frame.get("identity"))
        for code, detail in session.errors:
            await self.error(code, detail)
        if session.conversation is None:
            if any(code == "rate_limited" for code, _ in session.errors):
                await self.close(code=CLOSE_RATE_LIMITED)
            return
        conversation = session.conversation
        self.token = session.token
        await self._join(conversation.pk)
        self.sent_seq = 0
        self.written = conversation.last_seq > 0
        await self.send_frame(
            {
                "type": "session",
                "conversation_id": str(conversation.pk),
                "token": session.token,
                "last_seq": conversation.last_seq,
                "handoff": {"ai": "bot", "queue": "queued", "human": "assigned"}[conversation.owner],
                "status": conversation.status,
                "identity": session.identity,
                "widget": self._widget_settings(),
            }
        )

    def _widget_settings(self) -> dict[str, Any]:
        settings_ = self.inbox.settings or {}
        agent_greeting = self.inbox.agent.greeting if self.inbox.agent else ""
        return {
            "title": settings_.get("title") or self.inbox.name,
            "greeting": settings_.get("greeting") or agent_greeting,
            "color": settings_.get("color"),
            "text_color": settings_.get("text_color"),
            "position": settings_.get("position", "right"),
            "pre_chat_fields": settings_.get("pre_chat_fields") or [],
            "business_hours_message": settings_.get("business_hours_message") or "",
        }

    async def _require_session(self) -> bool:
        if self.conversation_id is None:
            await self.error("no_session", "Send hello first.")
            return False
        return True

    async def on_message(self, frame: dict[str, Any]) -> None:
        if not await self._require_session():
            return
        client_id = frame.get("client_id")
        text = frame.get("text")
        if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
            await self.error("invalid_frame", "A message needs a client_id (a string of at most 64 characters).")
            return
        if not isinstance(text, str) or not text.strip():
            await self.error("invalid_frame", "A message needs non-empty text.", client_id=client_id)
            return
        if len(text) > settings.WIDGET_MAX_MESSAGE_CHARS:
            await self.error(
                "message_too_long",
                f"Messages are at most {settings.WIDGET_MAX_MESSAGE_CHARS} characters.",
                client_id=client_id,
            )
            return
        if not self.messages.take() or not await _message_allowed(self.tenant.schema_name, self.inbox.pk, self.ip):
            await self.error("rate_limited", "Too many messages; wait a moment and send again.", client_id=client_id)
            return
        assert self.conversation_id is not None
        posted = await _post(self.tenant, self.conversation_id, text, client_id, self.sent_seq)
        self.written = True
        await self.send_frame({"type": "ack", "client_id": client_id, "seq": posted.seq})
        if await self._send_frames(posted.frames):
            await self._deliver()
        for group, event in posted.wakeups:
            await self._publish(group, event)

    async def on_resume(self, frame: dict[str, Any]) -> None:
        if not await self._require_session():
            return
        after = frame.get("after_seq", 0)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            await self.error("invalid_frame", "after_seq is a non-negative integer.")
            return
        self.sent_seq = after
        await self._deliver()

    async def on_typing(self, frame: dict[str, Any]) -> None:
        # Staff do not see a conversation before its first message, nor its typing.
        if self.conversation_id is not None and self.written:
            event = {"type": "visitor.typing", "conversation": self.conversation_id}
            await self._publish(staff_group(self.tenant.schema_name), {"type": "staff.event", "event": event})

    async def on_ping(self, frame: dict[str, Any]) -> None:
        await self.send_frame({"type": "pong"})

    async def on_rate(self, frame: dict[str, Any]) -> None:
        if not await self._require_session():
            return
        rating = frame.get("rating")
        if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
            await self.error("invalid_frame", "rating is an integer from 1 to 5.")
            return
        comment = frame.get("comment")
        comment = comment if isinstance(comment, str) else ""
        assert self.conversation_id is not None
        await _rate(self.tenant, self.conversation_id, rating, comment[:2000])
        await self.send_frame({"type": "rated", "rating": rating})

    async def on_feedback(self, frame: dict[str, Any]) -> None:
        """`{"type": "feedback", "seq": N, "helpful": true|false}` on an AI answer; echoed back."""
        if not await self._require_session():
            return
        seq, helpful = frame.get("seq"), frame.get("helpful")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq <= self.sent_seq:
            await self.error("invalid_frame", "seq is the number of an AI message this conversation showed.")
            return
        if not isinstance(helpful, bool):
            await self.error("invalid_frame", "helpful is true or false.")
            return
        assert self.conversation_id is not None
        await _feedback(self.tenant, self.conversation_id, seq, helpful)
        await self.send_frame({"type": "feedback", "seq": seq, "helpful": helpful})

    async def _deliver(self) -> None:
        """Send every visible message after the last one sent, read from the store."""
        assert self.conversation_id is not None
        while await self._send_frames(await _after(self.tenant, self.conversation_id, self.sent_seq)):
            pass

    async def _send_frames(self, frames: list[dict[str, Any]]) -> bool:
        """Send what `_after` read and move the cursor; True when there may be more to read."""
        if not frames:
            return False
        cursor = frames[-1]
        for frame in frames[:-1]:
            await self.send_frame(frame)
        self.sent_seq = cursor["seq"]
        return bool(cursor["more"])

    async def _publish(self, group: str, event: dict[str, Any]) -> None:
        """`syntera.realtime.publish` from the event loop: a channel-layer failure is logged."""
        try:
            await self.channel_layer.group_send(group, event)
        except Exception:
            logger.warning("channel layer publish failed for %s", group, exc_info=True)

    # Channel-layer handlers.
    async def conv_wake(self, event: dict[str, Any]) -> None:
        if self.conversation_id is not None and int(event.get("seq") or 0) > self.sent_seq:
            await self._deliver()

    async def conv_frame(self, event: dict[str, Any]) -> None:
        frame = event.get("frame")
        if isinstance(frame, dict):
            await self.send_frame(frame)


def _off_loop(func: Callable[..., bool]) -> Callable[..., Awaitable[bool]]:
    """A limit check (a Redis round trip) from the event loop, on a worker thread."""
    return sync_to_async(func, thread_sensitive=False)


_connection_allowed = _off_loop(abuse.connection_allowed)
_message_allowed = _off_loop(abuse.message_allowed)
