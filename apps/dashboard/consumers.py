"""The authenticated staff WebSocket (`/ws/staff/`): the dashboard's live channel.

Accepts only a logged-in member of the host's tenant (session cookie), from a page of that
workspace (the Origin is one of its hosts, with the scheme and port it is served on); joins the
tenant's staff group, whose name carries the schema. Frames are JSON objects with a `type`;
the frame edge (size, binary, JSON, rate, dispatch, error codes) is syntera/sockets.py's.
Refusals accept the handshake and close at once with a code the client can read:
4401 not logged in, 4403 not a member or a page of another site (another workspace included);
logout and removal close open sockets the same way.

Server events (`staff.event` on the staff group: conversation.created, conversation.updated,
message.created, visitor.typing, message.feedback; all but typing and presence sent by the staff
inbox's domain-event subscriber, apps/dashboard/subscribers.py) are forwarded as frames. They only wake the
inbox up: the page re-reads the list or the transcript from the server, so a lost event costs
a delay, never a wrong screen (message.feedback carries the verdict, which the transcript also
shows when it is next loaded). Client frames besides `ping`: `typing` (a staff member is writing a
reply: the visitor sees `{"type":"typing","role":"agent"}`) and `read` (mark a conversation
read), both for the agent role and up. See docs/subsystems/realtime.md.

Presence (apps/routing/presence.py), for the agent role and up: a socket marks its person
online when it opens (away stays away), a `ping` or a `{"type":"presence","status":"online"|
"away"}` frame renews the mark (the latter also sets it), and the person goes offline when
their last socket closes. A change is the staff event `presence.changed` `{"user", "status"}`;
a socket announces its own arrival before it joins the group, so its first frame after
`hello` is never its own presence.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from apps.accounts.models import Membership, Role
from apps.accounts.services import Actor
from apps.conversations import services as conversations
from apps.conversations.models import Conversation
from apps.routing import presence
from apps.tenants.channels import origin_is_tenants, tenant_db
from syntera.errors import ApplicationError
from syntera.realtime import session_group, staff_group, staff_user_group
from syntera.sockets import Bucket, FrameConsumer

logger = logging.getLogger(__name__)

MAX_FRAME = 16 * 1024
FRAME_RATE = 60  # client frames per 10 s per socket
TYPING_INTERVAL = 2.0  # seconds: typing frames closer together than this are not relayed


@tenant_db
def _membership(tenant: Any, user_id: int) -> Membership | None:
    return (
        Membership.objects.select_related("user", "tenant")
        .filter(tenant=tenant, user_id=user_id, user__is_active=True)
        .first()
    )


def _staff_conversation(tenant: Any, user_id: int, conversation_id: int) -> tuple[Actor, Conversation]:
    """This member (role read again: it may have changed since the socket opened) and the
    conversation, in the tenant's schema; ApplicationError when either is not allowed."""
    membership = (
        Membership.objects.select_related("user", "tenant")
        .filter(tenant=tenant, user_id=user_id, user__is_active=True)
        .first()
    )
    if membership is None or not membership.has_role(Role.AGENT):
        raise ApplicationError("Viewers cannot do this.", code="permission_denied", status_code=403)
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        raise ApplicationError("No such conversation.", code="not_found", status_code=404)
    return Actor.for_membership(membership), conversation


@tenant_db
def _typing(tenant: Any, user_id: int, conversation_id: int) -> None:
    _staff_conversation(tenant, user_id, conversation_id)
    conversations.notify_frame(conversation_id, {"type": "typing", "role": "agent"})


@tenant_db
def _read(tenant: Any, user_id: int, conversation_id: int) -> None:
    actor, conversation = _staff_conversation(tenant, user_id, conversation_id)
    conversations.conversation_mark_read(actor=actor, conversation=conversation)


@tenant_db
def _presence_alive(tenant: Any, user_id: int, socket: str, status: str | None = None) -> None:
    # In the tenant's schema: presence cache keys depend on it (as for the API and routing).
    before, after = presence.socket_alive(tenant.schema_name, user_id, socket, status)
    if before != after:
        presence.announce(tenant.schema_name, user_id, after)
        if after == "online":
            # Someone came online: offer them the conversations already waiting.
            from apps.routing.services import assign_waiting

            assign_waiting()


@tenant_db
def _presence_gone(tenant: Any, user_id: int, socket: str) -> None:
    before, after = presence.socket_closed(tenant.schema_name, user_id, socket)
    if before != after:
        presence.announce(tenant.schema_name, user_id, after)


