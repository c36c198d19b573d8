"""The authenticated staff WebSocket (`/ws/staff/`): the dashboard's live channel.

Accepts only a logged-in member of the host's tenant (session cookie); joins the
tenant's staff group, whose name carries the schema. Frames are JSON objects with a `type`.
Refusals accept the handshake and close at once with a code the client can read:
4401 not logged in, 4403 not a member; logout and removal close open sockets the same way.
"""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from apps.accounts.models import Membership
from apps.tenants.channels import tenant_db
from syntera.realtime import session_group, staff_group, staff_user_group

MAX_FRAME = 16 * 1024


@tenant_db
def _membership(tenant: Any, user_id: int) -> Membership | None:
    return (
        Membership.objects.select_related("user").filter(tenant=tenant, user_id=user_id, user__is_active=True).first()
    )


class StaffConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        tenant = self.scope.get("tenant")
        user = self.scope.get("user")
        session = self.scope.get("session")
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
        self.membership = membership
        self.groups_joined = [staff_group(tenant.schema_name), staff_user_group(tenant.schema_name, user.pk)]
        if session is not None and session.session_key:
            self.groups_joined.append(session_group(session.session_key))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "tenant": tenant.slug, "user": user.email, "role": membership.role})

    async def refuse(self, code: int) -> None:
        # Accept first: a close before accepting becomes an HTTP 403 and the code is lost.
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None or len(text_data) > MAX_FRAME:
            await self.send_json(
                {
                    "type": "error",
                    "code": "frame_too_large" if text_data else "binary_unsupported",
                    "detail": f"Send JSON text frames of at most {MAX_FRAME} bytes.",
                }
            )
            return
        try:
            frame = json.loads(text_data)
        except ValueError:
            frame = None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self.send_json(
                {"type": "error", "code": "invalid_frame", "detail": "Send a JSON object with a type."}
            )
            return
        if frame["type"] == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_json(
                {"type": "error", "code": "unknown_type", "detail": f"Unknown type {frame['type'][:40]!r}."}
            )

    async def staff_disconnect(self, event: dict[str, Any]) -> None:
        """Logout or removal from the workspace: this socket is no longer authorised."""
        await self.close(code=int(event.get("code", 4401)))

    async def staff_event(self, event: dict[str, Any]) -> None:
        """Group message `{"type": "staff.event", "payload": {...}}` → forwarded to the browser."""
        await self.send_json(event["payload"])

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content))
