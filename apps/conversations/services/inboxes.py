"""Inboxes: where conversations come in (a web widget, an API channel...), and which AI agent
answers there. Owners and admins change them; every change is audited."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.audit.services import audit_action
from syntera.errors import ApplicationError

from ..models import Inbox
from .notify import require_role


@transaction.atomic
def inbox_create(
    *, actor: Actor, name: str, channel: str = "web", agent_id: int | None = None, **settings: Any
) -> Inbox:
    require_role(actor, Role.ADMIN)
    inbox = Inbox(name=name, channel=channel, agent_id=agent_id)
    inbox.settings = {**inbox.settings, **settings}
    inbox.save()
    audit_action(actor, "conversations.inbox_created", inbox, {"name": name, "channel": channel})
    return inbox


@transaction.atomic
def inbox_update(*, actor: Actor, inbox: Inbox, **changes: Any) -> Inbox:
    require_role(actor, Role.ADMIN)
    for key in ("name", "agent_id", "is_active"):
        if key in changes:
            setattr(inbox, key, changes.pop(key))
    if changes:
        inbox.settings = {**inbox.settings, **changes}
    inbox.save()
    audit_action(actor, "conversations.inbox_updated", inbox, {"fields": sorted(changes)})
    return inbox


def inbox_rotate_key(*, actor: Actor, inbox: Inbox) -> Inbox:
    from ..models import new_widget_key

    require_role(actor, Role.ADMIN)
    inbox.widget_key = new_widget_key()
    inbox.save(update_fields=["widget_key"])
    audit_action(actor, "conversations.inbox_key_rotated", inbox, {})
    return inbox


def inbox_delete(*, actor: Actor, inbox: Inbox) -> None:
    require_role(actor, Role.ADMIN)
    if inbox.conversations.exists():
        raise ApplicationError("This inbox has conversations; deactivate it instead.", code="conflict", status_code=409)
    audit_action(actor, "conversations.inbox_deleted", None, {"inbox_id": inbox.pk, "name": inbox.name})
    inbox.delete()