class StaffConsumer(FrameConsumer):
    """The frame edge (size, binary, JSON, frame rate, dispatch, errors) is
    `syntera.sockets.FrameConsumer`'s; the handlers below see well-formed frames only."""

    socket_name = "staff"
    handlers: ClassVar[dict[str, str]] = {
        "ping": "on_ping",
        "typing": "on_typing",
        "read": "on_read",
        "presence": "on_presence",
    }
    compact_frames = False

    def max_frame_bytes(self) -> int:
        return MAX_FRAME

    def error_context(self, frame: dict[str, Any]) -> dict[str, Any]:
        return {"conversation": frame.get("conversation")}

    async def connect(self) -> None:
        tenant = self.scope.get("tenant")
        user = self.scope.get("user")
        session = self.scope.get("session")
        if tenant is not None and not await origin_is_tenants(self.scope):
            await self.refuse(4403)
            return
        if tenant is None or user is None or not user.is_authenticated:
            await self.refuse(4401)
            return
        if session is not None and session.get("syntera_tenant") not in (None, tenant.schema_name):
            await self.refuse(4403)
            return
        membership = await _membership(tenant, user.pk)
        if membership is None:
            await self.refuse(4403)
            return
        self.tenant = tenant
        self.user_id = user.pk
        self.membership = membership
        self.frames = Bucket(FRAME_RATE, 10.0)
        self.typing_sent: dict[int, float] = {}
        self.has_presence = membership.has_role(Role.AGENT)
        if self.has_presence:
            await self.presence_alive()
        self.groups_joined = [staff_group(tenant.schema_name), staff_user_group(tenant.schema_name, user.pk)]
        if session is not None and session.session_key:
            self.groups_joined.append(session_group(session.session_key))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_frame({"type": "hello", "tenant": tenant.slug, "user": user.email, "role": membership.role})

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        if getattr(self, "has_presence", False):
            try:
                await _presence_gone(self.tenant, self.user_id, self.channel_name)
            except Exception:  # Redis unreachable: the mark runs out on its own
                logger.warning("presence update failed", exc_info=True)

    async def presence_alive(self, status: str | None = None) -> None:
        try:
            await _presence_alive(self.tenant, self.user_id, self.channel_name, status)
        except Exception:  # presence is best effort: never refuse or break the socket for it
            logger.warning("presence update failed", exc_info=True)

    async def _conversation_id(self, frame: dict[str, Any]) -> int | None:
        value = frame.get("conversation")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
            await self.error("invalid_frame", f"A {frame['type']} frame needs conversation: a conversation id.")
            return None
        return value

    async def on_ping(self, frame: dict[str, Any]) -> None:
        if self.has_presence:
            await self.presence_alive()
        await self.send_frame({"type": "pong"})

    async def on_presence(self, frame: dict[str, Any]) -> None:
        """Heartbeat and status: `{"type":"presence","status":"online"|"away"}`."""
        status = frame.get("status")
        if status not in ("online", "away"):
            await self.error("invalid_frame", 'A presence frame needs status: "online" or "away".')
            return
        if not self.has_presence:
            await self.error("permission_denied", "Viewers take no conversations and have no presence.")
            return
        await self.presence_alive(str(status))

    async def on_typing(self, frame: dict[str, Any]) -> None:
        conversation_id = await self._conversation_id(frame)
        if conversation_id is None:
            return
        now = time.monotonic()
        if now - self.typing_sent.get(conversation_id, 0.0) < TYPING_INTERVAL:
            return  # the visitor already shows "typing"; no need to tell them again so soon
        if len(self.typing_sent) > 100:
            self.typing_sent.clear()
        self.typing_sent[conversation_id] = now
        await _typing(self.tenant, self.user_id, conversation_id)

    async def on_read(self, frame: dict[str, Any]) -> None:
        conversation_id = await self._conversation_id(frame)
        if conversation_id is not None:
            await _read(self.tenant, self.user_id, conversation_id)

    async def staff_disconnect(self, event: dict[str, Any]) -> None:
        """Logout or removal from the workspace: this socket is no longer authorised."""
        await self.close(code=int(event.get("code", 4401)))

    async def staff_event(self, event: dict[str, Any]) -> None:
        """Group message `{"type": "staff.event", "event": {...}}` (the conversation services)
        or `{"type": "staff.event", "payload": {...}}` → forwarded to the browser as is."""
        frame = event.get("event", event.get("payload"))
        if isinstance(frame, dict):
            await self.send_frame(frame)
