"""Contacts and leads: create (verified when staff or an integrator makes it), update, verify,
delete; a lead is filed under the conversation's own contact or a new unverified one.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.accounts.services import Actor
from apps.audit.services import audit_action
from apps.events import types as events
from apps.events.services import emit
from syntera.errors import ApplicationError

from ..models import Contact, Lead
from .common import _emit_updated, _require_staff, _snapshot
from .memory import IDENTITY_FIELDS, _apply_fact, _clean_value, contact_remember


def _external_id_taken(external_id: str, contact_id: int | None) -> ApplicationError | None:
    others = Contact.objects.filter(external_id=external_id)
    if contact_id is not None:
        others = others.exclude(pk=contact_id)
    if external_id and others.exists():
        return ApplicationError(
            "Another contact has this external id.",
            code="conflict",
            status_code=409,
            fields={"external_id": ["Already used by another contact."]},
        )
    return None


@transaction.atomic
def contact_create(*, actor: Actor | None, tenant: Any = None, verified: bool | None = None, **fields: Any) -> Contact:
    """A contact. Made by staff or an integrator (`actor`) it is verified and its facts are
    staff facts; made by the platform (`actor` None) it is verified only when the caller
    says so (`verified`), its facts then `verified`, else `conversation`."""
    if actor is not None:
        _require_staff(actor)
    verified = actor is not None if verified is None else verified
    external_id = str(fields.get("external_id") or "")
    if (taken := _external_id_taken(external_id, None)) is not None:
        raise taken
    contact = Contact.objects.create(
        verified=verified,
        external_id=external_id,
        **{k: v for k, v in fields.items() if k in (*IDENTITY_FIELDS, "attributes") and v is not None},
    )
    source = "staff" if actor else ("verified" if verified else "conversation")
    for key in IDENTITY_FIELDS:
        if getattr(contact, key):
            _apply_fact(contact, key, getattr(contact, key), source)
    contact.save()
    emit(
        events.contact_created(contact_id=contact.pk, verified=verified, source=source),
        actor=actor,
        system_label=str(fields.get("system_label") or "visitor"),
    )
    return contact


@transaction.atomic
def contact_update(*, actor: Actor, contact: Contact, **fields: Any) -> Contact:
    """Change a contact's identity, attributes, external id; `verified` True is staff
    confirming who the contact is (its identity facts become trusted), False withdraws it
    (the AI then reads the contact's facts as claims)."""
    _require_staff(actor)
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    before = _snapshot(contact)
    for key, value in fields.items():
        if key == "attributes":
            contact.attributes = value
        elif key == "external_id" and value is not None:
            if (taken := _external_id_taken(str(value), contact.pk)) is not None:
                raise taken
            contact.external_id = str(value)
        elif key == "verified" and value is not None:
            _set_verified(contact, bool(value))
        elif key in IDENTITY_FIELDS and value is not None:
            if value:
                _apply_fact(contact, key, _clean_value(value), "staff")
            else:
                contact.memory = [f for f in contact.memory if f.get("key") != key]
                setattr(contact, key, "")
    contact.save()
    _emit_updated(contact, before, actor=actor, system_label="staff")
    audit_action(actor, "crm.contact_updated", contact, {"fields": sorted(fields)})
    if "verified" in fields and fields["verified"] is not None:
        action = "crm.contact_verified" if fields["verified"] else "crm.contact_unverified"
        audit_action(actor, action, contact, {})
    return contact


def _set_verified(contact: Contact, verified: bool) -> None:
    contact.verified = verified
    if verified:
        for fact in contact.memory or []:
            if fact.get("key") in ("name", "email", "phone") and fact.get("source") == "conversation":
                fact["source"] = "verified"


def contact_delete(*, actor: Actor, contact: Contact) -> None:
    _require_staff(actor)
    audit_action(actor, "crm.contact_deleted", None, {"contact_id": contact.pk})
    contact.delete()


@transaction.atomic
def lead_capture(
    *,
    tenant: Any,
    contact: Contact | None,
    name: str = "",
    email: str = "",
    phone: str = "",
    company: str = "",
    need: str = "",
    origin: str = "ai",
    actor: Actor | None = None,
) -> Lead:
    """Record a lead under `contact` (the conversation's own), or, without one, under a new
    unverified contact holding what the visitor gave. An email or phone number never selects
    an existing contact: it is the visitor's claim, and staff merge the contact into a known
    one once they know who it is (`contact_merge`)."""
    if not (email or phone or contact is not None):
        raise ApplicationError("A lead needs an email address or a phone number.", code="invalid", status_code=400)
    if contact is None:
        contact = contact_create(actor=None, tenant=tenant, verified=False)
    facts = [(k, v) for k, v in (("name", name), ("email", email), ("phone", phone), ("company", company)) if v]
    if facts:
        contact_remember(tenant=tenant, contact=contact, facts=facts)
    # Locked: the lead's event is ordered with its contact's others.
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    lead = Lead.objects.create(contact=contact, need=(need or "")[:2000], origin=origin)
    emit(events.lead_created(lead_id=lead.pk, contact_id=contact.pk, origin=origin), actor=actor, system_label="ai")
    return lead
