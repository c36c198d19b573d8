"""The staff check and the `contact.updated` event shared by the CRM services."""

from __future__ import annotations

from typing import Any

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.events import types as events
from apps.events.services import emit
from syntera.errors import ApplicationError

from ..models import Contact


def _snapshot(contact: Contact) -> dict[str, Any]:
    """What `contact.updated` compares (its `changed` names these keys)."""
    return {key: getattr(contact, key) for key in events.CONTACT_FIELDS}


def _emit_updated(
    contact: Contact, before: dict[str, Any], *, actor: Actor | None, system_label: str, merged_from: int | None = None
) -> None:
    changed = [key for key, value in _snapshot(contact).items() if before[key] != value]
    if merged_from is not None:
        changed.append("memory")
    if changed:
        emit(
            events.contact_updated(
                contact_id=contact.pk, changed=changed, verified=contact.verified, merged_from=merged_from
            ),
            actor=actor,
            system_label=system_label,
        )


def _require_staff(actor: Actor) -> None:
    if not actor.has_role(Role.AGENT):
        raise ApplicationError("Your role cannot change contacts.", code="permission_denied", status_code=403)
