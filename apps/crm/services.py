"""Writes to the CRM: contacts, their memory, leads. Every change is audited.

Contact memory is a list of facts (see `Contact`). `contact_remember` is what the AI calls
with facts it extracted from a conversation; staff edit with `contact_memory_set` and erase
with `contact_memory_erase` (one key, or everything). Identity fields (name, email, phone,
company) are mirrored on the contact's columns so lists and search can use them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import Actor
from apps.audit.services import audit_action
from syntera.errors import ApplicationError

from .models import Contact, Lead

SINGLE_KEYS = ("name", "email", "phone", "company", "language")
MULTI_KEYS = ("preference", "open_issue", "note")
MEMORY_KEYS = SINGLE_KEYS + MULTI_KEYS
MAX_FACTS = 50
MAX_VALUE = 300
IDENTITY_FIELDS = ("name", "email", "phone", "company")


def _require_staff(actor: Actor) -> None:
    if not actor.has_role(Role.AGENT):
        raise ApplicationError("Your role cannot change contacts.", code="permission_denied", status_code=403)


def _clean_value(value: Any) -> str:
    text = " ".join(str(value or "").split())
    if not text:
        raise ApplicationError("A memory value cannot be empty.", code="invalid", status_code=400)
    return text[:MAX_VALUE]


def _apply_fact(contact: Contact, key: str, value: str, source: str) -> bool:
    """Add or replace one fact; True when memory changed."""
    if key not in MEMORY_KEYS:
        raise ApplicationError(
            f"Unknown memory key {key!r}. Known keys: {', '.join(MEMORY_KEYS)}.", code="invalid", status_code=400
        )
    facts: list[dict[str, Any]] = list(contact.memory or [])
    now = timezone.now().isoformat()
    if key in SINGLE_KEYS:
        for fact in facts:
            if fact.get("key") == key:
                if fact.get("value") == value:
                    return False
                fact.update(value=value, source=source, updated_at=now)
                break
        else:
            facts.append({"key": key, "value": value, "source": source, "updated_at": now})
    else:
        if any(f.get("key") == key and str(f.get("value", "")).lower() == value.lower() for f in facts):
            return False
        facts.append({"key": key, "value": value, "source": source, "updated_at": now})
    if len(facts) > MAX_FACTS:
        # Oldest multi-valued facts go first; identity facts are kept.
        multi = sorted((f for f in facts if f.get("key") in MULTI_KEYS), key=lambda f: str(f.get("updated_at")))
        for fact in multi[: len(facts) - MAX_FACTS]:
            facts.remove(fact)
    contact.memory = facts
    if key in IDENTITY_FIELDS:
        setattr(contact, key, value)
    return True


@transaction.atomic
def contact_create(*, actor: Actor | None, tenant: Any = None, **fields: Any) -> Contact:
    if actor is not None:
        _require_staff(actor)
    contact = Contact.objects.create(
        **{k: v for k, v in fields.items() if k in (*IDENTITY_FIELDS, "attributes") and v is not None}
    )
    for key in IDENTITY_FIELDS:
        if getattr(contact, key):
            _apply_fact(contact, key, getattr(contact, key), "staff" if actor else "conversation")
    contact.save()
    audit_action(actor, "crm.contact_created", contact, {}, tenant=tenant, system_label="ai")
    return contact


@transaction.atomic
def contact_update(*, actor: Actor, contact: Contact, **fields: Any) -> Contact:
    _require_staff(actor)
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    for key, value in fields.items():
        if key == "attributes":
            contact.attributes = value
        elif key in IDENTITY_FIELDS and value is not None:
            if value:
                _apply_fact(contact, key, _clean_value(value), "staff")
            else:
                contact.memory = [f for f in contact.memory if f.get("key") != key]
                setattr(contact, key, "")
    contact.save()
    audit_action(actor, "crm.contact_updated", contact, {"fields": sorted(fields)})
    return contact


def contact_delete(*, actor: Actor, contact: Contact) -> None:
    _require_staff(actor)
    audit_action(actor, "crm.contact_deleted", None, {"contact_id": contact.pk})
    contact.delete()


@transaction.atomic
def contact_remember(*, tenant: Any, contact: Contact, facts: Iterable[tuple[str, str]]) -> list[str]:
    """Store facts the AI extracted from a conversation; returns the keys that changed.
    Facts staff entered are not overwritten by the AI."""
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    changed: list[str] = []
    staff_keys = {f.get("key") for f in contact.memory if f.get("source") == "staff" and f.get("key") in SINGLE_KEYS}
    for key, value in facts:
        if key in staff_keys:
            continue
        if _apply_fact(contact, key, _clean_value(value), "conversation"):
            changed.append(key)
    if changed:
        contact.save()
        audit_action(None, "crm.memory_learned", contact, {"keys": changed}, tenant=tenant, system_label="ai")
    return changed


@transaction.atomic
def contact_memory_set(*, actor: Actor, contact: Contact, key: str, value: str) -> Contact:
    _require_staff(actor)
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    _apply_fact(contact, key, _clean_value(value), "staff")
    contact.save()
    audit_action(actor, "crm.memory_set", contact, {"key": key})
    return contact


@transaction.atomic
def contact_memory_erase(
    *, actor: Actor, contact: Contact, key: str | None = None, value: str | None = None
) -> Contact:
    """Erase one fact (key and value), one key's facts, or (key None) the whole memory.
    Identity columns mirrored from erased facts are cleared too: erasing means the AI no
    longer knows it."""
    _require_staff(actor)
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    erased = [
        f for f in contact.memory if (key is None or f.get("key") == key) and (value is None or f.get("value") == value)
    ]
    contact.memory = [f for f in contact.memory if f not in erased]
    for fact in erased:
        if fact.get("key") in IDENTITY_FIELDS:
            setattr(contact, str(fact["key"]), "")
    contact.save()
    audit_action(actor, "crm.memory_erased", contact, {"key": key or "*", "facts": len(erased)})
    return contact


def contact_facts(contact: Contact | None) -> dict[str, str]:
    """The memory as a flat mapping for prompts (multi-valued keys joined with '; ')."""
    if contact is None:
        return {}
    out: dict[str, list[str]] = {}
    for fact in contact.memory or []:
        out.setdefault(str(fact.get("key")), []).append(str(fact.get("value")))
    return {k: "; ".join(v) for k, v in out.items()}


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
    """Record a lead: finds the contact by email or phone (or uses the given one), fills in
    what it learnt, and creates the Lead."""
    if not (email or phone or contact is not None):
        raise ApplicationError("A lead needs an email address or a phone number.", code="invalid", status_code=400)
    if contact is None and email:
        contact = Contact.objects.filter(email__iexact=email).first()
    if contact is None and phone:
        contact = Contact.objects.filter(phone=phone).first()
    if contact is None:
        contact = Contact.objects.create()
    facts = [(k, v) for k, v in (("name", name), ("email", email), ("phone", phone), ("company", company)) if v]
    if facts:
        contact_remember(tenant=tenant, contact=contact, facts=facts)
        contact.refresh_from_db()
    lead = Lead.objects.create(contact=contact, need=(need or "")[:2000], origin=origin)
    audit_action(actor, "crm.lead_captured", lead, {"origin": origin}, tenant=tenant, system_label="ai")
    return lead
